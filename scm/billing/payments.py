"""After issue: payments, credit notes, overdue marking and the aging of receivables.

Every change of an invoice's money is one conditional UPDATE (``... WHERE balance >= amount``),
so two clerks recording at once can never overpay or over-credit an invoice.
"""

from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from scm.billing.models import OPEN_STATES, CreditNote, Invoice, InvoiceState, Payment
from scm.billing.services import current_settings, finance_contacts, format_document_number
from scm.core.database import next_number, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import format_day, format_rupiah, today_wib
from scm.core.services import notify, record_audit, register_audit_action, register_notification
from scm.extensions import db

register_audit_action("invoice.payment_recorded", _l("Payment recorded"),
                      _l("%(amount)s paid on %(paid_on)s (%(reference)s); balance %(balance)s"),
                      amount="rupiah", paid_on="day", balance="rupiah")
register_audit_action("invoice.payment_reversed", _l("Payment reversed"),
                      _l("%(amount)s paid on %(paid_on)s (%(reference)s) reversed; balance %(balance)s"),
                      amount="rupiah", paid_on="day", balance="rupiah")
register_audit_action("invoice.credit_note_issued", _l("Credit note issued"), _l("%(number)s for %(amount)s"),
                      amount="rupiah")
register_audit_action("invoice.overdue", _l("Invoice overdue"), _l("due on %(due)s, balance %(balance)s"),
                      due="day", balance="rupiah")
register_notification("invoice_overdue", _l("Invoice %(number)s (%(amount)s) was due on %(due)s and is now overdue."))
register_notification("credit_note_issued", _l("Credit note %(number)s of %(amount)s was issued for invoice %(invoice)s."))
register_notification("payment_recorded", _l("Payment of %(amount)s for invoice %(number)s was recorded. Thank you."))

MAX_REFERENCE = 100
RECEIPT_NUMBER_FORMAT = "KW/{year}/{month:02d}/{seq:05d}"  # kuitansi: gapless per year, like invoices


def _reload(invoice_id: int) -> Invoice:
    return db.session.execute(
        select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True)
    ).scalar_one()


def _not_open_error(invoice: Invoice) -> ServiceError:
    if invoice.is_draft:
        return ServiceError(_("Issue the invoice first."), code="invoice_not_issued")
    return ServiceError(_("This invoice has nothing left to pay (%(state)s).", state=invoice.state.label),
                        code="invoice_settled")


