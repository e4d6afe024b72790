"""Usage reports from a file (CSV or XLSX): every row checked first, a preview, one unit of work to
apply, idempotent re-imports; the DIST_ADMIN page and the ``flask usage import`` command."""

import csv
import io
import re
from datetime import datetime, time, timedelta, timezone

import pytest
from flask_babel import force_locale
from openpyxl import Workbook
from sqlalchemy import event, func, select

from scm.auth.models import User
from scm.core.database import unit_of_work
from scm.core.formatting import WIB
from scm.core.models import AuditLog
from scm.extensions import db
from scm.quota.models import QuotaAccount, QuotaEntry
from scm.quota.services import issue_quota
from scm.registration.models import Wapu
from scm.registration.validators import format_npwp
from scm.stamping import usage_import
from scm.stamping.models import Stamp, StampState
from scm.stamping.usage_import import UsageFileError, apply_usage_file, read_usage_file

HEADER = ["serial", "wapu_code", "stamped_at", "document_type", "status", "document_number"]
# Two days ago, 09:30 WIB: in the stamp time window (not in the future, within the look-back) whatever today is.
DAY = datetime.now(WIB).date() - timedelta(days=2)
WHEN_LOCAL = datetime.combine(DAY, time(9, 30))  # as an XLSX date-time cell holds it (no zone: WIB)
WHEN = f"{DAY}T09:30:00+07:00"
WHEN_UTC = datetime.combine(DAY, time(9, 30), WIB).astimezone(timezone.utc)


def _wapu(app, factory, seed, quota=0):
    """An approved WAPU with ``quota`` e-Meterai issued; returns id, code and NPWP."""
    wapu = factory.wapu(seed)
    with app.app_context():
        if quota:
            with unit_of_work():
                issue_quota(wapu["id"], quantity=quota, key=f"po-test-{seed}", reference="test")
        return {**wapu, "npwp": db.session.get(Wapu, wapu["id"]).npwp}


def _csv(rows, header=HEADER, delimiter=","):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _rows(code, n, prefix="S", status="stamped"):
    return [[f"{prefix}{i:05d}", code, WHEN, "surat_perjanjian", status, f"DOC/{i}"] for i in range(n)]


def _counts(wapu_id):
    stamps = db.session.execute(select(func.count()).select_from(Stamp)).scalar()
    entries = db.session.execute(select(func.count()).select_from(QuotaEntry)).scalar()
    account = db.session.execute(select(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id)).scalar_one()
    return stamps, entries, (account.available, account.consumed)


def _import(app, data, actor=None):
    with app.app_context():
        usage = read_usage_file(data, "usage.csv")
        with unit_of_work():
            return apply_usage_file(usage, actor)


def _errors(app, data):
    with app.app_context(), pytest.raises(UsageFileError) as refused:
        read_usage_file(data, "usage.csv")
    return refused.value.errors


def _verify(app):
    result = app.test_cli_runner().invoke(args=["quota", "verify"])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------------------ service


def test_a_valid_csv_applies_stamps_and_consumes_quota(app, factory):
    one = _wapu(app, factory, 801, quota=10)
    two = _wapu(app, factory, 802, quota=5)
    header = ["Serial", "NPWP", "WAPU_Code", "Stamped_At", "Document_Type", "Status"]
    rows = [["A1", format_npwp(one["npwp"]), "", WHEN, "surat_perjanjian", "stamped"],
            ["A2", one["npwp"], one["code"], f"{WHEN_UTC + timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}Z", "cek", "STAMPED"],
            ["A3", "", one["code"].lower(), WHEN, "akta_notaris", "failed"],
            ["B1", "0" + two["npwp"], "", WHEN, "surat_perjanjian", "stamped"]]
    result = _import(app, _csv(rows, header, delimiter=";"))
    assert result.total == {"applied": 4}
    with app.app_context():
        assert _counts(one["id"])[2] == (8, 2) and _counts(two["id"])[2] == (4, 1)
        states = dict(db.session.execute(select(Stamp.serial, Stamp.state)).all())
        assert states == {"A1": StampState.STAMPED, "A2": StampState.STAMPED, "A3": StampState.FAILED,
                          "B1": StampState.STAMPED}
        a1 = db.session.execute(select(Stamp).where(Stamp.serial == "A1")).scalar_one()
        assert a1.source == "file" and a1.wapu_id == one["id"]
        assert a1.stamped_at == WHEN_UTC
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "usage.import")).scalar_one()
        assert "applied 4" in audit.summary
    _verify(app)


