"""``flask billing run|issue|export`` from the command line."""

import zipfile
from datetime import datetime, timedelta, timezone

from openpyxl import load_workbook

from tests.fixtures.factories import insert_stamps


def test_run_issue_and_export_a_month(app, factory, tmp_path):
    wapu = factory.wapu()
    with app.app_context():
        start = datetime(2026, 9, 30, 17, tzinfo=timezone.utc)  # 1 October 00:00 WIB
        insert_stamps(wapu["id"], [start + timedelta(minutes=i) for i in range(25)])
    cli = app.test_cli_runner()
    result = cli.invoke(args=["billing", "run", "--month", "2026-10"])
    assert result.exit_code == 0 and "1 created, 0 refreshed, 0 unchanged" in result.output
    again = cli.invoke(args=["billing", "run", "--month", "2026-10"])
    assert "0 created, 0 refreshed, 1 unchanged" in again.output
    issued = cli.invoke(args=["billing", "issue", "--month", "2026-10"])
    assert issued.exit_code == 0 and "1 invoice(s) issued." in issued.output
    number = issued.output.split()[0]
    exported = cli.invoke(args=["billing", "export", "--month", "2026-10", "--out", str(tmp_path / "out")])
    assert exported.exit_code == 0, exported.output
    pdf_name = number.replace("/", "-") + ".pdf"
    assert (tmp_path / "out" / pdf_name).read_bytes().startswith(b"%PDF")
    with zipfile.ZipFile(tmp_path / "out" / "faktur-2026-10.zip") as archive:
        assert archive.namelist() == [pdf_name] and archive.read(pdf_name).startswith(b"%PDF")
    book = load_workbook(tmp_path / "out" / "tagihan-2026-10.xlsx", read_only=True)
    summary = [row for row in book.worksheets[0].iter_rows(values_only=True) if wapu["code"] in row]
    assert len(summary) == 1 and 25 in summary[0] and number in summary[0]
    assert sum(1 for _ in book.worksheets[1].iter_rows(min_row=2)) == 25


def test_a_bad_month_is_refused(app):
    result = app.test_cli_runner().invoke(args=["billing", "run", "--month", "2026-13"])
    assert result.exit_code == 2 and "YYYY-MM" in result.output
