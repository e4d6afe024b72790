"""Billing through the web: who may do what, tenancy, bad input, the finance flow end to end."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from scm.auth.models import Role
from scm.billing.models import CreditNote, Invoice, InvoiceState, Payment
from scm.billing.usage import add_months, month_key, month_of
from scm.core.formatting import today_wib
from scm.extensions import db
from tests.fixtures.factories import insert_stamps

LAST = add_months(month_of(today_wib()), -1)
KEY = month_key(LAST)


def stamps_last_month(app, wapu_id, count):
    start = datetime(LAST.year, LAST.month, 1, 3, tzinfo=timezone.utc)
    with app.app_context():
        insert_stamps(wapu_id, [start + timedelta(minutes=20 * i) for i in range(count)])


def invoice_of(app, wapu_id):
    with app.app_context():
        invoice = db.session.execute(select(Invoice).where(Invoice.wapu_id == wapu_id, Invoice.period == LAST)).scalar()
        return invoice.id if invoice else None


@pytest.fixture
def billed(app, factory, login_as):
    """Two WAPUs with last month's invoices issued through the web by DIST_FIN."""
    first, second = factory.wapu(), factory.wapu()
    stamps_last_month(app, first["id"], 120)
    stamps_last_month(app, second["id"], 30)
    fin = login_as(Role.DIST_FIN)
    assert fin.post(f"/billing/months/{KEY}/run").status_code == 302
    assert fin.post(f"/billing/months/{KEY}/issue").status_code == 302
    return {"fin": fin, "first": first, "second": second,
            "first_invoice": invoice_of(app, first["id"]), "second_invoice": invoice_of(app, second["id"])}


def test_finance_runs_issues_and_collects_a_month(app, billed):
    fin = billed["fin"]
    page = fin.get(f"/billing/months/{KEY}").get_data(as_text=True)
    assert "INV/" in page and 'data-testid="issued">2<' in page
    invoice_id = billed["first_invoice"]
    detail = fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert "Rp1.200.000" in detail and "Satu juta dua ratus ribu rupiah" in detail
    answer = fin.post(f"/billing/invoices/{invoice_id}/payments",
                      data={"paid_on": today_wib().isoformat(), "amount": "Rp 500.000", "reference": "TRF-001"})
    assert answer.status_code == 302
    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        assert (invoice.paid_amount, invoice.balance) == (500_000, 700_000)
        assert invoice.state in (InvoiceState.PARTIALLY_PAID, InvoiceState.OVERDUE)
    pdf = fin.get(f"/billing/invoices/{invoice_id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    assert "no-store" in pdf.headers["Cache-Control"]


def test_bad_payment_input_is_refused_in_indonesian_and_changes_nothing(app, billed):
    fin, invoice_id = billed["fin"], billed["first_invoice"]
    for data, message in (
        ({"paid_on": today_wib().isoformat(), "amount": "1,5", "reference": "X"}, "bulat"),
        ({"paid_on": today_wib().isoformat(), "amount": "99.000.000", "reference": "X"}, "melebihi sisa tagihan"),
        ({"paid_on": (today_wib() + timedelta(days=2)).isoformat(), "amount": "1000", "reference": "X"}, "masa depan"),
        ({"paid_on": today_wib().isoformat(), "amount": "1000", "reference": ""}, "wajib diisi"),
    ):
        answer = fin.post(f"/billing/invoices/{invoice_id}/payments", data=data)
        assert answer.status_code == 422
        assert message in answer.get_data(as_text=True), message
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
        assert db.session.get(Invoice, invoice_id).paid_amount == 0


def test_credit_note_through_the_web(app, billed):
    fin, invoice_id = billed["fin"], billed["second_invoice"]
    answer = fin.post(f"/billing/invoices/{invoice_id}/credit-notes", data={"credit_amount": "300.000", "reason": "Batal"})
    assert answer.status_code == 302
    with app.app_context():
        note = db.session.execute(select(CreditNote)).scalar_one()
        assert note.number.startswith("NK/") and db.session.get(Invoice, invoice_id).state == InvoiceState.CREDITED
    pdf = fin.get(f"/billing/credit-notes/{note.id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_a_wapu_sees_only_its_own_issued_invoices(app, billed, factory):
    mine = billed["first"]
    email, password = mine["users"]["WAPU_FIN"]
    from tests.fixtures.client import Client

    client = Client(app.test_client())
    client.login(email, password)
    client.post("/password", data={"current_password": password, "new_password": "Keuangan-Baru-2026!",
                                   "confirm_password": "Keuangan-Baru-2026!"})
    own = billed["first_invoice"]
    assert client.get(f"/billing/invoices/{own}").status_code == 200
    assert client.get(f"/billing/invoices/{own}.pdf").status_code == 200
    listing = client.get("/billing/invoices").get_data(as_text=True)
    assert f"/billing/invoices/{own}" in listing and f"/billing/invoices/{billed['second_invoice']}\"" not in listing
    theirs = billed["second_invoice"]
    for url in (f"/billing/invoices/{theirs}", f"/billing/invoices/{theirs}.pdf", f"/billing/invoices/{theirs}.xlsx"):
        assert client.get(url).status_code == 404, url
    billed["fin"].post(f"/billing/invoices/{theirs}/credit-notes", data={"credit_amount": "1000", "reason": "x"})
    with app.app_context():
        note_id = db.session.execute(select(CreditNote.id)).scalar_one()
    assert client.get(f"/billing/credit-notes/{note_id}.pdf").status_code == 404
    assert client.get(f"/billing/months/{KEY}").status_code == 403
    assert client.post(f"/billing/invoices/{own}/payments", data={}).status_code == 403


def test_drafts_are_hidden_from_the_wapu(app, factory, login_as):
    wapu = factory.wapu()
    stamps_last_month(app, wapu["id"], 5)
    login_as(Role.DIST_FIN).post(f"/billing/months/{KEY}/run")
    draft = invoice_of(app, wapu["id"])
    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=wapu["id"])
    assert wapu_fin.get(f"/billing/invoices/{draft}").status_code == 404
    assert f"/billing/invoices/{draft}" not in wapu_fin.get("/billing/invoices").get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.DIST_SPV, Role.DIST_ADMIN])