def test_a_valid_xlsx_applies_and_naive_excel_times_are_wib(app, factory):
    wapu = _wapu(app, factory, 803, quota=10)
    book = Workbook()
    sheet = book.active
    sheet.append(["serial", "npwp", "stamped_at", "document_type", "status", "document_number"])
    sheet.append(["X1", wapu["npwp"], WHEN_LOCAL, "surat_perjanjian", "stamped", "D-1"])
    sheet.append([12345, wapu["npwp"], WHEN, "cek", "stamped", None])
    sheet.append([None, None, None, None, None, None])
    sheet.append(["X3", wapu["npwp"], WHEN_LOCAL + timedelta(hours=22, minutes=30), "cek", "failed", None])
    out = io.BytesIO()
    book.save(out)
    result = _import(app, out.getvalue())
    assert result.total == {"applied": 3}
    with app.app_context():
        assert _counts(wapu["id"])[2] == (8, 2)
        x1 = db.session.execute(select(Stamp).where(Stamp.serial == "X1")).scalar_one()
        assert x1.stamped_at == WHEN_UTC
        assert x1.document_number == "D-1"
        assert db.session.execute(select(Stamp.state).where(Stamp.serial == "12345")).scalar() == StampState.STAMPED
    _verify(app)


def test_importing_the_same_file_twice_changes_nothing_the_second_time(app, factory):
    wapu = _wapu(app, factory, 804, quota=10)
    data = _csv(_rows(wapu["code"], 3) + _rows(wapu["code"], 2, prefix="F", status="failed"))
    assert _import(app, data).total == {"applied": 5}
    with app.app_context():
        before = _counts(wapu["id"])
    assert _import(app, data).total == {"duplicate": 5}
    with app.app_context():
        assert _counts(wapu["id"]) == before == (5, 4, (7, 3))
    _verify(app)


def test_stamps_beyond_the_quota_are_refused_the_rest_applied(app, factory):
    wapu = _wapu(app, factory, 805, quota=2)
    result = _import(app, _csv(_rows(wapu["code"], 3)))
    assert result.total == {"applied": 2, "insufficient_quota": 1}
    with app.app_context():
        assert _counts(wapu["id"]) == (2, 3, (0, 2))
    _verify(app)


def test_every_error_is_listed_with_its_row_and_nothing_changes(app, factory):
    wapu = _wapu(app, factory, 806, quota=10)
    other = _wapu(app, factory, 807)
    header = ["serial", "npwp", "wapu_code", "stamped_at", "document_type", "status"]
    code, npwp = wapu["code"], wapu["npwp"]
    rows = [["OK1", "", code, WHEN, "cek", "stamped"],
            ["bad serial!", "", code, WHEN, "cek", "stamped"],
            ["E3", "", "W9999", WHEN, "cek", "stamped"],
            ["E4", "", code, "2026-11-20T09:30:00", "cek", "stamped"],
            ["E5", "", code, WHEN, "kwitansi", "done"],
            ["E6", "", "", WHEN, "cek", "stamped"],
            ["E7", npwp[:8] + str((int(npwp[8]) + 1) % 10) + npwp[9:], "", WHEN, "cek", "stamped"],
            ["E8", npwp, other["code"], WHEN, "cek", "stamped"],
            ["OK1", "", code, WHEN, "cek", "failed"],
            ["OK1", "", code, WHEN, "cek", "stamped"]]
    errors = _errors(app, _csv(rows, header))
    found = {(e.row, e.column) for e in errors}
    assert found == {(3, "serial"), (4, "wapu_code"), (5, "stamped_at"), (6, "document_type"), (6, "status"),
                     (7, "npwp / wapu_code"), (8, "npwp"), (9, "npwp / wapu_code"), (10, "serial")}
    with app.app_context(), force_locale("en"):
        assert "row 2" in str(next(e.message for e in errors if e.row == 10))
        assert _counts(wapu["id"]) == (0, 1, (10, 0))


@pytest.mark.parametrize("data, expected", [
    (b"", "empty"),
    (b"%PDF-1.4\n\xff\xfe\x00binary", "neither"),
    (b"PK\x03\x04 not really a zip", "XLSX"),
    (b"serial,wapu_code,status\nS1,W0001,stamped\n", "Missing column"),
    (b"serial,stamped_at,document_type,status\nS1,2026-11-20T09:30:00+07:00,cek,stamped\n", "npwp or wapu_code"),
    (b"serial,wapu_code,stamped_at,document_type,status\n", "no data rows"),
    ("serial,wapu_code,stamped_at,document_type,status\nS\xe9,W1,x,cek,stamped\n".encode("latin-1"), "UTF-8"),
])
def test_bad_files_are_refused_with_a_clear_message(app, data, expected):
    errors = _errors(app, data)
    assert len(errors) >= 1 and errors[0].row in (None, 1)
    with app.app_context(), force_locale("en"):
        assert any(expected.lower() in str(e.message).lower() for e in errors), [str(e.message) for e in errors]