def _apply(invoice_id: int, column: str, amount: int) -> Invoice:
    """Add ``amount`` to the invoice's paid or credited amount if the balance allows it."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        raise ServiceError(_("No such invoice."), code="not_found")
    target = getattr(Invoice, column)
    done = db.session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id, Invoice.state.in_(OPEN_STATES),
               Invoice.total_due - Invoice.paid_amount - Invoice.credited_amount >= amount)
        .values({column: target + amount, "updated_at": utcnow()})
    ).rowcount
    invoice = _reload(invoice_id)
    if not done:
        if not invoice.is_open:
            raise _not_open_error(invoice)
        raise ServiceError(_("The amount is more than the balance of %(balance)s.",
                             balance=format_rupiah(invoice.balance)), field="amount", code="over_balance")
    return invoice


def _settle_state(invoice: Invoice, today: date) -> None:
    if invoice.balance == 0:
        invoice.state = InvoiceState.PAID if invoice.paid_amount else InvoiceState.CREDITED
    elif invoice.due_date and invoice.due_date < today:
        invoice.state = InvoiceState.OVERDUE
    elif invoice.paid_amount:
        invoice.state = InvoiceState.PARTIALLY_PAID


def record_payment(invoice_id: int, actor, *, paid_on: date, amount: int, reference: str, today=None) -> Payment:
    """Record money received; the invoice becomes partially paid, or paid when nothing is left. The
    payment gets the next gapless receipt (kuitansi) number, in the same transaction."""
    today = today or today_wib()
    reference = (reference or "").strip()
    if not reference or len(reference) > MAX_REFERENCE:
        raise ServiceError(_("Give the transfer reference (at most 100 characters)."), field="reference")
    if amount is None or amount <= 0:
        raise ServiceError(_("The amount must be more than Rp0."), field="amount")
    if paid_on > today:
        raise ServiceError(_("The payment date cannot be in the future."), field="paid_on")
    invoice = _apply(invoice_id, "paid_amount", amount)
    if paid_on < invoice.issue_date:
        raise ServiceError(_("The payment date cannot be before the invoice date (%(day)s).",
                             day=format_day(invoice.issue_date)), field="paid_on")
    _settle_state(invoice, today)
    receipt = format_document_number(RECEIPT_NUMBER_FORMAT, today, next_number(f"receipt:{today.year}"))
    payment = Payment(invoice_id=invoice.id, wapu_id=invoice.wapu_id, paid_on=paid_on, amount=amount,
                      reference=reference, recorded_by_id=actor.id, receipt_number=receipt)
    db.session.add(payment)
    db.session.flush()
    record_audit(actor, "invoice.payment_recorded", invoice,
                 f"{invoice.number}: {amount} on {paid_on.isoformat()} ({reference}); balance {invoice.balance}; "
                 f"receipt {receipt}",
                 details={"amount": amount, "paid_on": paid_on.isoformat(), "reference": reference,
                          "balance": invoice.balance, "receipt": receipt})
    notify(finance_contacts(invoice.wapu), "payment_recorded", f"/billing/invoices/{invoice.id}",
           amount=format_rupiah(amount), number=invoice.number)
    return payment


def _unsettled_state(invoice: Invoice, today: date) -> InvoiceState:
    """The state of an invoice that has a balance again (after a payment was reversed)."""
    if invoice.due_date and invoice.due_date < today:
        return InvoiceState.OVERDUE
    return InvoiceState.PARTIALLY_PAID if invoice.paid_amount else InvoiceState.ISSUED


def check_reversal_reason(reason) -> str:
    """The reason for a reversal, stripped; refuses an empty or too long one."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ServiceError(_("Give the reason for the reversal (at most 500 characters)."), field="reason")
    return reason


