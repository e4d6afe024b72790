"""Findings of the outside security probe (issue #15) that are fixed: each test failed before its fix."""

from urllib.parse import unquote, urlsplit

import pytest

from tests.fixtures.client import Client


def test_a_cookie_replayed_after_logout_is_anonymous(app, factory):
    email = factory.user("DIST_ADMIN")
    client = Client(app.test_client())
    assert client.login(email).status_code == 302
    cookie = client.raw.get_cookie("scm_session").value
    assert client.get("/admin/audit").status_code == 200
    assert client.post("/logout").status_code == 302
    replay = app.test_client()
    replay.set_cookie("scm_session", cookie)
    response = replay.get("/admin/audit")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("target", [
    "/%09/evil.example", "/\t/evil.example", "/%0D%0A/evil.example", "/\r\n/evil.example", "//evil.example",
    "/\\evil.example", "\\\\evil.example", "/%5Cevil.example", "/%2F/evil.example", "/%252F/evil.example",
    "https://evil.example", "http:/evil.example", "//user@evil.example", "/%2F%2Fevil.example", "evil.example",
    "javascript:alert(1)", " /evil", "",
])
def test_login_and_language_never_redirect_off_site(app, factory, target):
    email = factory.user("DIST_FIN")
    client = Client(app.test_client())
    client.raw.get("/login")
    response = client.raw.post("/login", query_string={"next": target},
                               data={"email": email, "password": "Uji-Coba-Sandi-2026", "csrf_token": client.token()})
    assert response.status_code == 302
    assert not leaves_site(response.headers["Location"]), response.headers["Location"]
    response = client.raw.post("/language", data={"lang": "en", "next": target, "csrf_token": client.token(True)})
    assert response.status_code == 302 and not leaves_site(response.headers["Location"])


def leaves_site(location):
    """Whether a browser would leave the site for ``location``: it drops tabs and newlines, reads a
    backslash as a slash, and some hops decode %2F; any of these giving a scheme or ``//`` leaves."""
    for seen in (location, unquote(location)):
        seen = seen.replace("\\", "/").replace("\t", "").replace("\r", "").replace("\n", "")
        if not seen.startswith("/") or seen.startswith("//") or urlsplit(seen).scheme or urlsplit(seen).netloc:
            return True
    return False


@pytest.mark.parametrize("target", ["/billing/invoices?state=issued", "/usage", "/admin/audit?object=W0001"])
def test_a_local_next_is_kept(app, factory, target):
    email = factory.user("DIST_ADMIN")
    client = Client(app.test_client())
    client.raw.get("/login")
    response = client.raw.post("/login", query_string={"next": target},
                               data={"email": email, "password": "Uji-Coba-Sandi-2026", "csrf_token": client.token()})
    assert response.headers["Location"] == target


def test_every_download_is_private_and_not_stored(app, factory, login_as):
    wapu = factory.wapu(1301)
    for role, url in (("WAPU_FIN", "/usage/export.xlsx"), ("DIST_ADMIN", "/admin/audit/export.xlsx"),
                      ("DIST_ADMIN", "/admin/audit/export.csv"),
                      ("DIST_SPV", f"/registrations/{wapu['registration_id']}/contract")):
        client = login_as(role, wapu_id=wapu["id"] if role.startswith("WAPU") else None)
        response = client.get(url)
        response.close()  # a file sent from disk streams: closing ends its request
        assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-store", url


def test_a_carriage_return_in_a_company_name_does_not_stop_the_reviewers_mail(app, factory, mailbox):
    from sqlalchemy import select

    from scm.core.models import OutboxEmail, OutboxState
    from scm.extensions import db

    factory.user("DIST_SPV")
    factory.registration(1310, name="PT Baris\rBaru Sejahtera")
    with app.app_context():
        states = db.session.execute(select(OutboxEmail.state, OutboxEmail.subject)).all()
    assert states and all(state == OutboxState.SENT for state, _ in states), states
    assert all("\r" not in subject and "\n" not in subject for _, subject in states)
    assert mailbox.messages


def test_a_message_that_can_never_be_sent_is_marked_failed_at_once_with_the_reason(app):
    from sqlalchemy import select

    from scm.core.database import unit_of_work
    from scm.core.models import OutboxEmail, OutboxState
    from scm.core.services import deliver_outbox
    from scm.extensions import db

    with app.app_context():
        with unit_of_work():
            db.session.add(OutboxEmail(to_address="a@example.com\r\nBcc: x@evil.example", subject="Halo", body="x"))
        assert deliver_outbox() == (0, 1)
        message = db.session.execute(select(OutboxEmail)).scalar_one()
        assert message.state == OutboxState.FAILED and message.attempts == 1 and "ValueError" in message.last_error
        assert deliver_outbox() == (0, 0)  # never retried


