"""WAPU registrations (with their PICs and review history), WAPUs and their contracts."""

from datetime import date, datetime
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

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


class CompanyMixin:
    """Company data shared by a registration and the WAPU it becomes."""

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str] = mapped_column(Text, nullable=False)
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    npwp: Mapped[str] = mapped_column(String(16), nullable=False)  # digits only
    nib: Mapped[str] = mapped_column(String(13), nullable=False)

    @property
    def npwp_formatted(self) -> str:
        return format_npwp(self.npwp)


class Wapu(CompanyMixin, TimestampMixin, db.Model):
    """An approved Pemungut (WAPU): the tenant that owns PRs, POs, quota and invoices."""

    __tablename__ = "wapus"
    __tenant_column__ = "id"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    npwp: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    status: Mapped[WapuStatus] = mapped_column(enum_type(WapuStatus), default=WapuStatus.ACTIVE, nullable=False)

    users = relationship("User", back_populates="wapu", order_by="User.role")
    contracts = relationship("Contract", back_populates="wapu", order_by="Contract.start_date.desc()")
    registration = relationship("Registration", back_populates="wapu", uselist=False, viewonly=True)

    def contract_on(self, day):
        """The contract valid on ``day`` (a WIB calendar date), or None."""
        for contract in self.contracts:
            if contract.start_date <= day <= contract.end_date:
                return contract
        return None

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
        return self.created_at.astimezone(WIB).date()


class Contract(TimestampMixin, db.Model):
    """The distributor's contract with a WAPU: number, validity and the signed PDF."""

    __tablename__ = "contracts"
    __table_args__ = (CheckConstraint("end_date > start_date", name="end_after_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), index=True, nullable=False)
    number: Mapped[str] = mapped_column(String(100), nullable=False)
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False)
    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), nullable=False)
    # Price per e-Meterai agreed in this contract (whole Rupiah); None: the distributor's default.
    unit_price: Mapped[int | None] = mapped_column(BigInteger)

    wapu = relationship("Wapu", back_populates="contracts")
    file = relationship("StoredFile")

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
