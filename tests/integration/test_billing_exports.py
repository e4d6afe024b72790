"""Billing exports: invoice and credit-note PDFs read back with poppler, and workbooks read back
with openpyxl (values, formats, frozen header, filters, formula injection, sheet split, WIB)."""

import http.server
import io
import re
import shutil
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook

from scm.billing import exports
from scm.billing.models import CreditNote, Invoice, InvoiceLine, InvoiceState, LineKind, MinimumPolicy
from scm.registration.validators import format_npwp
from tests.fixtures.factories import insert_stamps, valid_npwp

NOV, OCT = date(2026, 11, 1), date(2026, 10, 1)
SELLER_NPWP, BUYER_NPWP = valid_npwp(11), valid_npwp(12, digits=16)
INJECTION = '=HYPERLINK("http://x")'
TERBILANG = "Dua belas juta tiga ratus empat puluh lima ribu rupiah"


def make_invoice(number="0001/INV-SCM/XI/2026", lines=None, buyer="PT Pemungut Contoh Tbk") -> Invoice:
    """A transient invoice of Rp12.345.000 (usage, late usage, service fee with PPN shown, not due)."""
    invoice = Invoice(
        period=NOV, state=InvoiceState.ISSUED if number else InvoiceState.DRAFT, number=number,
        issue_date=date(2026, 12, 1) if number else None, due_date=date(2026, 12, 15),
        seller_name="PT Distribusi Meterai Nusantara", seller_address="Jl. Jend. Sudirman 52\nJakarta Selatan",
        seller_npwp=SELLER_NPWP, bank_name="Bank Mandiri", bank_account_number="123-00-0987654-3",
        bank_account_name="PT Distribusi Meterai Nusantara", buyer_name=buyer,
        buyer_address="Jl. M.H. Thamrin 1\nJakarta Pusat", buyer_npwp=BUYER_NPWP, contract_number="KTR/2026/001",
        used=1200, minimum=1000, shortfall=0, minimum_policy=MinimumPolicy.TRUE_UP, unit_price=10_000,
        ppn_rate=12, ppn_base=41_250, ppn_amount=4_950)
    rows = lines or [(LineKind.USAGE, NOV, 1200, 10_000), (LineKind.LATE_USAGE, OCT, 30, 10_000),
                     (LineKind.SERVICE_FEE, NOV, 1000, 45)]
    for position, (kind, month, quantity, price) in enumerate(rows, start=1):
        invoice.lines.append(InvoiceLine(position=position, kind=kind, usage_month=month, quantity=quantity,
                                         unit_price=price, amount=quantity * price))
    invoice.subtotal = invoice.total_due = sum(line.amount for line in invoice.lines)
    return invoice


# ------------------------------------------------------------------------------------- PDF


def test_invoice_pdf_shows_parties_lines_totals_and_terbilang(app, read_pdf):
    with app.app_context():
        text, layout, pages = read_pdf(exports.render_invoice_pdf(make_invoice()))
    assert pages == 1
    for wanted in ("FAKTUR TAGIHAN", "INVOICE", "0001/INV-SCM/XI/2026", "PT Distribusi Meterai Nusantara",
                   "PT Pemungut Contoh Tbk", f"NPWP {format_npwp(SELLER_NPWP)}", f"NPWP {format_npwp(BUYER_NPWP)}",
                   "Periode tagihan November 2026", "Jatuh tempo 15 Desember 2026", "KTR/2026/001",
                   "Pemakaian e-Meterai November 2026", "Pemakaian terlambat dilaporkan — Oktober 2026",
                   "Biaya layanan", "1.200 Rp10.000 Rp12.000.000", "Subtotal Rp12.345.000",
                   "PPN 12% atas biaya layanan (DPP Rp41.250) — dipungut sendiri oleh WAPU",
                   "Total tagihan Rp12.345.000", f"TERBILANG: {TERBILANG}",
                   TERBILANG, "Bank Mandiri", "123-00-0987654-3", "cantumkan nomor faktur pada berita transfer",
                   "Halaman 1 dari 1"):
        assert wanted in text, wanted
    assert re.fullmatch(r"\d\d\.\d{3}\.\d{3}\.\d-\d{3}\.\d{3}", format_npwp(SELLER_NPWP))  # 15 digits: dotted
    assert "Rp12.349.950" not in text  # PPN (Rp4.950) is shown but not added to the total
    assert re.search(r"Total tagihan\s+Rp12\.345\.000", layout)


