"""Purchase requests (PR) and purchase orders (PO), each with its history of steps."""

from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scm.auth.models import Role
from scm.core.database import UTCDateTime, enum_type, utcnow
from scm.core.enums import LabelledEnum
from scm.core.models import TimestampMixin, WorkflowEventMixin
from scm.core.workflow import StateMachine, Transition
from scm.extensions import db


class PRState(LabelledEnum):
    DRAFT = "draft", _l("draft")
    SUBMITTED = "submitted", _l("waiting for SPV approval")
    RETURNED = "returned", _l("returned for revision")
    APPROVED = "approved", _l("approved")
    REJECTED = "rejected", _l("rejected")
    CANCELLED = "cancelled", _l("cancelled")
    ORDERED = "ordered", _l("ordered (PO raised)")


class POState(LabelledEnum):
    SUBMITTED = "submitted", _l("waiting for distributor approval")
    APPROVED = "approved", _l("approved, quota issued")
    REJECTED = "rejected", _l("rejected")


class PurchaseRequest(TimestampMixin, db.Model):
    """A WAPU STAFF's request for e-Meterai quota, decided by the WAPU's SPV."""

    __tablename__ = "purchase_requests"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_purchase_requests_wapu_state", "wapu_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), nullable=False)
    number: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    needed_by: Mapped[date | None] = mapped_column(Date)
    purpose: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[PRState] = mapped_column(enum_type(PRState), default=PRState.DRAFT, nullable=False)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)

    wapu = relationship("Wapu")
    created_by = relationship("User")
    events = relationship("PurchaseRequestEvent", back_populates="purchase_request",
                          order_by="PurchaseRequestEvent.id")
    purchase_order = relationship("PurchaseOrder", back_populates="purchase_request", uselist=False)

    def can(self, action, user) -> bool:
        return pr_allows(self, action, user)

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return self.number


class PurchaseRequestEvent(WorkflowEventMixin, db.Model):
    __tablename__ = "purchase_request_events"
    state_enum = PRState

    purchase_request_id: Mapped[int] = mapped_column(ForeignKey("purchase_requests.id"), index=True, nullable=False)
    # The supervisor a stand-in decided for (None: the actor decided in their own right).
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    on_behalf_of = relationship("User", foreign_keys=[on_behalf_of_id])
    purchase_request = relationship("PurchaseRequest", back_populates="events")


class PurchaseOrder(TimestampMixin, db.Model):
    """An order for quota raised from an approved PR, at a unit price frozen when it was raised."""

    __tablename__ = "purchase_orders"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("total = quantity * unit_price", name="total_matches"),
        Index("ix_purchase_orders_wapu_state", "wapu_id", "state"),
        Index("ix_purchase_orders_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), nullable=False)
    purchase_request_id: Mapped[int] = mapped_column(ForeignKey("purchase_requests.id"), unique=True, nullable=False)
    number: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price: Mapped[int] = mapped_column(BigInteger, nullable=False)  # whole Rupiah
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)  # whole Rupiah
    state: Mapped[POState] = mapped_column(enum_type(POState), default=POState.SUBMITTED, nullable=False)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    wapu = relationship("Wapu")
    created_by = relationship("User")
    purchase_request = relationship("PurchaseRequest", back_populates="purchase_order")
    events = relationship("PurchaseOrderEvent", back_populates="purchase_order", order_by="PurchaseOrderEvent.id")

    def can(self, action, user) -> bool:
        return po_allows(self, action, user)

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return self.number


class PurchaseOrderEvent(WorkflowEventMixin, db.Model):
    __tablename__ = "purchase_order_events"
    state_enum = POState

    purchase_order_id: Mapped[int] = mapped_column(ForeignKey("purchase_orders.id"), index=True, nullable=False)
    # The supervisor a stand-in decided for (None: the actor decided in their own right).
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    on_behalf_of = relationship("User", foreign_keys=[on_behalf_of_id])
    purchase_order = relationship("PurchaseOrder", back_populates="events")


# The state machines of PRs and POs: (state, action) -> target state and the roles allowed.
STAFF = frozenset({Role.WAPU_STAFF})
SPV = frozenset({Role.WAPU_SPV})
DIST_SPV = frozenset({Role.DIST_SPV})

PR_WORKFLOW = StateMachine(
    "purchase_request",
    [
        Transition(PRState.DRAFT, "submit", PRState.SUBMITTED, STAFF),
        Transition(PRState.DRAFT, "cancel", PRState.CANCELLED, STAFF),
        Transition(PRState.RETURNED, "submit", PRState.SUBMITTED, STAFF),
        Transition(PRState.RETURNED, "cancel", PRState.CANCELLED, STAFF),
        Transition(PRState.SUBMITTED, "approve", PRState.APPROVED, SPV),
        Transition(PRState.SUBMITTED, "reject", PRState.REJECTED, SPV, comment_required=True),
        Transition(PRState.SUBMITTED, "return", PRState.RETURNED, SPV, comment_required=True),
        Transition(PRState.APPROVED, "order", PRState.ORDERED, STAFF),
    ],
    PurchaseRequestEvent,
    "purchase_request_id",
    action_labels={"submit": _l("PR submitted"), "cancel": _l("PR cancelled"), "approve": _l("PR approved"),
                   "reject": _l("PR rejected"), "return": _l("PR returned for revision"),
                   "order": _l("PO raised from the PR")},
)
PR_DECISIONS = ("approve", "reject", "return")
EDITABLE = (PRState.DRAFT, PRState.RETURNED)

PO_WORKFLOW = StateMachine(
    "purchase_order",
    [
        Transition(POState.SUBMITTED, "approve", POState.APPROVED, DIST_SPV),
        Transition(POState.SUBMITTED, "reject", POState.REJECTED, DIST_SPV, comment_required=True),
    ],
    PurchaseOrderEvent,
    "purchase_order_id",
    action_labels={"approve": _l("PO approved, quota issued"), "reject": _l("PO rejected")},
)


def pr_allows(pr, action, user) -> bool:
    """Whether ``user`` may take ``action`` on ``pr`` now: the same rules the services enforce."""
    if not user.is_wapu or user.wapu_id != pr.wapu_id:
        return False
    if action == "edit":
        return pr.state in EDITABLE and user.role == Role.WAPU_STAFF
    if action in PR_DECISIONS and user.id == pr.created_by_id:
        return False
    return PR_WORKFLOW.can(pr, action, user.role)


def po_decision_role(po, action, user):
    """``(role, on_behalf_of)`` in which ``user`` may take ``action`` on ``po`` now, or None.

    A distributor SPV decides in their own right; whoever stands in today for a distributor SPV
    decides on that supervisor's behalf (a DIST_SPV standing in is recorded so too). Nobody
    decides on what they raised."""
    from scm.people.services import stand_in_mandate

    if not user.is_distributor or user.id == po.created_by_id:
        return None
    transition = PO_WORKFLOW.transition(po, action)
    if transition is None:
        return None
    principal = stand_in_mandate(user, transition.roles, exclude_ids={po.created_by_id})
    if principal is not None:
        return principal.role, principal
    if user.role in transition.roles:
        return user.role, None
    return None


def po_allows(po, action, user) -> bool:
    return po_decision_role(po, action, user) is not None