def test_only_distributor_finance_runs_and_issues(app, login_as, role):
    client = login_as(role)
    assert client.get(f"/billing/months/{KEY}").status_code == 200
    assert client.post(f"/billing/months/{KEY}/run").status_code == 403
    assert client.post(f"/billing/months/{KEY}/issue").status_code == 403


def test_staff_has_no_billing(app, factory, login_as):
    wapu = factory.wapu()
    staff = login_as(Role.WAPU_STAFF, wapu_id=wapu["id"])
    assert staff.get("/billing/invoices").status_code == 403


def test_unknown_month_is_404_and_current_month_cannot_run(app, login_as):
    fin = login_as(Role.DIST_FIN)
    assert fin.get("/billing/months/2026-13").status_code == 404
    answer = fin.post(f"/billing/months/{month_key(month_of(today_wib()))}/run", follow_redirects=True)
    assert "belum berakhir" in answer.get_data(as_text=True)


def test_settings_and_terms_keep_history_and_refuse_bad_input(app, factory, login_as):
    admin = login_as(Role.DIST_ADMIN)
    good = {"distributor_name": "PT Distributor", "distributor_address": "Jl. Sudirman 1", "distributor_npwp":
            "01.300.066.6-091.000", "bank_name": "Bank Mandiri", "bank_account_number": "1230001234567",
            "bank_account_name": "PT Distributor", "unit_price": "10.000", "service_fee_per_unit": "0",
            "ppn_rate": "12", "ppn_dpp_other_value": "y", "invoice_number_format": "INV/{year}/{month:02d}/{seq:05d}",
            "credit_note_number_format": "NK/{year}/{seq:05d}", "warning_days": "15, 25"}
    bad = admin.post("/billing/settings", data={**good, "distributor_npwp": "01.300.066.5-091.000"})
    assert bad.status_code == 422 and "NPWP" in bad.get_data(as_text=True)
    assert admin.post("/billing/settings", data=good).status_code == 302
    assert admin.post("/billing/settings", data={**good, "unit_price": "12.000"}).status_code == 302
    page = admin.get("/billing/settings").get_data(as_text=True)
    assert "Rp12.000" in page and "Rp10.000" in page  # the history
    wapu = factory.wapu()
    with app.app_context():
        from scm.registration.models import Wapu

        contract_id = db.session.get(Wapu, wapu["id"]).contracts[0].id
    terms = {"effective_from": "2026-12", "monthly_minimum": "1500", "minimum_policy": "true_up",
             "first_month": "prorate", "due_day": "15", "note": "Adendum 1"}
    assert admin.post(f"/billing/contracts/{contract_id}/terms", data={**terms, "due_day": "31"}).status_code == 422
    assert admin.post(f"/billing/contracts/{contract_id}/terms", data=terms).status_code == 302
    assert "Adendum 1" in admin.get(f"/billing/contracts/{contract_id}/terms").get_data(as_text=True)
    assert login_as(Role.DIST_FIN).get("/billing/settings").status_code == 403


def test_dashboards_draw_the_charts(app, billed, login_as):
    page = billed["fin"].get("/").get_data(as_text=True)
    assert page.count("<svg") >= 3 and 'data-testid="overdue-total"' in page
    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=billed["first"]["id"])
    page = wapu_fin.get("/").get_data(as_text=True)
    assert 'data-testid="minimum-chart"' in page and "chart-bars" in page
    assert 'data-testid="open-invoices"' in page and "INV/" in page


