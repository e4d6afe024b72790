"""What a new user tripped on (issue #10): Indonesian numbers, history in time order, document-type
names, and an audit log people can read, filter and export."""

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from scm.core.database import unit_of_work, utcnow
from scm.extensions import db
from scm.procurement.models import PurchaseRequest
from scm.quota.services import issue_quota
from scm.stamping.services import StampEvent, StampInput, commit_stamp, ingest_events, reserve_stamp

# Words an English message is made of and no Indonesian one uses.
ENGLISH = {"the", "not", "valid", "must", "field", "value", "enter", "this", "required", "number", "characters",
           "between", "invalid", "please", "choose", "is", "longer", "least", "most", "choice"}


def errors_on(page):
    """Every error message a form page shows: beside fields and at the top."""
    found = re.findall(r'class="invalid-feedback[^"]*"[^>]*>(.*?)</div>', page, re.S)
    found += re.findall(r'class="alert alert-danger[^"]*"[^>]*>(.*?)</div>', page, re.S)
    return [re.sub(r"<[^>]+>", " ", text).strip() for text in found if text.strip()]


def english_in(messages):
    return [m for m in messages if len(ENGLISH & set(re.findall(r"[a-z]+", m.lower()))) >= 2]


# --------------------------------------------------------------------------- Indonesian numbers


@pytest.mark.parametrize("typed, stored", [("5.000", 5000), ("5000", 5000), ("125.000", 125_000), (" 12 ", 12)])
def test_a_quantity_is_accepted_with_indonesian_grouping(app, factory, login_as, typed, stored):
    wapu = factory.wapu(1001)
    staff = login_as("WAPU_STAFF", wapu_id=wapu["id"])
    response = staff.post("/purchase-requests/new", {"quantity": typed, "purpose": "Ijazah", "save": "1"})
    assert response.status_code == 302, errors_on(response.get_data(as_text=True))
    with app.app_context():
        assert db.session.execute(select(PurchaseRequest.quantity)).scalar_one() == stored


@pytest.mark.parametrize("typed", ["5,000", "5.00", "lima ribu", "5.000,50", "-5"])
def test_a_bad_quantity_is_refused_in_indonesian_and_nothing_is_saved(app, factory, login_as, typed):
    wapu = factory.wapu(1002)
    staff = login_as("WAPU_STAFF", wapu_id=wapu["id"])
    page = staff.post("/purchase-requests/new", {"quantity": typed, "save": "1"}).get_data(as_text=True)
    assert "Isi bilangan bulat, mis. 5.000." in errors_on(page)
    assert 'value="' + typed.strip() in page  # what was typed is shown again
    with app.app_context():
        assert db.session.execute(select(PurchaseRequest.id)).first() is None


def test_a_negative_adjustment_with_grouping_is_accepted(app, factory, login_as):
    wapu = factory.wapu(1003)
    with app.app_context(), unit_of_work():
        issue_quota(wapu["id"], quantity=5000, key="po-n1", reference="PO/N/1")
    admin = login_as("DIST_ADMIN")
    response = admin.post(f"/quota/wapus/{wapu['id']}", {"delta": "-1.500", "reason": "koreksi"})
    assert response.status_code == 302
    assert "3.500" in admin.get(f"/quota/wapus/{wapu['id']}").get_data(as_text=True)


def test_every_form_answers_wrong_input_in_indonesian(app, factory, login_as, client):
    """Post wrong input to every form as an Indonesian user: no message may be English."""
    wapu = factory.wapu(1004)
    staff = login_as("WAPU_STAFF", wapu_id=wapu["id"])
    admin = login_as("DIST_ADMIN")
    fin = login_as("DIST_FIN")
    spv = login_as("WAPU_SPV", wapu_id=wapu["id"])
    long = "x" * 3000
    tries = [
        (client, "/login", {"email": "bukan-email", "password": ""}),
        (client, "/register", {"name": "", "npwp": "123", "nib": "12", "latitude": "abc", "contract_start": "31-31-2026",
                               "spv_email": "x@", "spv_phone": "12"}),
        (staff, "/purchase-requests/new", {"quantity": "abc", "needed_by": "besok", "purpose": long, "save": "1"}),
        (staff, "/password", {"current_password": "", "new_password": "pendek", "confirm": "lain"}),
        (admin, f"/quota/wapus/{wapu['id']}", {"delta": "1,5", "reason": long}),
        (admin, "/admin/users/new", {"email": "salah", "name": "", "role": "BUKAN"}),
        (spv, "/api-tokens", {"name": long}),
        (admin, "/billing/settings", {"unit_price": "sepuluh", "ppn_rate": "200", "service_fee_per_unit": "1,5",
                                      "distributor_npwp": "1"}),
        (fin, "/billing/invoices", None),
    ]
    shown = []
    for who, url, data in tries:
        response = who.get(url) if data is None else who.post(url, data)
        assert response.status_code < 500, url
        messages = errors_on(response.get_data(as_text=True))
        assert data is None or messages, f"{url} showed no error for wrong input"
        shown += [(url, m) for m in messages]
    assert not english_in([m for _, m in shown]), [pair for pair in shown if english_in([pair[1]])]
    for who, url in ((fin, "/billing/invoices?month=bukan&state=x"), (staff, "/usage?date_from=kemarin&state=x")):
        assert not english_in(errors_on(who.get(url).get_data(as_text=True))), url