def test_limits_on_rows_and_size(app, factory, monkeypatch):
    wapu = _wapu(app, factory, 808)
    monkeypatch.setattr(usage_import, "MAX_ROWS", 3)
    errors = _errors(app, _csv(_rows(wapu["code"], 4)))
    with app.app_context(), force_locale("en"):
        assert "more than 3" in str(errors[0].message)
    monkeypatch.setattr(usage_import, "MAX_BYTES", 2 * 1024 * 1024)
    errors = _errors(app, b"serial," + b"x" * 2 * 1024 * 1024)
    with app.app_context(), force_locale("en"):
        assert "larger than 2 MB" in str(errors[0].message)


def _five_thousand_rows(wapu):
    rows = _rows(wapu["code"], 5001)
    rows[4998][4] = "stempel"  # row 5000 of the sheet: the header is row 1
    return _csv(rows)


def test_checking_thousands_of_rows_looks_the_wapus_up_once(app, factory):
    wapu = _wapu(app, factory, 809)
    data = _csv(_rows(wapu["code"], 5000))
    with app.app_context():
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            usage = read_usage_file(data, "big.csv")
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert usage.rows == 5000 and len(statements) <= 2, statements


# ------------------------------------------------------------------------------------------ web


def _upload(client, data, name="usage.csv"):
    """Upload a file: it is held and checked in the queue (here at once); the task's page leads to
    the preview, or to every error."""
    return client.post("/usage/import", {"file": (io.BytesIO(data), name)}, content_type="multipart/form-data",
                       follow_redirects=True)


def _apply(client, token, **kwargs):
    """Apply a held file in the queue; its task's page leads to the counts."""
    return client.post("/usage/import/apply", {"token": token}, follow_redirects=True, **kwargs)


def _token(page):
    return re.search(r'name="token" type="hidden" value="([0-9a-f]{32})"', page).group(1)


def test_admin_uploads_previews_and_applies(app, factory, login_as):
    one = _wapu(app, factory, 810, quota=10)
    two = _wapu(app, factory, 811, quota=10)
    admin = login_as("DIST_ADMIN")
    assert "stamped_at" in admin.get("/usage/import").get_data(as_text=True)
    data = _csv(_rows(one["code"], 3) + _rows(one["code"], 1, prefix="F", status="failed") + _rows(two["code"], 2,
                                                                                                   prefix="T"))
    response = _upload(admin, data)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(rf'data-wapu="{one["code"]}">.*?data-count="stamped">3<.*?data-count="failed">1<', page, re.S)
    assert re.search(rf'data-wapu="{two["code"]}">.*?data-count="stamped">2<.*?data-count="failed">0<', page, re.S)
    with app.app_context():
        assert _counts(one["id"])[:2] == (0, 2)  # the preview changed nothing
    token = _token(page)
    result = _apply(admin, token)
    page = result.get_data(as_text=True)
    assert result.status_code == 200 and 'data-testid="import-result"' in page
    assert re.search(r'data-wapu="total">.*?data-result="applied">6<', page, re.S)
    with app.app_context():
        assert _counts(one["id"]) == (6, 7, (7, 3)) and _counts(two["id"])[2] == (8, 2)
        actor = db.session.execute(select(AuditLog.actor_id).where(AuditLog.action == "usage.import")).scalar_one()
        assert actor == db.session.execute(select(User.id).where(User.email == admin.email)).scalar()
    again = admin.post("/usage/import/apply", {"token": token})
    assert again.status_code == 302  # the held file is gone once applied
    second = _upload(admin, data).get_data(as_text=True)
    assert re.search(rf'data-wapu="{one["code"]}">.*?data-count="known">4<', second, re.S)
    page = _apply(admin, _token(second)).get_data(as_text=True)
    assert re.search(r'data-wapu="total">.*?data-result="duplicate">6<', page, re.S)
    with app.app_context():
        assert _counts(one["id"]) == (6, 7, (7, 3))
    _verify(app)


def test_an_invalid_upload_lists_every_error_and_changes_nothing(app, factory, login_as):
    wapu = _wapu(app, factory, 812, quota=10_000)
    admin = login_as("DIST_ADMIN")
    response = _upload(admin, _five_thousand_rows(wapu))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.findall(r'data-row="(\d+)"', page) == ["5000"]
    rows = _rows(wapu["code"], 4)
    rows[1][0] = "no spaces"
    rows[3][2] = "yesterday"
    page = _upload(admin, _csv(rows)).get_data(as_text=True)
    assert re.findall(r'data-row="(\d+)"', page) == ["3", "5"]
    with app.app_context():
        assert _counts(wapu["id"]) == (0, 1, (10_000, 0))
        assert db.session.execute(select(func.count()).select_from(AuditLog)
                                  .where(AuditLog.action == "usage.import")).scalar() == 0