def test_reports_pages_answer(app, billed):
    fin = billed["fin"]
    assert fin.get(f"/billing/shortfall?month={KEY}").status_code == 200
    assert fin.get("/billing/aging").status_code == 200




def test_month_downloads_wait_for_issued_invoices(app, factory, login_as):
    wapu = factory.wapu()
    stamps_last_month(app, wapu["id"], 5)
    fin = login_as(Role.DIST_FIN)
    fin.post(f"/billing/months/{KEY}/run")  # drafts only
    for suffix in ("invoices-zip", "invoices-pdf"):
        answer = fin.post(f"/billing/months/{KEY}/{suffix}")
        assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/billing/months/{KEY}")
    assert "belum ada faktur" in fin.get(f"/billing/months/{KEY}").get_data(as_text=True).lower()


@pytest.fixture
def this_month(app, factory, monkeypatch):
    """Four WAPUs this month against a minimum of 100: two below it (none used, one used), two above."""
    from datetime import datetime, time

    from scm.core.formatting import WIB

    monkeypatch.setitem(app.config, "MONTHLY_MINIMUM", 100)
    idle, slow, busy, busiest = (factory.wapu() for _ in range(4))
    today_start = datetime.combine(today_wib(), time(0, 0, 1), WIB)  # counted whatever the hour
    with app.app_context():
        for wapu, count in ((slow, 1), (busy, 150), (busiest, 300)):
            insert_stamps(wapu["id"], [today_start] * count)
    return {"idle": idle, "slow": slow, "busy": busy, "busiest": busiest, "key": month_key(month_of(today_wib()))}


def test_the_distributor_dashboard_shows_the_wapus_below_the_minimum_and_the_top_ones(app, this_month, login_as,
                                                                                      monkeypatch):
    from scm.billing import reports

    monkeypatch.setattr(reports, "DASHBOARD_BELOW", 1)
    monkeypatch.setattr(reports, "DASHBOARD_TOP", 1)
    codes = {name: this_month[name]["code"] for name in ("idle", "slow", "busy", "busiest")}
    for role in (Role.DIST_FIN, Role.DIST_ADMIN, Role.DIST_SPV):
        page = login_as(role).get("/").get_data(as_text=True)
        below_chart = page.split('data-testid="below-chart"')[1].split("</svg>")[0]
        top_chart = page.split('data-testid="top-chart"')[1].split("</svg>")[0]
        assert codes["idle"] in below_chart and codes["slow"] not in below_chart  # furthest below first, one shown
        assert codes["busiest"] in top_chart and codes["busy"] not in top_chart
        assert 'data-testid="below-count">2<' in page
        table = page.split('data-testid="minimum-table"')[1].split("</table>")[0]
        assert table.count("<tr") == 3 and table.count('data-below="1"') == 1  # header, idle, busiest
        assert codes["slow"] not in page and codes["busy"] not in page
        assert f'href="/billing/shortfall?month={this_month["key"]}"' in page


def test_the_shortfall_report_pages_and_its_workbook_has_every_row(app, this_month, login_as, monkeypatch):
    import io

    from openpyxl import load_workbook

    from scm.billing import views

    monkeypatch.setattr(views, "MONTH_PAGE", 1)
    fin, key = login_as(Role.DIST_FIN), this_month["key"]
    first = fin.get(f"/billing/shortfall?month={key}").get_data(as_text=True)
    second = fin.get(f"/billing/shortfall?month={key}&page=2").get_data(as_text=True)
    idle, slow = this_month["idle"]["code"], this_month["slow"]["code"]
    assert idle in first and slow not in first and "Halaman 1 dari 2" in first
    assert slow in second and idle not in second and "Halaman 2 dari 2" in second
    assert f"month={key}" in second.split('class="pagination')[1]  # the pager keeps the month
    for page in (first, second):
        assert this_month["busy"]["code"] not in page and this_month["busiest"]["code"] not in page
        assert "2 WAPU di bawah minimum" in page
    sheet = load_workbook(io.BytesIO(fin.get(f"/billing/shortfall.xlsx?month={key}").data)).active
    assert [row[0] for row in sheet.iter_rows(min_row=3, values_only=True)] == sorted([idle, slow])


def test_a_wapu_user_sees_only_its_own_month_and_not_the_report(app, this_month, login_as):
    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=this_month["slow"]["id"])
    page = wapu_fin.get("/").get_data(as_text=True)
    assert 'data-testid="minimum-status"' in page and 'data-testid="below-chart"' not in page
    assert all(this_month[name]["code"] not in page for name in ("idle", "busy", "busiest"))
    assert wapu_fin.get(f"/billing/shortfall?month={this_month['key']}").status_code == 403
    assert wapu_fin.get(f"/billing/shortfall.xlsx?month={this_month['key']}").status_code == 403