# --------------------------------------------------------------------------- history in time order


@pytest.fixture
def mixed_history(app, factory):
    """Failed stamps imported for 25, 27 and 29 Nov (recorded last), and stamps made through the API now."""
    wapu = factory.wapu(1010)
    now = utcnow()
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=100, key="po-h1", reference="PO/H/1")
        for i in range(3):
            with unit_of_work():
                reserve_stamp(wapu["id"], None, data=StampInput(f"API-{i}", "surat_perjanjian"))
            with unit_of_work():
                commit_stamp(wapu["id"], f"API-{i}")
        with unit_of_work():
            ingest_events(wapu["id"], None, source="file", now=datetime(2026, 11, 30, 4, tzinfo=timezone.utc), events=[
                StampEvent(f"OLD-{day}", "failed", datetime(2026, 11, day, 3, tzinfo=timezone.utc), "akta_notaris")
                for day in (29, 25, 27)])
            ingest_events(wapu["id"], None, source="file", events=[
                StampEvent(f"SAME-{i}", "stamped", now - timedelta(days=1), "cek") for i in range(60)])
    return wapu


def test_history_is_newest_first_by_the_time_shown(app, mixed_history, login_as):
    client = login_as("WAPU_FIN", wapu_id=mixed_history["id"])
    page = client.get("/usage").get_data(as_text=True)
    serials = re.findall(r'data-serial="([^"]+)"', page)
    assert serials[:3] == ["API-2", "API-1", "API-0"]  # today's API stamps first, though recorded before the import
    older = re.search(r'href="(/usage\?before=\d+)"', page).group(1)
    rest = re.findall(r'data-serial="([^"]+)"', client.get(older).get_data(as_text=True))
    everything = serials + rest
    assert everything[-3:] == ["OLD-29", "OLD-27", "OLD-25"]
    assert len(everything) == len(set(everything)) == 66  # the keyset pages neither skip nor repeat a stamp
    book = load_workbook(io.BytesIO(client.get("/usage/export.xlsx").data), read_only=True)
    assert [row[0] for row in book.active.iter_rows(min_row=2, values_only=True)] == everything


def test_distributor_history_is_in_time_order_too(app, mixed_history, login_as):
    page = login_as("DIST_SPV").get(f"/usage?wapu={mixed_history['code']}").get_data(as_text=True)
    assert re.findall(r'data-serial="([^"]+)"', page)[:3] == ["API-2", "API-1", "API-0"]


