"""Core tables: gapless counters, the append-only audit log and the email outbox."""

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from scm.core.database import UTCDateTime, enum_type, utcnow
from scm.extensions import db


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Counter(db.Model):
    """A named gapless sequence (registration references, WAPU codes, later PO/invoice numbers)."""

    __tablename__ = "counters"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AuditLog(TimestampMixin, db.Model):
    """One row per state change or security event. Never updated, never deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor_label: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(80), nullable=False, index=True)
    object_type: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    object_id: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    ip: Mapped[str | None] = mapped_column(String(45))


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete an audit row."""


@event.listens_for(Session, "before_flush")
def _audit_log_is_append_only(session, _flush_context, _instances):
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditLog):
            raise AppendOnlyError("the audit log is append-only")


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxEmail(TimestampMixin, db.Model):
    """An email waiting to be sent; written in the same transaction as the action that caused it."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(255), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # Sensitive mail (one-time passwords) has its body erased once delivered.
    sensitive: Mapped[bool] = mapped_column(default=False, nullable=False)
    state: Mapped[OutboxState] = mapped_column(
        enum_type(OutboxState),
        default=OutboxState.PENDING,
        nullable=False,
        index=True,
    )
    attempts: Mapped[int] = mapped_column(default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StoredFile(TimestampMixin, db.Model):
    """An uploaded file kept under a random name outside the web root, with its SHA-256."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    stored_name: Mapped[str] = mapped_column(String(80), unique=True, nullable=False)
    original_name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(80), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
