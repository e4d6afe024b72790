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