def test_the_api_documents_its_history_order(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    described = spec["paths"]["/stamps"]["get"]
    assert "recorded" in (described["summary"] + described.get("description", "")).lower()


# --------------------------------------------------------------------------- document types by name


def test_document_types_show_by_name_not_code(app, mixed_history, login_as):
    client = login_as("WAPU_FIN", wapu_id=mixed_history["id"])
    page = client.get("/usage").get_data(as_text=True)
    text = re.sub(r"<[^>]+>", " ", page)
    assert "Surat perjanjian" in text and "Akta notaris" in text and "Cek" in text
    assert not re.search(r"\b(surat_perjanjian|akta_notaris|dokumen_lain)\b", text)  # no code shows as text
    assert '<option value="akta_notaris">Akta notaris</option>' in page  # the filter: codes as values only
    with app.app_context():
        from scm.stamping.models import Stamp

        stamp_id = db.session.execute(select(Stamp.id).where(Stamp.serial == "OLD-25")).scalar_one()
    assert "Akta notaris" in client.get(f"/usage/stamps/{stamp_id}").get_data(as_text=True)
    client.post("/language", {"lang": "en", "next": "/usage"})
    assert "Notarial deed" in client.get("/usage").get_data(as_text=True)


# --------------------------------------------------------------------------- the audit log


@pytest.fixture
def audited(app, factory, login_as):
    """An order issued as quota, an adjustment and a refused login: entries of several kinds."""
    wapu = factory.wapu(1020)
    admin = login_as("DIST_ADMIN")
    with app.app_context(), unit_of_work():
        issue_quota(wapu["id"], quantity=5000, key="po-a1", reference="PO/W/1")
    admin.post(f"/quota/wapus/{wapu['id']}", {"delta": "-1.250", "reason": "salah input"})
    return wapu, admin


def test_the_audit_log_reads_in_indonesian_with_business_references(app, audited):
    wapu, admin = audited
    page = admin.get("/admin/audit").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert f"+5.000 ke {wapu['code']} (PO/W/1)" in text and "Kuota diterbitkan" in text
    assert f"−1.250 untuk {wapu['code']}: salah input" in text and "Kuota dikoreksi" in text
    assert "WAPU dibuat" in text and "Pendaftaran disetujui" in text
    assert not re.search(r"\b(quota\.issue|quota\.adjust|auth\.login)\b", text)  # action codes only in attributes
    assert 'data-action="quota.issue"' in page
    assert not re.search(r"\b(User|QuotaEntry|Wapu) \d+\b", text)  # objects are named, not numbered
    assert wapu["code"] in text


def test_the_audit_log_filters_by_object_and_exports_what_it_shows(app, audited):
    wapu, admin = audited
    page = admin.get(f"/admin/audit?object={wapu['code'].lower()}").get_data(as_text=True)
    actions = set(re.findall(r'data-action="([^"]+)"', page))
    assert actions == {"wapu.create", "quota.issue", "quota.adjust"}, actions
    book = load_workbook(io.BytesIO(admin.get(f"/admin/audit/export.xlsx?object={wapu['code']}").data))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][:3] == ("Waktu (WIB)", "Pelaku", "Tindakan") and len(rows) == 4
    assert {row[3] for row in rows[1:]} == actions and isinstance(rows[1][0], datetime)
    response = admin.get(f"/admin/audit/export.csv?object={wapu['code']}&action=quota.")
    assert response.headers["Cache-Control"] == "private, no-store" and "attachment" in response.headers[
        "Content-Disposition"]
    lines = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(lines) == 3 and {line[3] for line in lines[1:]} == {"quota.issue", "quota.adjust"}
    assert any("−1.250" in line[7] for line in lines[1:])


def test_a_formula_in_the_audit_export_stays_text(app, audited):
    wapu, admin = audited
    admin.post(f"/quota/wapus/{wapu['id']}", {"delta": "5", "reason": "=HYPERLINK(\"http://x\")"})
    lines = list(csv.reader(io.StringIO(admin.get("/admin/audit/export.csv?action=quota.adjust").get_data(
        as_text=True).lstrip("\ufeff"))))
    assert all(not cell.startswith("=") for line in lines for cell in line)
    book = load_workbook(io.BytesIO(admin.get("/admin/audit/export.xlsx?action=quota.adjust").data))
    cells = [cell for row in book.active.iter_rows(min_row=2) for cell in row if isinstance(cell.value, str)]
    assert all(cell.data_type == "s" for cell in cells if cell.value.startswith("="))


def test_old_entries_without_details_still_show_their_summary(app, audited):
    _, admin = audited
    with app.app_context():
        from scm.core.models import AuditLog

        with unit_of_work():
            db.session.add(AuditLog(action="quota.issue", summary="+7 to WAPU 1 (lama)", actor_label="system"))
    assert "+7 to WAPU 1 (lama)" in admin.get("/admin/audit?action=quota.issue").get_data(as_text=True)


# --------------------------------------------------------------------------- the due date rule


