"""Receipts (kuitansi) for payments, numbered gaplessly and rendered once; the statement of account
(Rekapitulasi tagihan) of a WAPU as a page, a PDF and a workbook, each WAPU seeing only its own."""

import hashlib
import io
import threading
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from scm.auth.models import Role
from scm.auth.services import find_active_user
from scm.billing import payments, services
from scm.billing.models import BillingDocument, DocumentKind, Invoice, Payment
from scm.billing.usage import add_months, month_of
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.extensions import db
from tests.fixtures.factories import insert_stamps

TODAY = today_wib()
LAST = add_months(month_of(TODAY), -1)
EARLIER = add_months(LAST, -1)


def bill(app, factory, wapu, counts):
    """Invoices of ``wapu`` for the months in ``counts`` (month -> stamps), each issued on the 2nd of
    the next month (today at the latest); their ids."""
    fin = factory.user(Role.DIST_FIN)
    with app.app_context():
        for month, count in counts.items():
            start = datetime(month.year, month.month, 2, 3, tzinfo=timezone.utc)
            insert_stamps(wapu["id"], [start + timedelta(minutes=9 * i) for i in range(count)])
            with unit_of_work():
                services.run_billing(month, source="cli")
            with unit_of_work():
                services.issue_drafts(month, find_active_user(fin), today=min(add_months(month, 1).replace(day=2), TODAY))
        return [db.session.execute(select(Invoice.id).where(Invoice.wapu_id == wapu["id"], Invoice.period == month)
                                   ).scalar_one() for month in counts]


def test_a_payment_gets_a_receipt_rendered_once_with_its_amount_in_words(app, factory, login_as, read_pdf):
    wapu = factory.wapu()
    (invoice_id,) = bill(app, factory, wapu, {LAST: 1200})
    fin = login_as(Role.DIST_FIN)
    answer = fin.post(f"/billing/invoices/{invoice_id}/payments",
                      data={"paid_on": TODAY.isoformat(), "amount": "Rp 2.500.000", "reference": "TRF-KW-1"})
    assert answer.status_code == 302
    with app.app_context():
        payment = db.session.execute(select(Payment)).scalar_one()
        number, payment_id = payment.receipt_number, payment.id
        stored = db.session.execute(select(BillingDocument).where(
            BillingDocument.kind == DocumentKind.RECEIPT)).scalar_one()
    assert number == f"KW/{TODAY.year}/{TODAY.month:02d}/00001"
    page = fin.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert f"/billing/payments/{payment_id}/receipt.pdf" in page and number in page
    pdf = fin.get(f"/billing/payments/{payment_id}/receipt.pdf")
    assert pdf.status_code == 200 and hashlib.sha256(pdf.data).hexdigest() == stored.sha256
    assert fin.get(f"/billing/payments/{payment_id}/receipt.pdf").data == pdf.data
    text, _layout, pages = read_pdf(pdf.data)
    assert pages == 1 and "KUITANSI" in text and number in text and "TRF-KW-1" in text
    assert "Rp2.500.000" in text and "Dua juta lima ratus ribu rupiah" in text
    # The WAPU's finance user downloads its own receipt; another WAPU's user cannot.
    assert login_as(Role.WAPU_FIN, wapu_id=wapu["id"]).get(f"/billing/payments/{payment_id}/receipt.pdf").data == pdf.data
    assert login_as(Role.WAPU_FIN).get(f"/billing/payments/{payment_id}/receipt.pdf").status_code == 404


@pytest.mark.timeout(120)
def test_receipt_numbers_are_gapless_under_concurrent_payments(app, factory):
    invoices = []
    for _ in range(3):
        invoices += bill(app, factory, factory.wapu(), {LAST: 1500})
    fin = factory.user(Role.DIST_FIN)
    errors = []

    def pay(invoice_id, n):
        with app.app_context():
            try:
                for i in range(n):
                    with unit_of_work():
                        payments.record_payment(invoice_id, find_active_user(fin), paid_on=TODAY, amount=1000,
                                                reference=f"TRF-{invoice_id}-{i}")
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=pay, args=(invoice_id, 4)) for invoice_id in invoices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert errors == []
    with app.app_context():
        numbers = db.session.execute(select(Payment.receipt_number)).scalars().all()
    assert sorted(int(n.rsplit("/", 1)[1]) for n in numbers) == list(range(1, 13))  # no gap, none twice


