"""WAPU registrations (with their PICs and review history), WAPUs and their contracts."""

from datetime import date, datetime, timedelta
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from scm.auth.models import REVIEWER_ROLES, Role
from scm.core.database import UTCDateTime, enum_type, utcnow
from scm.core.enums import LabelledEnum
from scm.core.formatting import WIB
from scm.core.models import TimestampMixin, WorkflowEventMixin
from scm.core.workflow import StateMachine, Transition
from scm.extensions import db
from scm.registration.validators import format_npwp


class RegistrationState(LabelledEnum):
    SUBMITTED = "submitted", _l("waiting for review")
    RETURNED = "returned", _l("sent back for correction")
    APPROVED = "approved", _l("approved")
    REJECTED = "rejected", _l("rejected")


class ContactKind(LabelledEnum):
    SPV = "SPV", _l("Supervisor (SPV)")
    FIN = "FIN", _l("Finance (FIN)")
    STAFF = "STAFF", _l("Staff (STAFF)")

    @property
    def role(self) -> Role:
        return Role(f"WAPU_{self.value}")


class WapuStatus(LabelledEnum):
    ACTIVE = "active", _l("active")
    SUSPENDED = "suspended", _l("suspended")


class WapuKind(LabelledEnum):
    """What kind of VAT collector a WAPU is: it decides the Coretax *kode transaksi* by default."""

    GOVERNMENT = "government", _l("Government treasurer (instansi pemerintah / bendahara)")
    BUMN = "bumn", _l("State-owned enterprise (BUMN)")
    KKKS = "kkks", _l("Oil and gas contractor (KKKS)")
    OTHER = "other", _l("Other VAT collector")

    @property
    def default_transaction_code(self) -> str:
        """02 for government treasurers, 03 for other VAT collectors (BUMN, KKKS, others)."""
        return "02" if self is WapuKind.GOVERNMENT else "03"


# Coretax *kode transaksi* a WAPU's tax invoices may carry (DOMAIN.md §6).
CORETAX_TRANSACTION_CODES = {"02": _l("02 — to a government treasurer"),
                             "03": _l("03 — to another VAT collector (BUMN, KKKS)")}


class InactiveReason(LabelledEnum):
    """Why a WAPU may not order or reserve today (the API's ``reason``)."""

    SUSPENDED = "suspended", _l("The WAPU is suspended")
    NO_CONTRACT = "no_contract", _l("The WAPU has no contract in force today")
    CONTRACT_ENDED = "contract_ended", _l("The WAPU's contract has ended")


class ContractKind(LabelledEnum):
    INITIAL = "initial", _l("initial contract")
    RENEWAL = "renewal", _l("renewal")
    AMENDMENT = "amendment", _l("amendment")


class ContractEnd(LabelledEnum):
    """How a contract stopped before its signed end date."""

    TERMINATED = "terminated", _l("terminated early")
    SUPERSEDED = "superseded", _l("superseded")


def taxpayer_key(digits: str | None) -> str | None:
    """The 16-digit form of an NPWP (``0`` + a 15-digit one); the same key for both spellings."""
    if digits is not None and len(digits) == 15:
        return "0" + digits
    return digits


def npwp_forms(digits: str) -> set[str]:
    """Both spellings of one taxpayer's NPWP: 15 digits and its 16-digit form (``0`` + the 15)."""
    if len(digits) == 15:
        return {digits, "0" + digits}
    if len(digits) == 16 and digits.startswith("0"):
        return {digits, digits[1:]}
    return {digits}


class CompanyMixin:
    """Company data shared by a registration and the WAPU it becomes."""

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str] = mapped_column(Text, nullable=False)
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    npwp: Mapped[str] = mapped_column(String(16), nullable=False)  # digits only
    nib: Mapped[str] = mapped_column(String(13), nullable=False)
    # The taxpayer behind the NPWP: its 16-digit form, whichever form was typed. The database keeps
    # it unique (one WAPU, one open registration), so two requests at the same instant cannot
    # register one taxpayer twice under its two spellings.
    taxpayer: Mapped[str | None] = mapped_column(String(16))

    @validates("npwp")
    def _set_taxpayer(self, _key, value):
        self.taxpayer = taxpayer_key(value)
        return value

    @property
    def npwp_formatted(self) -> str:
        return format_npwp(self.npwp)