def test_a_late_issue_shows_why_it_falls_due_14_days_after_issue(app, factory, login_as):
    from datetime import date

    from scm.auth.services import find_active_user
    from scm.billing import services
    from scm.billing.models import Invoice
    from tests.fixtures.factories import insert_stamps

    early, late = factory.wapu(1030), factory.wapu(1031)
    fin_email = factory.user("DIST_FIN")
    october = date(2026, 10, 1)
    with app.app_context():
        for wapu in (early, late):
            insert_stamps(wapu["id"], [datetime(2026, 10, 5, 3, tzinfo=timezone.utc)] * 3)
        with unit_of_work():
            services.run_billing(october, None, source="cli", today=date(2026, 11, 2))
        ids = {row.wapu_id: row.id for row in db.session.execute(select(Invoice.wapu_id, Invoice.id))}
        with unit_of_work():
            services.issue_invoice(ids[early["id"]], find_active_user(fin_email), today=date(2026, 11, 5))
        with unit_of_work():
            services.issue_invoice(ids[late["id"]], find_active_user(fin_email), today=date(2026, 11, 20))
    fin = login_as("DIST_FIN")
    on_time = fin.get(f"/billing/invoices/{ids[early['id']]}").get_data(as_text=True)
    assert "10 November 2026" in on_time and 'data-testid="due-rule"' not in on_time
    late_page = fin.get(f"/billing/invoices/{ids[late['id']]}").get_data(as_text=True)
    assert "4 Desember 2026" in late_page
    assert re.search(r'data-testid="due-rule">[^<]*14 hari setelah', late_page)


# --------------------------------------------------------------------------- a new WAPU's first month


def test_a_wapu_approved_mid_month_is_not_told_it_is_short_in_its_exempt_first_month(app, factory):
    """Its contract started in January, but it became a customer on 17 November: November is its
    partial first month, exempt by the default terms (no warning, no minimum); December is full."""
    from datetime import date, time

    from scm.billing.models import MinimumWarning
    from scm.billing.tasks import send_minimum_warnings
    from scm.billing.usage import check_month
    from scm.core.formatting import WIB
    from scm.registration.models import Wapu

    newcomer = factory.wapu(1040, joined_today=True)
    veteran = factory.wapu(1041)
    with app.app_context():
        with unit_of_work():
            db.session.get(Wapu, newcomer["id"]).created_at = datetime.combine(date(2026, 11, 17), time(10), WIB)
        checks = {c.wapu.id: c for c in check_month(date(2026, 11, 1), date(2026, 11, 20))}
        assert checks[newcomer["id"]].minimum == 0 and not checks[newcomer["id"]].below
        assert checks[veteran["id"]].minimum == 1000 and checks[veteran["id"]].below
        december = {c.wapu.id: c.minimum for c in check_month(date(2026, 12, 1), date(2026, 12, 20))}
        assert december[newcomer["id"]] == 1000
        with unit_of_work():
            send_minimum_warnings(date(2026, 11, 25))  # a warning day (15 and 25 by default)
        warned = set(db.session.execute(select(MinimumWarning.wapu_id)).scalars())
    assert veteran["id"] in warned and newcomer["id"] not in warned


# --------------------------------------------------------------------------- the movements page


def test_movements_group_reported_stamps_and_show_signs_and_the_balance(app, mixed_history, login_as):
    page = login_as("WAPU_FIN", wapu_id=mixed_history["id"]).get("/quota").get_data(as_text=True)
    rows = re.findall(r'<tr data-kind="(\w+)" data-entries="(\d+)">.*?data-testid="change">(.*?)</td>\s*'
                      r'<td class="text-end">([\d.]+)</td>', page, re.S)
    shown = [(kind, int(entries), re.sub(r"<[^>]+>", "", change).strip(), after) for kind, entries, change, after in rows]
    assert shown[0] == ("consume", 60, "−60", "37")  # one row for the 60 stamps reported together
    assert shown[1:3] == [("commit", 1, "0", "97"), ("reserve", 1, "−1", "97")]
    assert shown[-1] == ("issue", 1, "+100", "100")
    assert len(shown) == 8  # issue, 3 × (reserve, commit), one batch: not one row per stamp


# --------------------------------------------------------------------------- usage import preview