def test_the_statement_of_account_balances_and_is_each_wapus_own(app, factory, login_as, read_pdf):
    wapu, other = factory.wapu(), factory.wapu()
    earlier_id, last_id = bill(app, factory, wapu, {EARLIER: 1000, LAST: 1300})
    bill(app, factory, other, {LAST: 1100})
    fin = login_as(Role.DIST_FIN)
    fin.post(f"/billing/invoices/{earlier_id}/payments",
             data={"paid_on": TODAY.isoformat(), "amount": "4.000.000", "reference": "TRF-1"})
    fin.post(f"/billing/invoices/{last_id}/credit-notes", data={"credit_amount": "500.000", "reason": "Koreksi"})
    with app.app_context():
        totals = {i.id: i.total_due for i in db.session.execute(select(Invoice)).scalars()}
    billed = totals[earlier_id] + totals[last_id]
    closing = billed - 4_000_000 - 500_000

    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=wapu["id"])
    query = f"?wapu={other['code']}&date_from={TODAY.replace(month=1, day=1)}&date_to={TODAY}"
    page = wapu_fin.get("/billing/statement" + query).get_data(as_text=True)  # another WAPU asked for: its own
    assert f"{wapu['code']} · " in page and f"{other['code']} · " not in page
    assert page.count('data-kind="invoice"') == 2 and 'data-kind="payment"' in page and 'data-kind="credit_note"' in page
    assert f'data-testid="closing">Rp{closing:,}<'.replace(",", ".") in page

    _text, layout, _pages = read_pdf(wapu_fin.get("/billing/statement.pdf" + query).data)
    text = " ".join(layout.split())
    assert "REKAPITULASI TAGIHAN" in text and wapu["code"] in text
    with app.app_context():
        numbers = [db.session.get(Invoice, i).number for i in (earlier_id, last_id)]
    assert all(number in text for number in numbers), (numbers, text)
    assert f"Rp{closing:,}".replace(",", ".") in text and "rupiah" in text  # the closing balance, in words too

    book = load_workbook(io.BytesIO(wapu_fin.get("/billing/statement.xlsx" + query).data), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert rows[2][1] == "Saldo awal" and rows[2][6] == 0 and rows[-1][1] == "Saldo akhir" and rows[-1][6] == closing
    aging = list(book.worksheets[1].iter_rows(min_row=3, values_only=True))
    assert len(aging) == 5 and sum(amount for _label, amount in aging) == closing  # all that is open, by age

    # From the 15th of last month on, the earlier invoice (issued on the 2nd) is the opening balance.
    later = f"?wapu={wapu['code']}&date_from={LAST.replace(day=15)}&date_to={TODAY}"
    page = fin.get("/billing/statement" + later).get_data(as_text=True)
    assert f'data-testid="opening">Rp{totals[earlier_id]:,}<'.replace(",", ".") in page
    assert page.count('data-kind="invoice"') == 1 and f'data-testid="closing">Rp{closing:,}<'.replace(",", ".") in page
    bad = fin.get(f"/billing/statement?wapu={wapu['code']}&date_from={TODAY}&date_to={TODAY - timedelta(days=3)}")
    assert bad.status_code == 422 and 'data-field-error="date_to"' in bad.get_data(as_text=True)
    assert login_as(Role.WAPU_STAFF, wapu_id=wapu["id"]).get("/billing/statement").status_code == 403


def test_a_reversed_payment_is_owed_again_from_the_day_it_was_reversed(app, factory, login_as):
    wapu = factory.wapu()
    (invoice_id,) = bill(app, factory, wapu, {LAST: 1200})
    fin = factory.user(Role.DIST_FIN)
    with app.app_context():
        with unit_of_work():
            payment = payments.record_payment(invoice_id, find_active_user(fin), paid_on=TODAY, amount=700_000,
                                              reference="TRF-X")
            payment_id = payment.id
        with unit_of_work():
            payments.reverse_payment(payment_id, find_active_user(fin), reason="Salah cocok")
        total = db.session.get(Invoice, invoice_id).total_due
    answer = login_as(Role.WAPU_FIN, wapu_id=wapu["id"]).get("/billing/statement")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert 'data-kind="reversal"' in page
    assert 'data-kind="payment"' in page and "Pembayaran dibatalkan" in page
    assert f'data-testid="closing">Rp{total:,}<'.replace(",", ".") in page  # all of it owed again
