"""Stamps: one row per e-Meterai serial and its life (reserved, stamped, failed, refunded)."""

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scm.core.database import UTCDateTime, enum_type, utcnow
from scm.core.enums import LabelledEnum
from scm.extensions import db


class StampState(LabelledEnum):
    RESERVED = "reserved", _l("reserved")
    STAMPED = "stamped", _l("stamped")
    FAILED = "failed", _l("failed")
    RELEASED = "released", _l("refunded")


class Stamp(db.Model):
    """One e-Meterai serial and its life: reserved -> stamped, or released (refunded); or a
    failure reported after the fact. The serial is unique across all WAPUs."""

    __tablename__ = "stamps"
    __table_args__ = (
        Index("ix_stamps_wapu_id_desc", "wapu_id", "id"),
        Index("ix_stamps_state_expires", "state", "expires_at"),
        Index("ix_stamps_wapu_stamped_at", "wapu_id", "stamped_at"),
        Index("ix_stamps_wapu_occurred", "wapu_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), nullable=False)
    state: Mapped[StampState] = mapped_column(enum_type(StampState, length=10), nullable=False)
    document_type: Mapped[str] = mapped_column(String(40), nullable=False)
    document_number: Mapped[str | None] = mapped_column(String(100))
    document_date: Mapped[str | None] = mapped_column(String(40))  # ISO 8601 as sent
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)  # what makes a retry "identical"
    source: Mapped[str] = mapped_column(String(10), nullable=False)  # api, batch, file
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    reserved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stamped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    release_reason: Mapped[str | None] = mapped_column(String(200))
    # When it happened: the reservation, then the stamping; for reported events, their stamped_at.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    wapu = relationship("Wapu")
    token = relationship("ApiToken")