def reverse_payment(payment_id: int, actor, *, reason: str, today=None) -> Payment:
    """Reverse a recorded payment (a bank line un-matched): the payment is kept and marked reversed,
    its amount leaves the invoice's paid amount, and a paid invoice is open again (issued, partially
    paid or overdue). One conditional UPDATE each, so a payment is never reversed twice."""
    today = today or today_wib()
    reason = check_reversal_reason(reason)
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise ServiceError(_("No such payment."), code="not_found")
    done = db.session.execute(
        update(Payment).where(Payment.id == payment_id, Payment.reversed_at.is_(None))
        .values(reversed_at=utcnow(), reversed_by_id=getattr(actor, "id", None), reversal_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not done:
        raise ServiceError(_("This payment was already reversed."), code="already_reversed")
    db.session.execute(
        update(Invoice).where(Invoice.id == payment.invoice_id, Invoice.paid_amount >= payment.amount)
        .values(paid_amount=Invoice.paid_amount - payment.amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(payment)
    invoice = _reload(payment.invoice_id)
    if invoice.state in (InvoiceState.PAID, InvoiceState.PARTIALLY_PAID) or invoice.is_open:
        invoice.state = _unsettled_state(invoice, today)
    db.session.flush()
    record_audit(actor, "invoice.payment_reversed", invoice,
                 f"{invoice.number}: payment {payment.amount} of {payment.paid_on.isoformat()} ({payment.reference}) "
                 f"reversed — {reason}; balance {invoice.balance}",
                 details={"amount": payment.amount, "paid_on": payment.paid_on.isoformat(),
                          "reference": payment.reference, "balance": invoice.balance, "note": reason})
    return payment


def issue_credit_note(invoice_id: int, actor, *, amount: int, reason: str, today=None) -> CreditNote:
    """Correct an issued invoice by a credit note with its own gapless number."""
    today = today or today_wib()
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_("Give the reason for the correction."), field="reason")
    if amount is None or amount <= 0:
        raise ServiceError(_("The amount must be more than Rp0."), field="amount")
    seq = next_number(f"credit-note:{today.year}")  # first, as for invoices: serialises numbering
    invoice = _apply(invoice_id, "credited_amount", amount)
    _settle_state(invoice, today)
    note = CreditNote(
        invoice_id=invoice.id, wapu_id=invoice.wapu_id, issue_date=today, amount=amount, reason=reason,
        number=format_document_number(current_settings().credit_note_number_format, today, seq),
        issued_by_id=actor.id,
    )
    db.session.add(note)
    db.session.flush()
    record_audit(actor, "invoice.credit_note_issued", invoice, f"{note.number} for {invoice.number}: {amount} — {reason}",
                 details={"number": note.number, "amount": amount, "note": reason})
    notify(finance_contacts(invoice.wapu), "credit_note_issued", f"/billing/invoices/{invoice.id}",
           number=note.number, amount=format_rupiah(amount), invoice=invoice.number)
    return note


def mark_overdue(today=None) -> int:
    """Mark unpaid invoices past their due date overdue (and tell the WAPU once)."""
    today = today or today_wib()
    candidates = db.session.execute(
        select(Invoice.id).where(Invoice.state.in_((InvoiceState.ISSUED, InvoiceState.PARTIALLY_PAID)),
                                 Invoice.due_date < today)
    ).scalars().all()
    marked = 0
    for invoice_id in candidates:
        done = db.session.execute(
            update(Invoice).where(Invoice.id == invoice_id,
                                  Invoice.state.in_((InvoiceState.ISSUED, InvoiceState.PARTIALLY_PAID)))
            .values(state=InvoiceState.OVERDUE, updated_at=utcnow())
        ).rowcount
        if done:
            marked += 1
            invoice = _reload(invoice_id)
            record_audit(None, "invoice.overdue", invoice, f"{invoice.number} due {invoice.due_date}",
                         actor_label="scheduler", details={"due": invoice.due_date.isoformat(), "balance": invoice.balance})
            notify(finance_contacts(invoice.wapu), "invoice_overdue", f"/billing/invoices/{invoice.id}",
                   number=invoice.number, amount=format_rupiah(invoice.balance), due=format_day(invoice.due_date))
    return marked


BUCKETS = ("not_due", "0_30", "31_60", "61_90", "over_90")


def bucket_of(due: date, today: date) -> str:
    """The aging bucket of an open balance by days past its due date."""
    days = (today - due).days
    if days < 0:
        return "not_due"
    if days <= 30:
        return "0_30"
    if days <= 60:
        return "31_60"
    return "61_90" if days <= 90 else "over_90"


@dataclass
class AgingRow:
    wapu_code: str
    wapu_name: str
    amounts: dict = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    @property
    def total(self) -> int:
        return sum(self.amounts.values())


def aging(today=None) -> tuple[list[AgingRow], AgingRow]:
    """Open balances per WAPU in the buckets not yet due, 0–30, 31–60, 61–90 and >90 days past due."""
    today = today or today_wib()
    rows: dict[int, AgingRow] = {}
    totals = AgingRow("", "")
    for invoice in db.session.execute(
        select(Invoice).where(Invoice.state.in_(OPEN_STATES)).order_by(Invoice.due_date)
    ).scalars():
        row = rows.setdefault(invoice.wapu_id, AgingRow(invoice.wapu.code, invoice.buyer_name))
        bucket = bucket_of(invoice.due_date, today)
        row.amounts[bucket] += invoice.balance
        totals.amounts[bucket] += invoice.balance
    return sorted(rows.values(), key=lambda row: row.wapu_code), totals
