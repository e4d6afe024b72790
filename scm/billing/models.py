"""Billing tables: settings and contract terms (versioned), runs, invoices, credit notes, payments.

Money is whole Rupiah in BIGINT columns; billing periods are WIB calendar months stored as the
month's first day. An issued invoice's content never changes (guarded below); only its payment
state moves. Corrections are credit notes.
"""

from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from scm.core.database import UTCDateTime, enum_type, utcnow
from scm.core.enums import LabelledEnum
from scm.core.models import TimestampMixin
from scm.extensions import db


class BillingSettings(TimestampMixin, db.Model):
    """The distributor's identity and pricing. Each change adds a row; the newest one applies."""

    __tablename__ = "billing_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    distributor_name: Mapped[str] = mapped_column(String(200), nullable=False)
    distributor_address: Mapped[str] = mapped_column(Text, nullable=False)
    distributor_npwp: Mapped[str] = mapped_column(String(16), nullable=False)  # digits only
    bank_name: Mapped[str] = mapped_column(String(100), nullable=False)
    bank_account_number: Mapped[str] = mapped_column(String(40), nullable=False)
    bank_account_name: Mapped[str] = mapped_column(String(200), nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    service_fee_per_unit: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    ppn_rate: Mapped[int] = mapped_column(Integer, nullable=False, default=12)  # percent
    ppn_dpp_other_value: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)  # DPP 11/12
    invoice_number_format: Mapped[str] = mapped_column(String(80), nullable=False)
    credit_note_number_format: Mapped[str] = mapped_column(String(80), nullable=False)
    warning_days: Mapped[str] = mapped_column(String(40), nullable=False, default="15,25")

    changed_by = relationship("User")

    @property
    def warning_day_list(self) -> list[int]:
        return [int(part) for part in self.warning_days.split(",") if part.strip()]


class MinimumPolicy(LabelledEnum):
    REPORT = "report", _l("Warn and report only")
    TRUE_UP = "true_up", _l("Bill the shortfall (true-up)")


class FirstMonth(LabelledEnum):
    EXEMPT = "exempt", _l("Exempt from the minimum")
    PRORATE = "prorate", _l("Minimum pro rata by days")
    FULL = "full", _l("Full minimum")