def test_the_pdf_is_indonesian_whatever_the_users_language(app, read_pdf):
    from flask_babel import force_locale

    with app.test_request_context("/"), force_locale("en"):
        text, _, _ = read_pdf(exports.render_invoice_pdf(make_invoice()))
    assert "Total tagihan Rp12.345.000" in text and "15 Desember 2026" in text


def test_a_draft_says_so_and_has_no_number(app, read_pdf):
    with app.app_context():
        text, _, pages = read_pdf(exports.render_invoice_pdf(make_invoice(number=None)))
    assert pages == 1
    assert "DRAF — belum diterbitkan" in text
    assert "Tanggal terbit —" in text


def test_a_long_invoice_runs_over_two_pages_with_the_total_once(app, read_pdf):
    lines = [(LineKind.USAGE, NOV, 1200, 10_000)] + [(LineKind.LATE_USAGE, OCT, 1, 10_000)] * 59
    with app.app_context():
        text, _, pages = read_pdf(exports.render_invoice_pdf(make_invoice(lines=lines)))
    assert pages == 2
    assert text.count("Total tagihan") == 1
    assert text.count("Uraian") == 2  # the table header repeats on the second page
    assert "Halaman 1 dari 2" in text and "Halaman 2 dari 2" in text


def test_credit_note_pdf_is_negative_and_names_the_invoice(app, read_pdf):
    invoice = make_invoice()
    note = CreditNote(invoice=invoice, number="0001/NK-SCM/XII/2026", issue_date=date(2026, 12, 5),
                      amount=300_000, reason="Pemakaian Oktober tercatat ganda")
    with app.app_context():
        text, _, pages = read_pdf(exports.render_credit_note_pdf(note))
    assert pages == 1
    for wanted in ("NOTA KREDIT", "0001/NK-SCM/XII/2026", "5 Desember 2026", "Atas faktur 0001/INV-SCM/XI/2026",
                   "November 2026", "-Rp300.000", "Tiga ratus ribu rupiah", "Pemakaian Oktober tercatat ganda",
                   "PT Distribusi Meterai Nusantara", "PT Pemungut Contoh Tbk", format_npwp(SELLER_NPWP),
                   format_npwp(BUYER_NPWP)):
        assert wanted in text, wanted


# --------------------------------------------------------------------- what WeasyPrint may load


def test_the_fetcher_serves_only_files_in_the_static_folder(app, tmp_path):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "ok.css").write_text("p {}")
    (tmp_path / "secret.css").write_text("p {}")
    (static / "link.css").symlink_to(tmp_path / "secret.css")
    fetcher = exports.StaticFilesOnly(static)
    assert fetcher.fetch(f"{fetcher.base_url}css/ok.css").read() == b"p {}"
    for url in ("http://127.0.0.1:9/x.png", "https://example.com/x.css", "file:///etc/passwd",
                f"{fetcher.base_url}../secret.css", f"{fetcher.base_url}css/../../secret.css",
                f"{fetcher.base_url}link.css", "data:text/css,p{}", "ftp://example.com/x", f"{fetcher.base_url}missing"):
        with pytest.raises(ValueError, match="refused"):
            fetcher.fetch(url)


class _Recorder(http.server.BaseHTTPRequestHandler):
    paths: list = []

    def do_GET(self):
        self.paths.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"body::after { content: 'FROM-NETWORK' }")

    def log_message(self, *args):
        pass


def test_a_pdf_loads_nothing_from_the_network_or_outside_static(app, tmp_path, read_pdf):
    static = tmp_path / "static"
    shutil.copytree(app.static_folder, static)
    (static / "ok.css").write_text("body::after { content: 'FROM-STATIC' }")
    (tmp_path / "leak.css").write_text("body::after { content: 'FROM-OUTSIDE' }")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = f"http://127.0.0.1:{server.server_port}"
    html = (f'<html><head><link rel="stylesheet" href="{remote}/x.css">'
            f'<link rel="stylesheet" href="file://{tmp_path}/leak.css"><link rel="stylesheet" href="../leak.css">'
            '<link rel="stylesheet" href="file:///etc/passwd"><link rel="stylesheet" href="ok.css"></head>'
            f'<body><p>Isi</p><img src="{remote}/logo.png"><img src="file:///etc/passwd"></body></html>')
    app.static_folder = str(static)
    try:
        with app.app_context():
            text, _, _ = read_pdf(exports.html_to_pdf(html))
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.paths == []
    assert "FROM-STATIC" in text  # a static file is loaded ...
    assert "FROM-OUTSIDE" not in text and "FROM-NETWORK" not in text and "root:" not in text  # ... nothing else


# ------------------------------------------------------------------------------------ XLSX