class Wapu(CompanyMixin, TimestampMixin, db.Model):
    """An approved Pemungut (WAPU): the tenant that owns PRs, POs, quota and invoices."""

    __tablename__ = "wapus"
    __table_args__ = (Index("uq_wapus_taxpayer", "taxpayer", unique=True),)  # either spelling of an NPWP
    __tenant_column__ = "id"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    npwp: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    status: Mapped[WapuStatus] = mapped_column(enum_type(WapuStatus), default=WapuStatus.ACTIVE, nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text)  # why it was suspended
    # Coretax e-Faktur: the kind of collector, its NITKU (NPWP-16 + 6-digit place of business) and
    # the kode transaksi (None: the kind's default, 02 or 03).
    kind: Mapped[WapuKind | None] = mapped_column(enum_type(WapuKind, length=12))
    nitku: Mapped[str | None] = mapped_column(String(22))
    coretax_transaction_code: Mapped[str | None] = mapped_column(String(2))

    users = relationship("User", back_populates="wapu", order_by="User.role")
    contracts = relationship("Contract", back_populates="wapu", order_by="Contract.start_date.desc()")
    registration = relationship("Registration", back_populates="wapu", uselist=False, viewonly=True)

    def contract_on(self, day):
        """The contract in force on ``day`` (a WIB calendar date), or None."""
        for contract in self.contracts:
            if contract.in_force_on(day):
                return contract
        return None

    def inactive_reason(self, day) -> "InactiveReason | None":
        """Why the WAPU may not order or reserve on ``day`` (None when it may)."""
        if self.status != WapuStatus.ACTIVE:
            return InactiveReason.SUSPENDED
        if self.contract_on(day) is not None:
            return None
        if any(c.start_date <= day for c in self.contracts):
            return InactiveReason.CONTRACT_ENDED
        return InactiveReason.NO_CONTRACT

    @property
    def last_day_under_contract(self):
        """The last day of the contract that ends last, or None (no contract)."""
        return max((c.last_day for c in self.contracts), default=None)

    @property
    def transaction_code(self) -> str | None:
        """The Coretax kode transaksi of its tax invoices: its own setting, else its kind's default."""
        if self.coretax_transaction_code:
            return self.coretax_transaction_code
        return self.kind.default_transaction_code if self.kind is not None else None

    @property
    def current_contract(self):
        from scm.core.formatting import today_wib

        return self.contract_on(today_wib())

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return self.code

    @property
    def joined_on(self) -> date:
        """The (WIB) day the WAPU became a customer: its registration was approved."""
        return joined_day(self.created_at)


def joined_day(created_at: datetime) -> date:
    """``Wapu.joined_on`` from the WAPU's ``created_at`` (for a WAPU loaded as columns)."""
    return created_at.astimezone(WIB).date()


def contract_last_day(end_date: date, ended_from: date | None) -> date:
    """The last WIB day a contract applies: its end date, or the day before it was ended
    (``Contract.last_day``, for a contract loaded as columns)."""
    return end_date if ended_from is None else min(end_date, ended_from - timedelta(days=1))


class Contract(TimestampMixin, db.Model):
    """The distributor's contract with a WAPU: number, validity and the signed PDF."""

    __tablename__ = "contracts"
    __table_args__ = (CheckConstraint("end_date > start_date", name="end_after_start"),)
    __tenant_column__ = "wapu_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), index=True, nullable=False)
    number: Mapped[str] = mapped_column(String(100), nullable=False)
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False)
    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), nullable=False)
    # Price per e-Meterai agreed in this contract (whole Rupiah); None: the distributor's default.
    unit_price: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[ContractKind] = mapped_column(enum_type(ContractKind, length=10), default=ContractKind.INITIAL,
                                               nullable=False)
    # Ended before its signed end date: from this day on it no longer applies (terminated or superseded).
    ended_from: Mapped[date | None] = mapped_column(Date)
    ended_how: Mapped[ContractEnd | None] = mapped_column(enum_type(ContractEnd, length=10))
    ended_reason: Mapped[str | None] = mapped_column(Text)

    wapu = relationship("Wapu", back_populates="contracts")
    file = relationship("StoredFile")

    @property
    def last_day(self) -> date:
        """The last WIB day it applies: its end date, or the day before it was ended."""
        return contract_last_day(self.end_date, self.ended_from)

    def in_force_on(self, day) -> bool:
        return self.start_date <= day <= self.last_day

    def standing(self, today) -> str:
        """``in_force``, ``upcoming`` or ``ended`` (how it ended: ``ended_how``, else it expired)."""
        if self.in_force_on(today):
            return "in_force"
        if self.start_date > today and self.last_day >= self.start_date:
            return "upcoming"
        return "ended"

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return self.number