def test_every_page_has_a_strict_content_security_policy_and_production_sends_hsts(app, client, database_url,
                                                                                    tmp_path):
    from scm import create_app

    for url in ("/", "/login", "/register", "/api/v1/docs", "/no-such-page"):
        policy = client.get(url).headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
    assert "Strict-Transport-Security" not in client.get("/login").headers
    production = create_app("production", SECRET_KEY="x" * 64, SQLALCHEMY_DATABASE_URI=database_url,
                            UPLOAD_FOLDER=str(tmp_path / "uploads"))
    hsts = production.test_client().get("/login").headers["Strict-Transport-Security"]
    assert hsts.startswith("max-age=31536000")


# --------------------------------------------------------------------------- XLSX bombs


def _workbook_with_sheet(sheet_xml: bytes) -> bytes:
    """A real workbook whose first sheet's XML is replaced by ``sheet_xml``."""
    import io
    import zipfile

    from openpyxl import Workbook

    buffer = io.BytesIO()
    Workbook().save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = sheet_xml if item.filename == "xl/worksheets/sheet1.xml" else source.read(item.filename)
            target.writestr(item.filename, data)
    return out.getvalue()


SHEET = (b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
         b'<dimension ref="%s"/><sheetData>%s</sheetData></worksheet>')
HEADER = (b'<row r="1"><c r="A1" t="inlineStr"><is><t>serial</t></is></c><c r="B1" t="inlineStr"><is><t>wapu_code'
          b'</t></is></c><c r="C1" t="inlineStr"><is><t>stamped_at</t></is></c><c r="D1" t="inlineStr"><is><t>'
          b'document_type</t></is></c><c r="E1" t="inlineStr"><is><t>status</t></is></c></row>')


def _import_within_a_second(admin, data):
    """Upload ``data`` and time the answer (bounds in the tests are loose: speed lives in benchmarks,
    the probe's files took 94 s and ~80 min before the fix; on an idle machine each answers in well
    under a second)."""
    import io
    import time

    started = time.monotonic()
    response = admin.post("/usage/import", {"file": (io.BytesIO(data), "pemakaian.xlsx")},
                          content_type="multipart/form-data", follow_redirects=True)  # checked in the queue
    return response, time.monotonic() - started


def test_a_sheet_declaring_every_cell_is_refused_within_a_second(app, login_as):
    last = b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    data = _workbook_with_sheet(SHEET % (b"A1:XFD1048576", HEADER + last))
    assert len(data) < 10_000
    response, seconds = _import_within_a_second(login_as("DIST_ADMIN"), data)
    assert response.status_code == 422 and seconds < 5, seconds  # (was ~80 minutes of CPU before the fix)
    assert "200.000" in response.get_data(as_text=True)  # more rows than allowed, said in Indonesian


def test_a_workbook_inflating_to_millions_of_empty_rows_is_refused_before_it_is_parsed(app, login_as, monkeypatch):
    from scm.core import xlsx

    def never(*args, **kwargs):
        raise AssertionError("the bomb reached the XLSX parser")

    monkeypatch.setattr(xlsx, "load_workbook", never)
    data = _workbook_with_sheet(SHEET % (b"A1:E2000001", HEADER + b"<row/>" * 2_000_000))
    assert len(data) < 300_000  # a few hundred KB on disk, 2 million rows once unpacked
    response, seconds = _import_within_a_second(login_as("DIST_ADMIN"), data)
    assert response.status_code == 422 and seconds < 5, seconds  # (was 94 s and +190 MB before the fix)
    assert "terlalu besar" in response.get_data(as_text=True)


def test_empty_rows_count_toward_the_row_limit(app, login_as, monkeypatch):
    from scm.core import xlsx
    from scm.stamping import usage_import

    monkeypatch.setattr(xlsx, "MAX_RATIO", 10**9)  # past the size check: the row count must stop it
    monkeypatch.setattr(usage_import, "MAX_ROWS", 1000)
    rows = b"".join(b'<row r="%d"/>' % n for n in range(2, 50_002))
    response, seconds = _import_within_a_second(login_as("DIST_ADMIN"), _workbook_with_sheet(
        SHEET % (b"A1:E50001", HEADER + rows)))
    assert response.status_code == 422 and seconds < 5
    assert "1.000" in response.get_data(as_text=True)