def month_workbook(*args, **kwargs) -> bytes:
    """The month's workbook as the task and the command write it (to a file), read back as bytes."""
    buffer = io.BytesIO()
    exports.write_month_workbook(buffer, *args, **kwargs)
    return buffer.getvalue()


def cells(sheet, row):
    return [cell.value for cell in sheet[row]]


def test_invoice_workbook_has_header_lines_totals_and_terbilang(app):
    with app.app_context():
        sheet = load_workbook(io.BytesIO(exports.build_invoice_xlsx(make_invoice(buyer=INJECTION)))).active
    values = {row[0].value: row[1] for row in sheet.iter_rows(max_col=2) if row[0].value}
    assert values["Nomor faktur"].value == "0001/INV-SCM/XI/2026"
    assert values["Periode tagihan"].value == "November 2026"
    assert values["Jatuh tempo"].value == datetime(2026, 12, 15)
    assert values["NPWP penjual"].value == format_npwp(SELLER_NPWP)
    assert (values["Pembeli (WAPU)"].value, values["Pembeli (WAPU)"].data_type) == (INJECTION, "s")
    assert (values["Total tagihan"].value, values["Total tagihan"].number_format) == (12_345_000, '"Rp"#,##0')
    assert values["Total tagihan"].font.b
    assert values["Terbilang"].value == TERBILANG
    header = next(row for row in sheet.iter_rows() if row[0].value == "No.")
    assert [cell.value for cell in header] == ["No.", "Uraian", "Kuantitas", "Harga satuan", "Jumlah"]
    assert all(cell.font.b for cell in header)
    first = sheet[header[0].row + 1]
    assert [cell.value for cell in first] == [1, "Pemakaian e-Meterai November 2026", 1200, 10_000, 12_000_000]
    assert [cell.number_format for cell in first[2:]] == ["#,##0", '"Rp"#,##0', '"Rp"#,##0']
    ppn = next(label for label in values if str(label).startswith("PPN 12%"))
    assert values[ppn].value == 4_950 and "tidak termasuk total" in ppn
    assert sheet.column_dimensions["B"].width == 52


SUMMARY = [
    dict(wapu_code="W0001", wapu_name="PT Satu", npwp=SELLER_NPWP, used=1200, minimum=1000, shortfall=0,
         amount=12_000_000, invoice_number="0001/INV-SCM/XI/2026", status="terbit", due_date=date(2026, 12, 15)),
    dict(wapu_code="W0002", wapu_name=INJECTION, npwp=BUYER_NPWP, used=400, minimum=1000, shortfall=600,
         amount=4_000_000, invoice_number=None, status="draf", due_date=None),
]


def stamps(n, start=datetime(2026, 11, 1, 2, tzinfo=timezone.utc)):
    """A generator of ``n`` stamp tuples, serials in order."""
    for i in range(n):
        yield ("W0001", f"SN{i:06d}", start + timedelta(minutes=i), "surat_perjanjian", f"DOC-{i}", "api")


def test_month_workbook_summary_has_values_formats_frozen_header_and_filter(app):
    special = [("W0002", "=1+1", datetime(2026, 11, 30, 16, 30, tzinfo=timezone.utc), "faktur", INJECTION,
                "batch")]
    book = load_workbook(io.BytesIO(month_workbook(NOV, iter(SUMMARY), iter(special))))
    assert book.sheetnames == ["Ringkasan", "Rincian"]
    summary = book["Ringkasan"]
    assert "November 2026" in summary["A1"].value
    assert cells(summary, 2)[:4] == ["Kode WAPU", "Nama WAPU", "NPWP", "Terpakai"] and summary["A2"].font.b
    assert cells(summary, 3) == ["W0001", "PT Satu", format_npwp(SELLER_NPWP), 1200, 1000, 0, 12_000_000,
                                 "0001/INV-SCM/XI/2026", "terbit", datetime(2026, 12, 15)]
    assert cells(summary, 4)[:3] == ["W0002", INJECTION, format_npwp(BUYER_NPWP)] and cells(summary, 4)[7] is None
    assert format_npwp(BUYER_NPWP).count(" ") == 3  # 16 digits are written in groups, like 15 digits are
    assert summary["B4"].data_type == "s"
    assert [summary.cell(3, column).number_format for column in (4, 7, 10)] == ["#,##0", '"Rp"#,##0', "dd/mm/yyyy"]
    assert summary.freeze_panes == "A3" and summary.auto_filter.ref == "A2:J4"
    assert summary.column_dimensions["B"].width == 36
    detail = book["Rincian"]
    assert cells(detail, 2) == ["W0002", "=1+1", datetime(2026, 11, 30, 23, 30), "faktur", INJECTION, "batch"]
    assert detail["B2"].data_type == "s" and detail["E2"].data_type == "s"
    assert detail["C2"].number_format == "dd/mm/yyyy hh:mm:ss"
    assert detail.freeze_panes == "A2" and detail.auto_filter.ref == "A1:F2"