class Registration(CompanyMixin, TimestampMixin, db.Model):
    """What a WAPU submitted, and where its review stands."""

    __tablename__ = "registrations"
    __table_args__ = (
        CheckConstraint("contract_end > contract_start", name="contract_end_after_start"),
        # One NPWP registers once: only a rejected registration frees its NPWP again.
        Index(
            "uq_registrations_npwp_open",
            "npwp",
            unique=True,
            sqlite_where=text("state <> 'rejected'"),
            postgresql_where=text("state <> 'rejected'"),
        ),
        Index(  # either spelling of one taxpayer's NPWP
            "uq_registrations_taxpayer_open",
            "taxpayer",
            unique=True,
            sqlite_where=text("state <> 'rejected'"),
            postgresql_where=text("state <> 'rejected'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    state: Mapped[RegistrationState] = mapped_column(
        enum_type(RegistrationState), default=RegistrationState.SUBMITTED, nullable=False, index=True
    )
    contract_number: Mapped[str] = mapped_column(String(100), nullable=False)
    contract_start: Mapped[date] = mapped_column(Date, nullable=False)
    contract_end: Mapped[date] = mapped_column(Date, nullable=False)
    contract_file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), nullable=False)
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    wapu_id: Mapped[int | None] = mapped_column(ForeignKey("wapus.id"), unique=True)
    # The private correction link: only its SHA-256 is kept.
    correction_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    correction_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    contract_file = relationship("StoredFile")
    entered_by = relationship("User", foreign_keys=[entered_by_id])
    wapu = relationship("Wapu", back_populates="registration")
    contacts = relationship(
        "RegistrationContact", back_populates="registration", cascade="all, delete-orphan",
        order_by="RegistrationContact.id",
    )
    events = relationship(
        "RegistrationEvent", back_populates="registration", order_by="RegistrationEvent.id"
    )

    def contact(self, kind):
        return next((c for c in self.contacts if c.kind == ContactKind(kind)), None)

    def can(self, action, user) -> bool:
        """Whether ``user`` may take ``action`` now (drives which buttons are shown)."""
        return REGISTRATION_WORKFLOW.can(self, action, user.role)

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return self.reference


class RegistrationContact(db.Model):
    """One of the three PICs of a registration: SPV, FIN or STAFF."""

    __tablename__ = "registration_contacts"
    __table_args__ = (UniqueConstraint("registration_id", "kind", name="uq_registration_contacts_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id"), nullable=False)
    kind: Mapped[ContactKind] = mapped_column(enum_type(ContactKind, length=8), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str] = mapped_column(String(255), nullable=False)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)  # E.164

    registration = relationship("Registration", back_populates="contacts")


class RegistrationEvent(WorkflowEventMixin, db.Model):
    """A step of a registration's review: who, when, what and why."""

    __tablename__ = "registration_events"
    state_enum = RegistrationState

    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id"), index=True, nullable=False)
    registration = relationship("Registration", back_populates="events")


# The review's state machine: (state, action) -> target state and the roles allowed.
APPLICANT = "APPLICANT"  # the public applicant, acting through the private correction link
S = RegistrationState

REGISTRATION_WORKFLOW = StateMachine(
    "registration",
    [
        Transition(S.SUBMITTED, "approve", S.APPROVED, REVIEWER_ROLES),
        Transition(S.SUBMITTED, "reject", S.REJECTED, REVIEWER_ROLES, comment_required=True),
        Transition(S.SUBMITTED, "send_back", S.RETURNED, REVIEWER_ROLES, comment_required=True),
        Transition(S.RETURNED, "resubmit", S.SUBMITTED, frozenset({APPLICANT})),
        Transition(S.RETURNED, "reject", S.REJECTED, REVIEWER_ROLES, comment_required=True),
    ],
    RegistrationEvent,
    "registration_id",
    action_labels={"approve": _l("Registration approved"), "reject": _l("Registration rejected"),
                   "send_back": _l("Registration sent back for correction"),
                   "resubmit": _l("Registration corrected and resubmitted")},
)


class ChangeState(LabelledEnum):
    SUBMITTED = "submitted", _l("waiting for review")
    APPROVED = "approved", _l("approved")
    REJECTED = "rejected", _l("rejected")


class CompanyChange(TimestampMixin, db.Model):
    """A WAPU's request to change its company name, address or NPWP, reviewed like a registration.

    The old values are kept beside the new ones, so the history shows what changed."""

    __tablename__ = "company_changes"
    __table_args__ = (
        # One open request per WAPU at a time.
        Index("uq_company_changes_open", "wapu_id", unique=True,
              sqlite_where=text("state = 'submitted'"), postgresql_where=text("state = 'submitted'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), index=True, nullable=False)
    state: Mapped[ChangeState] = mapped_column(enum_type(ChangeState), default=ChangeState.SUBMITTED, nullable=False)
    old_name: Mapped[str] = mapped_column(String(200), nullable=False)
    old_address: Mapped[str] = mapped_column(Text, nullable=False)
    old_npwp: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str] = mapped_column(Text, nullable=False)
    npwp: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)

    wapu = relationship("Wapu")
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])

    @property
    def audit_ref(self) -> str:
        return self.wapu.code

    def changes(self) -> list[tuple[str, str, str]]:
        """(field, old, new) for each field that changes."""
        out = []
        for name in ("name", "address", "npwp"):
            old, new = getattr(self, f"old_{name}"), getattr(self, name)
            if old != new:
                out.append((name, format_npwp(old) if name == "npwp" else old,
                            format_npwp(new) if name == "npwp" else new))
        return out


class ContractWarning(TimestampMixin, db.Model):
    """An expiry warning sent for a WAPU's last contract: one per contract and threshold (60, 30, 7 days)."""

    __tablename__ = "contract_warnings"
    __table_args__ = (UniqueConstraint("contract_id", "last_day", "days", name="uq_contract_warnings_contract_days"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), nullable=False)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), index=True, nullable=False)
    days: Mapped[int] = mapped_column(Integer, nullable=False)
    last_day: Mapped[date] = mapped_column(Date, nullable=False)
