"""The statement of account (*Rekapitulasi tagihan*) of one WAPU for a date range: the opening
balance, the issued invoices, credit notes and payments of the range in date order with a running
balance, the closing balance, and the aging of what is still open at the end of the range.

Amounts are whole Rupiah; an invoice is owed from its issue date, a credit note and a payment lower
the balance from their own dates (drafts are not owed yet). Dates are WIB calendar days.
"""

from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace

from sqlalchemy import select

from scm.billing.models import CreditNote, Invoice, InvoiceState, Payment
from scm.billing.payments import BUCKETS, bucket_of
from scm.billing.services import current_settings
from scm.core.formatting import WIB
from scm.extensions import db

INVOICE, CREDIT_NOTE, PAYMENT, REVERSAL = "invoice", "credit_note", "payment", "reversal"


@dataclass
class StatementLine:
    day: date
    kind: str  # invoice, credit_note, payment, reversal (of a payment)
    number: str
    invoice_number: str
    debit: int  # what it adds to the balance (an invoice)
    credit: int  # what it takes off (a credit note, a payment)
    balance: int = 0  # the running balance after it
    object_id: int = 0


@dataclass
class Statement:
    wapu: object
    start: date
    end: date
    opening: int
    lines: list = field(default_factory=list)
    aging: dict = field(default_factory=dict)  # bucket -> open amount at the end of the range

    @property
    def closing(self) -> int:
        return self.lines[-1].balance if self.lines else self.opening

    @property
    def total_debit(self) -> int:
        return sum(line.debit for line in self.lines)

    @property
    def total_credit(self) -> int:
        return sum(line.credit for line in self.lines)

    @property
    def parties(self):
        """Seller and buyer for the printed header (the shape of an invoice's snapshot)."""
        settings = current_settings()
        return SimpleNamespace(seller_name=settings.distributor_name, seller_address=settings.distributor_address,
                               seller_npwp=settings.distributor_npwp, buyer_name=self.wapu.name,
                               buyer_address=self.wapu.address, buyer_npwp=self.wapu.npwp)


def _movements(wapu_id, end):
    """Every issued invoice, credit note and payment of the WAPU up to ``end``, as statement lines."""
    invoices = db.session.execute(select(Invoice).where(
        Invoice.wapu_id == wapu_id, Invoice.state != InvoiceState.DRAFT, Invoice.issue_date <= end)).scalars().all()
    numbers = {invoice.id: invoice.number for invoice in invoices}
    lines = [StatementLine(i.issue_date, INVOICE, i.number, i.number, i.total_due, 0, object_id=i.id)
             for i in invoices]
    lines += [StatementLine(n.issue_date, CREDIT_NOTE, n.number, numbers.get(n.invoice_id, ""), 0, n.amount,
                            object_id=n.id)
              for n in db.session.execute(select(CreditNote).where(
                  CreditNote.wapu_id == wapu_id, CreditNote.issue_date <= end)).scalars()]
    paid = db.session.execute(select(Payment).where(Payment.wapu_id == wapu_id, Payment.paid_on <= end)).scalars().all()
    lines += [StatementLine(p.paid_on, PAYMENT, p.receipt_number or p.reference, numbers.get(p.invoice_id, ""), 0,
                            p.amount, object_id=p.id) for p in paid]
    # A reversed payment (its bank line un-matched) stays on the day it was paid and is owed again
    # from the day it was reversed.
    lines += [StatementLine(p.reversed_at.astimezone(WIB).date(), REVERSAL, p.receipt_number or p.reference,
                            numbers.get(p.invoice_id, ""), p.amount, 0, object_id=p.id)
              for p in paid if p.reversed_at is not None and p.reversed_at.astimezone(WIB).date() <= end]
    order = {INVOICE: 0, CREDIT_NOTE: 1, PAYMENT: 2, REVERSAL: 3}
    lines.sort(key=lambda line: (line.day, order[line.kind], line.object_id))
    return invoices, lines


def statement_of_account(wapu, start: date, end: date) -> Statement:
    """``wapu``'s statement for the WIB days ``start`` to ``end`` (both included)."""
    invoices, movements = _movements(wapu.id, end)
    before = [line for line in movements if line.day < start]
    statement = Statement(wapu=wapu, start=start, end=end,
                          opening=sum(line.debit - line.credit for line in before))
    balance = statement.opening
    for line in movements:
        if line.day >= start:
            balance += line.debit - line.credit
            line.balance = balance
            statement.lines.append(line)
    # What each invoice still owed at the end of the range, by days past its due date then.
    owed = {invoice.id: invoice.total_due for invoice in invoices}
    by_number = {invoice.number: invoice.id for invoice in invoices}
    for line in movements:
        if line.kind != INVOICE and line.invoice_number in by_number:
            owed[by_number[line.invoice_number]] += line.debit - line.credit
    statement.aging = dict.fromkeys(BUCKETS, 0)
    for invoice in invoices:
        if owed[invoice.id] > 0:
            statement.aging[bucket_of(invoice.due_date, end)] += owed[invoice.id]
    return statement