def test_only_the_distributor_admin_may_import(app, factory, login_as):
    wapu = _wapu(app, factory, 813, quota=10)
    for role in ("WAPU_STAFF", "DIST_SPV"):
        client = login_as(role, wapu_id=wapu["id"] if role.startswith("WAPU") else None)
        assert client.get("/usage/import").status_code == 403
        assert _upload(client, _csv(_rows(wapu["code"], 1))).status_code == 403
        assert client.post("/usage/import/apply", {"token": "0" * 32}).status_code == 403
    with app.app_context():
        assert _counts(wapu["id"])[0] == 0


def test_upload_and_apply_need_the_csrf_token(app, factory, login_as):
    wapu = _wapu(app, factory, 814, quota=10)
    admin = login_as("DIST_ADMIN")
    data = _csv(_rows(wapu["code"], 2))
    refused = admin.post("/usage/import", {"file": (io.BytesIO(data), "u.csv")}, csrf=False,
                         content_type="multipart/form-data")
    assert refused.status_code == 400
    token = _token(_upload(admin, data).get_data(as_text=True))
    assert admin.post("/usage/import/apply", {"token": token}, csrf=False).status_code == 400
    with app.app_context():
        assert _counts(wapu["id"])[0] == 0


# ------------------------------------------------------------------------------------------ command


def test_command_imports_a_valid_file(app, factory, tmp_path):
    wapu = _wapu(app, factory, 815, quota=10)
    path = tmp_path / "usage.csv"
    path.write_bytes(_csv(_rows(wapu["code"], 3)))
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["usage", "import", str(path), "--dry-run"])
    assert dry.exit_code == 0 and f"{wapu['code']}: stamped 3" in dry.output, dry.output
    with app.app_context():
        assert _counts(wapu["id"]) == (0, 1, (10, 0))
    result = runner.invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 0 and "applied 3" in result.output, result.output
    with app.app_context():
        assert _counts(wapu["id"]) == (3, 4, (7, 3))
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "usage.import")).scalar_one()
        assert audit.actor_id is None and audit.actor_label == "flask usage import"
    again = runner.invoke(args=["usage", "import", str(path)])
    assert again.exit_code == 0 and "duplicate 3" in again.output
    _verify(app)


def test_command_refuses_an_invalid_file_with_row_numbers(app, factory, tmp_path):
    wapu = _wapu(app, factory, 816, quota=10)
    rows = _rows(wapu["code"], 3)
    rows[0][3] = "kwitansi"
    rows[2][0] = ""
    path = tmp_path / "usage.csv"
    path.write_bytes(_csv(rows))
    result = app.test_cli_runner().invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 1
    assert "row 2: document_type" in result.output and "row 4: serial" in result.output, result.output
    with app.app_context():
        assert _counts(wapu["id"]) == (0, 1, (10, 0))


def test_a_file_previewed_on_one_node_is_applied_on_another(app, factory, login_as, tmp_path):
    """Two web nodes on one database (two app instances, each with its own upload folder, which does not
    even exist): the load balancer sends the preview to one and the apply to the other."""
    from scm import create_app
    from tests.fixtures.client import Client

    one = _wapu(app, factory, 813, quota=10)
    admin = login_as("DIST_ADMIN")
    node_b = create_app("testing", SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                        SECRET_KEY=app.config["SECRET_KEY"], UPLOAD_FOLDER=str(tmp_path / "node-b-uploads"),
                        MAIL_SEND_ON_COMMIT=False, PUBLIC_BASE_URL="http://testserver")
    try:
        on_b = Client(node_b.test_client())
        cookie = admin.raw.get_cookie(app.config["SESSION_COOKIE_NAME"])
        on_b.raw.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value)  # the same browser
        page = _upload(admin, _csv(_rows(one["code"], 3))).get_data(as_text=True)  # node A
        result = _apply(on_b, _token(page))  # node B
        assert result.status_code == 200, result.get_data(as_text=True)[:500]
        assert re.search(r'data-wapu="total">.*?data-result="applied">3<', result.get_data(as_text=True), re.S)
        with app.app_context():
            assert _counts(one["id"])[0] == 3
        assert on_b.post("/usage/import/apply", {"token": _token(page)}).status_code == 302  # released on B
    finally:
        with node_b.app_context():
            db.session.remove()
            db.engine.dispose()
    assert not (tmp_path / "uploads").exists() and not (tmp_path / "node-b-uploads").exists()
