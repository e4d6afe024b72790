"""Stand-ins: a supervisor on leave names another user who decides in their place meanwhile."""

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scm.core.database import UTCDateTime
from scm.core.models import TimestampMixin
from scm.extensions import db


class StandIn(TimestampMixin, db.Model):
    """``substitute`` stands in for ``principal`` from ``start_date`` to ``end_date`` (WIB days,
    both included), unless cancelled."""

    __tablename__ = "stand_ins"
    __table_args__ = (
        CheckConstraint("end_date >= start_date", name="dates_in_order"),
        CheckConstraint("principal_id <> substitute_id", name="not_oneself"),
        Index("ix_stand_ins_substitute_dates", "substitute_id", "start_date", "end_date"),
        Index("ix_stand_ins_principal_dates", "principal_id", "start_date", "end_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    substitute_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    principal = relationship("User", foreign_keys=[principal_id])
    substitute = relationship("User", foreign_keys=[substitute_id])

    def covers(self, day: date) -> bool:
        return self.cancelled_at is None and self.start_date <= day <= self.end_date

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return f"{self.principal.email} → {self.substitute.email}"