def test_month_workbook_splits_the_stamps_over_sheets_with_the_header_repeated(app):
    data = month_workbook(NOV, SUMMARY, stamps(250), max_rows_per_sheet=101)
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Ringkasan", "Rincian", "Rincian 2", "Rincian 3"]
    serials = []
    for name, rows in (("Rincian", 100), ("Rincian 2", 100), ("Rincian 3", 50)):
        sheet = book[name]
        assert sheet.max_row == rows + 1
        assert cells(sheet, 1) == ["Kode WAPU", "Nomor seri", "Waktu pembubuhan (WIB)", "Jenis dokumen",
                                   "Nomor dokumen", "Sumber"]
        assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == f"A1:F{rows + 1}"
        serials += [row[1].value for row in sheet.iter_rows(min_row=2)]
    assert serials == [f"SN{i:06d}" for i in range(250)]
    assert book["Rincian"]["C2"].value == datetime(2026, 11, 1, 9)  # 02:00 UTC is 09:00 WIB


def test_a_full_last_sheet_leaves_no_empty_one_and_no_stamps_still_gives_a_header(app):
    assert load_workbook(io.BytesIO(month_workbook(NOV, [], stamps(200), max_rows_per_sheet=101)
                                    )).sheetnames == ["Ringkasan", "Rincian", "Rincian 2"]
    empty = load_workbook(io.BytesIO(month_workbook(NOV, [], iter(()))))
    assert empty.sheetnames == ["Ringkasan", "Rincian"] and empty["Rincian"].max_row == 1
    with pytest.raises(ValueError, match="max_rows_per_sheet"):
        month_workbook(NOV, [], stamps(3), max_rows_per_sheet=1)


def test_shortfall_workbook(app):
    rows = [dict(wapu_code="W0002", wapu_name=INJECTION, npwp=SELLER_NPWP, minimum=1000, used=400, shortfall=600)]
    with app.app_context():
        sheet = load_workbook(io.BytesIO(exports.build_shortfall_xlsx(NOV, rows))).active
    assert sheet.title == "Kekurangan" and "November 2026" in sheet["A1"].value
    assert cells(sheet, 2) == ["Kode WAPU", "Nama WAPU", "NPWP", "Minimum", "Terpakai", "Kekurangan"]
    assert cells(sheet, 3) == ["W0002", INJECTION, format_npwp(SELLER_NPWP), 1000, 400, 600]
    assert sheet["B3"].data_type == "s" and sheet["F3"].number_format == "#,##0"
    assert sheet.freeze_panes == "A3" and sheet.auto_filter.ref == "A2:F3"


# ------------------------------------------------------------------------ from the database


def test_exports_of_an_invoice_loaded_from_the_database(app, factory, read_pdf):
    from sqlalchemy import select

    from scm.billing import reports, services
    from scm.core.database import unit_of_work
    from scm.extensions import db

    wapu = factory.wapu()
    late_evening = datetime(2026, 11, 30, 16, 30, tzinfo=timezone.utc)  # 23:30 WIB, still November
    with app.app_context():
        insert_stamps(wapu["id"], [late_evening] + [late_evening - timedelta(days=1)] * 9)
        with unit_of_work():
            services.run_billing(NOV, source="cli", today=date(2026, 12, 1))
        db.session.expire_all()
        invoice = db.session.execute(select(Invoice).where(Invoice.wapu_id == wapu["id"])).scalar_one()
        assert exports.invoice_file_name(invoice) == f"DRAF-{wapu['code']}.pdf"
        text, _, pages = read_pdf(exports.render_invoice_pdf(invoice))
        assert pages == 1 and "DRAF — belum diterbitkan" in text and format_npwp(invoice.buyer_npwp) in text
        book = load_workbook(io.BytesIO(month_workbook(NOV, [], reports.stamp_rows(NOV))))
        times = [row[2].value for row in book["Rincian"].iter_rows(min_row=2)]
        assert datetime(2026, 11, 30, 23, 30) in times and len(times) == 10
        sheet = load_workbook(io.BytesIO(exports.build_invoice_xlsx(invoice))).active
        assert any(row[0].value == "Total tagihan" and row[1].value == invoice.total_due
                   for row in sheet.iter_rows(max_col=2))
