"""Core tables: gapless counters, the append-only audit log and the email outbox."""

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, event
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column, relationship

from scm.core.database import BigKey, UTCDateTime, enum_type, utcnow
from scm.core.enums import LabelledEnum
from scm.extensions import db


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class WorkflowEventMixin(TimestampMixin):
    """A step of a workflow: who moved the item from which state to which, when and why.

    Subclasses add the foreign key to their item and set ``state_enum``.
    """

    state_enum = None

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    comment: Mapped[str | None] = mapped_column(Text)

    @declared_attr
    def actor(cls):
        return relationship("User", foreign_keys=f"{cls.__name__}.actor_id")

    @property
    def to_label(self):
        return self.state_enum(self.to_state).label


class Notification(TimestampMixin, db.Model):
    """An in-app message for one user (the bell); the same text also goes out by email."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    link: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def text(self) -> str:
        from scm.core.services import notification_text

        return notification_text(self.kind, self.params)


class Counter(db.Model):
    """A named gapless sequence (registration references, WAPU codes, later PO/invoice numbers)."""

    __tablename__ = "counters"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AuditLog(TimestampMixin, db.Model):
    """One row per state change or security event. Never updated, never deleted."""

    __tablename__ = "audit_log"
    __append_only__ = True
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor_label: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(80), nullable=False, index=True)
    object_type: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    object_id: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")  # plain English, for operators
    # What happened, as data (numbers, amounts, months, states), shown in the reader's language.
    details: Mapped[dict | None] = mapped_column(JSON)
    # The object's business reference: W0009, PO/W0009/2026/00003, INV/2026/11/00012, an email.
    object_ref: Mapped[str] = mapped_column(String(120), nullable=False, default="", server_default="", index=True)
    ip: Mapped[str | None] = mapped_column(String(45))


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete a row of an append-only table."""


@event.listens_for(Session, "before_flush")
def _append_only_tables(session, _flush_context, _instances):
    """Models marked ``__append_only__`` (audit log, quota ledger) are never updated or deleted."""
    for obj in session.deleted:
        if getattr(obj, "__append_only__", False):
            raise AppendOnlyError(f"{obj.__tablename__} is append-only")
    for obj in session.dirty:
        if getattr(obj, "__append_only__", False) and session.is_modified(obj):
            raise AppendOnlyError(f"{obj.__tablename__} is append-only")


class OutboxState(LabelledEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxEmail(TimestampMixin, db.Model):
    """An email waiting to be sent; written in the same transaction as the action that caused it."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
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


class FileBlob(db.Model):
    """The bytes of a file, once per content: its SHA-256 is its key (``bytea`` on PostgreSQL).

    Stored files and held uploads name a blob by its SHA-256. ``used_at`` is the last time a file
    was stored or held with this content; a blob nobody names is removed a day after that.
    """

    __tablename__ = "file_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class StoredFile(TimestampMixin, db.Model):
    """An uploaded file: its name, type, size and SHA-256; its bytes are the blob of that SHA-256.

    ``stored_name`` is a random name (the file's name in the upload folder before 0008_file_store,
    and again if that migration is undone).
    """

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    stored_name: Mapped[str] = mapped_column(String(80), unique=True, nullable=False)
    original_name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(80), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)


class HeldUpload(db.Model):
    """A checked upload kept between two requests (a form shown again, a usage file between its
    preview and its apply), on whichever node serves the next one. Found by the SHA-256 of its
    random token; refused and removed once older than a day."""

    __tablename__ = "held_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    original_name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(80), nullable=False)
    sha256: Mapped[str] = mapped_column(ForeignKey("file_blobs.sha256"), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)


class JobOutcome(LabelledEnum):
    RUNNING = "running", _l("running")
    SUCCESS = "success", _l("success")
    FAILED = "failed", _l("failed")
    SKIPPED = "skipped", _l("skipped (locked)")  # another scheduler held the job's lock


class JobRun(db.Model):
    """One run of a scheduled job: when it started and ended, how it went and what it did."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_name_started", "name", "started_at"),)

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[JobOutcome] = mapped_column(enum_type(JobOutcome, length=10), nullable=False)
    counts: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(200), nullable=False, default="")


class JobLock(db.Model):
    """A lease on one job name: a scheduler runs the job only while it holds an unexpired lease."""

    __tablename__ = "job_locks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TaskState(LabelledEnum):
    QUEUED = "queued", _l("waiting")
    RUNNING = "running", _l("running")
    DONE = "done", _l("done")
    FAILED = "failed", _l("failed")


class BackgroundTask(db.Model):
    """Heavy work a person started (a month's workbook, issuing a month's invoices...), run by a
    worker of the task queue (Huey). The row is the truth: the queue only carries its id.

    A worker claims the task with a lease that its progress renews; a task whose worker died (its
    lease expired) or whose message was lost goes back on the queue (``requeue-tasks``). The work
    itself is idempotent, and a finished task is never run again. A produced file is a stored file
    (its bytes in ``file_blobs``), downloadable until ``expires_at``.
    """

    __tablename__ = "background_tasks"
    __table_args__ = (Index("ix_background_tasks_state_locked", "state", "locked_until"),
                      Index("ix_background_tasks_kind_key_state", "kind", "key", "state"))

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    kind: Mapped[str] = mapped_column(String(60), nullable=False)
    key: Mapped[str] = mapped_column(String(200), nullable=False, default="")  # what it works on: "2026-10"
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[TaskState] = mapped_column(enum_type(TaskState, length=10), nullable=False)
    done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    step: Mapped[str] = mapped_column(String(200), nullable=False, default="")  # what it is doing now
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    holder: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the file's download ends
    result: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))

    user = relationship("User")
    file = relationship("StoredFile")

    @property
    def percent(self) -> int:
        if self.state == TaskState.DONE:
            return 100
        return min(99, int(100 * self.done / self.total)) if self.total else 0

    @property
    def finished(self) -> bool:
        return self.state in (TaskState.DONE, TaskState.FAILED)