class ContractTerms(TimestampMixin, db.Model):
    """Billing terms of one contract from a month on. Each change adds a row (the history)."""

    __tablename__ = "contract_terms"
    __table_args__ = (
        Index("ix_contract_terms_contract", "contract_id", "effective_from", "id"),
        CheckConstraint("monthly_minimum >= 0", name="minimum_not_negative"),
        CheckConstraint("due_day BETWEEN 1 AND 28", name="due_day_in_month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), nullable=False)
    effective_from: Mapped[date] = mapped_column(Date, nullable=False)  # first day of a month
    monthly_minimum: Mapped[int] = mapped_column(Integer, nullable=False)
    minimum_policy: Mapped[MinimumPolicy] = mapped_column(enum_type(MinimumPolicy, length=10), nullable=False)
    first_month: Mapped[FirstMonth] = mapped_column(enum_type(FirstMonth, length=10), nullable=False)
    due_day: Mapped[int] = mapped_column(Integer, nullable=False)  # of the month after the period
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    contract = relationship("Contract")
    changed_by = relationship("User")


RUN_SOURCES = {"web": _l("on the billing page"), "cli": _l("from the command line"), "scheduler": _l("by the scheduler")}


class BillingRun(db.Model):
    """One run of the monthly billing for a period (web, CLI or scheduler) and what it did."""

    __tablename__ = "billing_runs"
    __table_args__ = (Index("ix_billing_runs_period", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[date] = mapped_column(Date, nullable=False)
    source: Mapped[str] = mapped_column(String(10), nullable=False)  # web, cli, scheduler
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    refreshed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    actor = relationship("User")

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return f"{self.period:%Y-%m}"

    @property
    def source_label(self):
        """Where the run was started, in words."""
        return RUN_SOURCES.get(self.source, self.source)


class InvoiceState(LabelledEnum):
    DRAFT = "draft", _l("draft")
    ISSUED = "issued", _l("issued")
    PARTIALLY_PAID = "partially_paid", _l("partially paid")
    PAID = "paid", _l("paid")
    OVERDUE = "overdue", _l("overdue")
    CREDITED = "credited", _l("credited")  # cancelled in full by credit notes


OPEN_STATES = (InvoiceState.ISSUED, InvoiceState.PARTIALLY_PAID, InvoiceState.OVERDUE)


class LineKind(LabelledEnum):
    USAGE = "usage"
    LATE_USAGE = "late_usage"
    TRUE_UP = "true_up"
    SERVICE_FEE = "service_fee"


# Lines whose quantity counts as e-Meterai billed for their usage month (late-usage arithmetic).
QUANTITY_LINES = (LineKind.USAGE, LineKind.LATE_USAGE, LineKind.TRUE_UP)


class Invoice(db.Model):
    """The monthly bill of one WAPU. Names, prices and totals are copied in at issue."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("wapu_id", "period", name="uq_invoices_wapu_period"),
        Index("ix_invoices_state_due", "state", "due_date"),
        Index("ix_invoices_period", "period"),
        CheckConstraint("paid_amount >= 0 AND credited_amount >= 0", name="amounts_not_negative"),
        CheckConstraint("paid_amount + credited_amount <= total_due", name="not_overpaid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), nullable=False)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    period: Mapped[date] = mapped_column(Date, nullable=False)
    state: Mapped[InvoiceState] = mapped_column(enum_type(InvoiceState), nullable=False)
    number: Mapped[str | None] = mapped_column(String(80), unique=True)
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    # Snapshot of both parties.
    seller_name: Mapped[str] = mapped_column(String(200), nullable=False)
    seller_address: Mapped[str] = mapped_column(Text, nullable=False)
    seller_npwp: Mapped[str] = mapped_column(String(16), nullable=False)
    bank_name: Mapped[str] = mapped_column(String(100), nullable=False)
    bank_account_number: Mapped[str] = mapped_column(String(40), nullable=False)
    bank_account_name: Mapped[str] = mapped_column(String(200), nullable=False)
    buyer_name: Mapped[str] = mapped_column(String(200), nullable=False)
    buyer_address: Mapped[str] = mapped_column(Text, nullable=False)
    buyer_npwp: Mapped[str] = mapped_column(String(16), nullable=False)
    contract_number: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    # The minimum check of the period, as billed.
    used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    minimum: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    shortfall: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    minimum_policy: Mapped[MinimumPolicy] = mapped_column(enum_type(MinimumPolicy, length=10), nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Totals: PPN on the service fee is shown but collected by the WAPU, so not in total_due.
    subtotal: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    ppn_rate: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    ppn_base: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    ppn_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    total_due: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    paid_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    credited_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    wapu = relationship("Wapu")
    contract = relationship("Contract")
    issued_by = relationship("User")
    lines = relationship("InvoiceLine", back_populates="invoice", order_by="InvoiceLine.position",
                         cascade="all, delete-orphan")
    payments = relationship("Payment", back_populates="invoice", order_by="Payment.id")
    credit_notes = relationship("CreditNote", back_populates="invoice", order_by="CreditNote.id")

    @property
    def balance(self) -> int:
        """What is still to be paid: total due less payments and credit notes."""
        return self.total_due - self.paid_amount - self.credited_amount

    @property
    def is_draft(self) -> bool:
        return self.state == InvoiceState.DRAFT

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def audit_ref(self) -> str:
        """Its number; a draft has none yet: the WAPU and month."""
        return self.number or f"{self.wapu.code} {self.period:%Y-%m}"


# Columns that may still change once an invoice is issued (its payment state).
MUTABLE_AFTER_ISSUE = {"state", "paid_amount", "credited_amount", "updated_at"}


class InvoiceLine(db.Model):
    """A line of an invoice: quantity × unit price, for the usage month it bills."""

    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_invoice", "invoice_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[LineKind] = mapped_column(enum_type(LineKind, length=12), nullable=False)
    usage_month: Mapped[date] = mapped_column(Date, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)

    invoice = relationship("Invoice", back_populates="lines")


class CreditNote(TimestampMixin, db.Model):
    """A correction of an issued invoice: a negative amount with its own gapless number."""

    __tablename__ = "credit_notes"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True, nullable=False)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), index=True, nullable=False)
    number: Mapped[str] = mapped_column(String(80), unique=True, nullable=False)
    issue_date: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)  # positive; shown negative
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    invoice = relationship("Invoice", back_populates="credit_notes")
    issued_by = relationship("User")


class DocumentKind(LabelledEnum):
    INVOICE = "invoice", _l("invoice")
    CREDIT_NOTE = "credit_note", _l("credit note")
    RECEIPT = "receipt", _l("receipt")


class BillingDocument(db.Model):
    """The printed PDF of an issued invoice or credit note, rendered once and kept: downloads, the
    month's ZIP and its combined PDF serve these bytes. Append-only (also in the database): a stored
    PDF never changes; one per document."""

    __tablename__ = "billing_documents"
    __table_args__ = (UniqueConstraint("kind", "object_id", name="uq_billing_documents_kind_object"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DocumentKind] = mapped_column(enum_type(DocumentKind, length=12), nullable=False)
    object_id: Mapped[int] = mapped_column(Integer, nullable=False)  # the invoice's or credit note's id
    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    file = relationship("StoredFile")


class Payment(TimestampMixin, db.Model):
    """Money received against an invoice (partial payments allowed)."""

    __tablename__ = "payments"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),
                      Index("uq_payments_receipt_number", "receipt_number", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True, nullable=False)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), index=True, nullable=False)
    paid_on: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reference: Mapped[str] = mapped_column(String(100), nullable=False)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The receipt (kuitansi) number, gapless per year; none on payments recorded before 0012_receipts.
    receipt_number: Mapped[str | None] = mapped_column(String(80))

    # A reversed payment (a bank line un-matched) is kept, marked, and no longer counts.
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reversed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reversal_reason: Mapped[str | None] = mapped_column(Text)

    invoice = relationship("Invoice", back_populates="payments")
    recorded_by = relationship("User", foreign_keys=[recorded_by_id])
    reversed_by = relationship("User", foreign_keys=[reversed_by_id])

    @property
    def number(self) -> str | None:
        """The receipt's number: a payment is printed as its receipt (kuitansi)."""
        return self.receipt_number

    @property
    def audit_ref(self) -> str:
        return self.receipt_number or f"payment {self.id}"


class MinimumWarning(TimestampMixin, db.Model):
    """A below-minimum warning sent to a WAPU on one day (at most one per WAPU and day)."""

    __tablename__ = "minimum_warnings"
    __table_args__ = (UniqueConstraint("wapu_id", "day", name="uq_minimum_warnings_wapu_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    used: Mapped[int] = mapped_column(Integer, nullable=False)
    projected: Mapped[int] = mapped_column(Integer, nullable=False)
    minimum: Mapped[int] = mapped_column(Integer, nullable=False)


class ImmutableInvoiceError(RuntimeError):
    """An attempt to change an issued invoice (use a credit note instead)."""


def _state_before_flush(invoice: Invoice) -> InvoiceState:
    """The invoice's state as the database has it (before this flush's pending change, if any)."""
    history = inspect(invoice).attrs.state.history
    return history.deleted[0] if history.deleted else invoice.state


@event.listens_for(Session, "before_flush")
def _guard_issued_invoices(session, _context, _instances):
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, Invoice):
            if _state_before_flush(obj) == InvoiceState.DRAFT:
                continue
            if obj in session.deleted:
                raise ImmutableInvoiceError(f"invoice {obj.number} is issued and cannot be deleted")
            changed = {a.key for a in inspect(obj).attrs if a.history.has_changes()}
            if changed - MUTABLE_AFTER_ISSUE - {"lines", "payments", "credit_notes"}:
                raise ImmutableInvoiceError(f"invoice {obj.number} is issued: {sorted(changed)} cannot change")
        elif isinstance(obj, InvoiceLine) and obj.invoice is not None and not obj.invoice.is_draft:
            if obj in session.deleted or session.is_modified(obj):
                raise ImmutableInvoiceError("lines of an issued invoice cannot change")
    for obj in session.new:
        if isinstance(obj, InvoiceLine) and obj.invoice is not None and not obj.invoice.is_draft:
            if _state_before_flush(obj.invoice) != InvoiceState.DRAFT:  # not the issue itself
                raise ImmutableInvoiceError("lines cannot be added to an issued invoice")


# --------------------------------------------------------------------------- reminders (dunning) and disputes


class DunningStep(TimestampMixin, db.Model):
    """One step of the distributor's reminder schedule: a mail sent ``offset_days`` from an
    invoice's due date (negative: before it). Its subject and text are written by ``DIST_ADMIN``
    with placeholders. A removed step is kept (inactive): the reminders it sent still name it."""

    __tablename__ = "dunning_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    offset_days: Mapped[int] = mapped_column(Integer, nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    changed_by = relationship("User")

    @property
    def audit_ref(self) -> str:
        return f"{self.name} ({self.offset_days:+d})"


class DunningOutcome(LabelledEnum):
    SENT = "sent", _l("sent")
    SKIPPED = "skipped", _l("skipped")  # a later step was due too: only the latest one is sent


class DunningSent(TimestampMixin, db.Model):
    """A step of the schedule done for one invoice: its mail queued (or the step skipped). The
    unique (invoice, step) row is written in the same transaction as the mail, so a step is sent
    at most once per invoice, whoever runs the job and however often."""

    __tablename__ = "dunning_sent"
    __table_args__ = (UniqueConstraint("invoice_id", "step_id", name="uq_dunning_sent_invoice_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), nullable=False)
    step_id: Mapped[int] = mapped_column(ForeignKey("dunning_steps.id"), nullable=False)
    outcome: Mapped[DunningOutcome] = mapped_column(enum_type(DunningOutcome, length=10), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)  # the WIB day of the run
    mails: Mapped[list] = mapped_column(JSON, nullable=False, default=list)  # [{"id": outbox id, "to": address}]

    invoice = relationship("Invoice")
    step = relationship("DunningStep")


class InvoiceDispute(db.Model):
    """An invoice the WAPU disputes: reminders pause while it is open. ``open_invoice_id`` is the
    invoice's id while the dispute is open and NULL once resolved, so an invoice has at most one
    open dispute (a unique column, the same on SQLite and PostgreSQL)."""

    __tablename__ = "invoice_disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True, nullable=False)
    open_invoice_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(Text)

    invoice = relationship("Invoice")
    opened_by = relationship("User", foreign_keys=[opened_by_id])
    resolved_by = relationship("User", foreign_keys=[resolved_by_id])

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


# ----------------------------------------------------------------------------- Coretax e-Faktur


class CoretaxBatch(db.Model):
    """One export of a month's tax invoices as Coretax import XML: the file as it was handed out
    (kept in the file store with its SHA-256, downloadable again byte for byte), who made it and
    which invoices were in it. Append-only: a batch is never changed, a new export is a new batch."""

    __tablename__ = "coretax_batches"
    __table_args__ = (Index("ix_coretax_batches_period", "period"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[date] = mapped_column(Date, nullable=False)  # the billing month (its first day)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)

    created_by = relationship("User")
    file = relationship("StoredFile")
    items = relationship("CoretaxBatchInvoice", back_populates="batch", order_by="CoretaxBatchInvoice.id")

    @property
    def audit_ref(self) -> str:
        return f"{self.period:%Y-%m} #{self.id}"


class CoretaxBatchInvoice(db.Model):
    """An invoice in a Coretax batch, with the kode transaksi it was exported with."""

    __tablename__ = "coretax_batch_invoices"
    __table_args__ = (UniqueConstraint("batch_id", "invoice_id", name="uq_coretax_batch_invoices_batch_invoice"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("coretax_batches.id"), nullable=False)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True, nullable=False)
    transaction_code: Mapped[str] = mapped_column(String(2), nullable=False)

    batch = relationship("CoretaxBatch", back_populates="items")
    invoice = relationship("Invoice")


class FakturNumber(TimestampMixin, db.Model):
    """The tax invoice (faktur pajak) number Coretax assigned to an invoice, recorded by finance.
    Kept beside the invoice (an issued invoice and its stored PDF never change)."""

    __tablename__ = "faktur_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), unique=True, nullable=False)
    number: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    invoice = relationship("Invoice")
    recorded_by = relationship("User")


# ----------------------------------------------------------------------------- bank statements


class BankStatement(db.Model):
    """One uploaded bank statement (CSV of a bank's business banking, or MT940) and what it brought."""

    __tablename__ = "bank_statements"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank: Mapped[str] = mapped_column(String(20), nullable=False)  # the format picked: bca, mandiri, ..., mt940
    account: Mapped[str] = mapped_column(String(40), nullable=False)
    file_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    lines_read: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lines_new: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # not already known from another upload
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    uploaded_by = relationship("User")

    @property
    def audit_ref(self) -> str:
        return self.file_name or self.sha256[:12]


class BankLineStatus(LabelledEnum):
    OPEN = "open", _l("to review")
    MATCHED = "matched", _l("matched")
    IGNORED = "ignored", _l("ignored")


class BankLine(db.Model):
    """One line of a bank statement, once: ``line_key`` (bank, account, day, amount, reference or
    description, and its position among identical lines of that day) is unique, so a statement
    uploaded twice, or two overlapping ones, add each line only once."""

    __tablename__ = "bank_lines"
    __table_args__ = (
        Index("ix_bank_lines_status_day", "status", "booked_on"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("bank_statements.id"), index=True, nullable=False)
    line_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    bank: Mapped[str] = mapped_column(String(20), nullable=False)
    account: Mapped[str] = mapped_column(String(40), nullable=False)
    booked_on: Mapped[date] = mapped_column(Date, nullable=False)
    credit: Mapped[bool] = mapped_column(Boolean, nullable=False)  # money in (False: a debit)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)  # whole Rupiah, positive
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    reference: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    balance: Mapped[int | None] = mapped_column(BigInteger)
    file_row: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # its row in the file that brought it
    status: Mapped[BankLineStatus] = mapped_column(enum_type(BankLineStatus, length=10), nullable=False)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    statement = relationship("BankStatement")
    decided_by = relationship("User")
    matches = relationship("BankMatch", back_populates="line", order_by="BankMatch.id")

    @property
    def audit_ref(self) -> str:
        return f"{self.bank} {self.account} {self.booked_on.isoformat()} {self.reference or self.description[:40]}"

    @property
    def payment_reference(self) -> str:
        """The reference its payments are recorded with (at most 100 characters)."""
        return (self.reference or self.description or self.line_key[:16]).strip()[:100]

    @property
    def live_matches(self) -> list:
        """Its matches whose payment stands (not reversed)."""
        return [m for m in self.matches if m.payment.reversed_at is None]


class BankMatch(db.Model):
    """A payment recorded from a bank line, and the amount of the line it took."""

    __tablename__ = "bank_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_line_id: Mapped[int] = mapped_column(ForeignKey("bank_lines.id"), index=True, nullable=False)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True, nullable=False)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    line = relationship("BankLine", back_populates="matches")
    payment = relationship("Payment")
    invoice = relationship("Invoice")
