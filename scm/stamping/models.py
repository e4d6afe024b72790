"""Stamps: one row per e-Meterai serial and its life (reserved, stamped, failed, refunded)."""

from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scm.core.database import BigKey, UTCDateTime, enum_type, utcnow
from scm.core.enums import LabelledEnum
from scm.extensions import db


class StampState(LabelledEnum):
    RESERVED = "reserved", _l("reserved")
    STAMPED = "stamped", _l("stamped")
    FAILED = "failed", _l("failed")
    RELEASED = "released", _l("refunded")


# Names of the document types of the stamp duty law (UU 10/2020), shown to people; the codes are
# what the API, the usage files and the database hold. A type configured in SCM_DOCUMENT_TYPES
# without a name here shows its code.
DOCUMENT_TYPE_LABELS = {
    "surat_perjanjian": _l("Agreement"),
    "surat_keterangan": _l("Statement letter"),
    "akta_notaris": _l("Notarial deed"),
    "akta_ppat": _l("Land deed (PPAT)"),
    "surat_berharga": _l("Negotiable instrument"),
    "efek": _l("Capital market security"),
    "cek": _l("Cheque"),
    "bilyet_giro": _l("Bilyet giro"),
    "dokumen_lelang": _l("Auction document"),
    "dokumen_transaksi": _l("Transaction document"),
    "dokumen_lain": _l("Other document"),
}


def document_type_label(code) -> str:
    """The name of a document type in the user's language (its code when it has none)."""
    label = DOCUMENT_TYPE_LABELS.get(code)
    return str(label) if label is not None else (code or "")


SerialString = String(64).with_variant(String(64, collation="C"), "postgresql")


class Stamp(db.Model):
    """One e-Meterai serial and its life: reserved -> stamped, or released (refunded); or a
    failure reported after the fact. The serial is unique across all WAPUs."""

    __tablename__ = "stamps"
    __table_args__ = (
        Index("ix_stamps_wapu_id_desc", "wapu_id", "id"),
        Index("ix_stamps_state_expires", "state", "expires_at"),
        Index("ix_stamps_wapu_stamped_at", "wapu_id", "stamped_at"),
        Index("ix_stamps_wapu_occurred_id", "wapu_id", "occurred_at", "id"),  # the history, per WAPU
        Index("ix_stamps_occurred_id", "occurred_at", "id"),  # the distributor's history
    )

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    # Compared byte by byte on PostgreSQL too (collation "C", as SQLite does): a serial prefix is then
    # one range of its unique index (``serial_prefix``), whatever the database's locale.
    serial: Mapped[str] = mapped_column(SerialString, unique=True, nullable=False)
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


class UsageDay(db.Model):
    """How many stamps of a WAPU are in each state, per WIB calendar day of their ``occurred_at``
    (for a stamped stamp that is its ``stamped_at``): the usage summary. The dashboards, the
    billing month, the minimum check, the billing run and the history's counts read it instead of
    counting stamps. Every stamp movement adds to it in its own transaction (``scm.stamping.summary``),
    so it is always exact; ``flask quota verify`` proves it equals the stamps."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index("ix_usage_daily_state_day", "state", "day", "wapu_id", "count"),  # all WAPUs over a period
    )

    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    state: Mapped[StampState] = mapped_column(enum_type(StampState, length=10), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
