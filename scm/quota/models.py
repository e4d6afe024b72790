"""Quota accounts (one per WAPU) and the append-only ledger of every movement."""

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scm.core.database import BigKey, UTCDateTime, enum_type, utcnow
from scm.core.enums import LabelledEnum
from scm.core.models import TimestampMixin
from scm.extensions import db


class EntryKind(LabelledEnum):
    ISSUE = "issue", _l("issued")
    ADJUST = "adjust", _l("adjustment")
    RESERVE = "reserve", _l("reserved")
    COMMIT = "commit", _l("stamped")
    RELEASE = "release", _l("returned")
    CONSUME = "consume", _l("stamped (reported)")  # a stamp reported after the fact: available -> consumed directly


class QuotaAccount(db.Model):
    """A WAPU's quota: available + reserved + consumed == issued + adjusted, never negative."""

    __tablename__ = "quota_accounts"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("consumed >= 0", name="consumed_not_negative"),
        CheckConstraint("issued >= 0", name="issued_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), unique=True, nullable=False)
    available: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    reserved: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    consumed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    issued: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    adjusted: Mapped[int] = mapped_column(Integer, default=0, nullable=False)  # net, may be negative
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    wapu = relationship("Wapu")


class QuotaEntry(TimestampMixin, db.Model):
    """One movement of quota. Written with its account change in one transaction; never edited.

    ``idempotency_key`` is unique per kind (the PO id for an issue, the stamp serial later): a
    retry finds the first entry instead of moving quota twice.
    """

    __tablename__ = "quota_entries"
    __append_only__ = True
    __table_args__ = (
        UniqueConstraint("kind", "idempotency_key", name="uq_quota_entries_kind_key"),
        CheckConstraint("quantity <> 0", name="quantity_not_zero"),
        Index("ix_quota_entries_wapu_created", "wapu_id", "id"),
        Index("ix_quota_entries_kind_created", "kind", "created_at"),  # quota issued per month (dashboards)
    )

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("quota_accounts.id"), nullable=False)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), nullable=False)
    kind: Mapped[EntryKind] = mapped_column(enum_type(EntryKind, length=10), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)  # signed only for adjust
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False)
    reference: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    available_after: Mapped[int] = mapped_column(Integer, nullable=False)

    actor = relationship("User")