def test_the_import_preview_shows_the_months_and_warns_about_invoiced_ones(app, factory, login_as):
    """Stamps of two months ago (invoiced) and of last month: both within the look-back of two
    months, whatever today is (the months are counted back from today, WIB)."""
    from datetime import date, timedelta

    from flask_babel import force_locale

    from scm.auth.services import find_active_user
    from scm.billing import services
    from scm.core.formatting import format_month, today_wib
    from tests.fixtures.factories import insert_stamps

    def months_back(n):
        index = today_wib().year * 12 + today_wib().month - 1 - n
        return date(index // 12, index % 12 + 1, 1)

    invoiced, open_month = months_back(2), months_back(1)
    wapu = factory.wapu(1050)
    fin = factory.user("DIST_FIN")
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=100, key="po-m1", reference="PO/M/1")
        insert_stamps(wapu["id"], [datetime(invoiced.year, invoiced.month, 10, 3, tzinfo=timezone.utc)] * 2)
        with unit_of_work():
            services.run_billing(invoiced, None, source="cli", today=open_month + timedelta(days=1))
        with unit_of_work():
            services.issue_drafts(invoiced, find_active_user(fin), today=open_month + timedelta(days=1))
    rows = ["serial,wapu_code,stamped_at,document_type,status"]
    rows += [f"S9-{i},{wapu['code']},{invoiced:%Y-%m}-2{i}T10:00:00+07:00,cek,stamped" for i in range(3)]
    rows += [f"S10-{i},{wapu['code']},{open_month:%Y-%m}-0{i + 1}T10:00:00+07:00,cek,stamped" for i in range(2)]
    admin = login_as("DIST_ADMIN")
    page = admin.post("/usage/import", {"file": (io.BytesIO("\n".join(rows).encode()), "pemakaian.csv")},
                      content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
    months = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(r'data-testid="months">(.*?)</td>', page, re.S).group(1)))
    with app.test_request_context(), force_locale("id"):
        assert f"{format_month(invoiced)}: 3" in months and f"{format_month(open_month)}: 2" in months
    assert re.findall(r'data-invoiced="([\d-]+)"', page) == [f"{invoiced:%Y-%m}"]
    assert 'data-testid="late-usage-warning"' in page


# --------------------------------------------------------------------------- English mode and NPWPs


def test_english_mode_writes_times_the_english_way_and_gives_the_amount_in_english_words(app, factory, login_as):
    from datetime import date

    from scm.auth.services import find_active_user
    from scm.billing import services
    from scm.billing.models import Invoice
    from tests.fixtures.factories import insert_stamps

    wapu = factory.wapu(1060)
    fin_email = factory.user("DIST_FIN")
    with app.app_context():
        insert_stamps(wapu["id"], [datetime(2026, 10, 5, 3, tzinfo=timezone.utc)] * 12)
        with unit_of_work():
            services.run_billing(date(2026, 10, 1), None, source="cli", today=date(2026, 11, 2))
        invoice_id = db.session.execute(select(Invoice.id)).scalar_one()
        with unit_of_work():
            services.issue_invoice(invoice_id, find_active_user(fin_email), today=date(2026, 11, 2))
    fin = login_as("DIST_FIN")
    indonesian = fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert "Seratus dua puluh ribu rupiah" in indonesian and 'data-testid="terbilang-en"' not in indonesian
    fin.post("/language", {"lang": "en", "next": "/"})
    english = fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert "Seratus dua puluh ribu rupiah" in english  # the legal words stay on the page
    assert re.search(r'data-testid="terbilang-en">One hundred and twenty thousand rupiah<', english)
    with app.test_request_context():
        from flask_babel import force_locale

        from scm.core.formatting import format_wib

        moment = datetime(2026, 11, 23, 13, 24, tzinfo=timezone.utc)
        with force_locale("en"):
            assert format_wib(moment) == "23 Nov 2026 20:24 WIB"
        with force_locale("id"):
            assert format_wib(moment) == "23 Nov 2026 20.24 WIB"


def test_a_16_digit_npwp_is_formatted_everywhere(app, factory, login_as):
    from scm.auth.services import find_active_user
    from scm.registration.models import Registration
    from scm.registration.services import approve_registration
    from tests.fixtures.factories import valid_npwp

    npwp16 = valid_npwp(1070, digits=16)
    reg = factory.registration(1070, npwp=npwp16)
    shown = " ".join(npwp16[i:i + 4] for i in range(0, 16, 4))
    reviewer = login_as("DIST_SPV")
    assert f'data-testid="npwp">{shown}<' in reviewer.get(f"/registrations/{reg['id']}").get_data(as_text=True)
    with app.app_context(), unit_of_work():
        approve_registration(db.session.get(Registration, reg["id"]), find_active_user(reviewer.email))
    output = app.test_cli_runner().invoke(args=["wapu", "list"]).output
    assert f"\t{shown}\t" in output and npwp16 not in output
    assert shown in reviewer.get("/wapus").get_data(as_text=True)
