"""The stamp time window: which stamp times (``stamped_at``) are accepted from the outside.

A time that a stamping system reports (an API batch) or that a usage file holds is accepted only
from ``earliest`` to ``latest``, both included:

- ``latest``: at most ``STAMP_MAX_FUTURE_MINUTES`` after now (clocks drift a little, not more);
- never before the WAPU's first contract started (00:00 WIB of its start date): no month before
  it will ever be billed, and a WAPU without a contract accepts no stamp at all;
- not before the first day of the month ``STAMP_LOOKBACK_MONTHS`` months before this one (WIB):
  with 2, on any day of November stamps from 1 September 00:00 WIB on are accepted. Older stamps
  belong to months long invoiced; the distributor admin may still import them from a usage file,
  deliberately and with a reason that is audited (``allow_old``). The other two limits hold for
  everyone.

Every path that takes a stamp time from the outside builds the WAPU's window once
(:func:`stamp_window`, or :meth:`StampWindow.build` when the contract start is already known) and
asks :meth:`StampWindow.refusal` for each time.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from scm.core.database import utcnow
from scm.core.formatting import WIB, format_day, format_wib
from scm.extensions import db
from scm.registration.models import Contract

IN_FUTURE = "stamped_at_in_future"
BEFORE_CONTRACT = "stamped_at_before_contract"
TOO_OLD = "stamped_at_too_old"
WINDOW_CODES = (IN_FUTURE, BEFORE_CONTRACT, TOO_OLD)


def lookback_start(now: datetime, months: int) -> datetime:
    """00:00 WIB on the first day of the (WIB) month ``months`` months before the month of ``now``."""
    local = now.astimezone(WIB)
    index = local.year * 12 + local.month - 1 - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=WIB)


def day_start(day: date) -> datetime:
    """00:00 WIB of a WIB calendar day (a contract's start date)."""
    return datetime.combine(day, time(0), WIB)


@dataclass(frozen=True)
class WindowRefusal:
    """Why a stamp time is refused: a machine code, the limit it crossed (None: the WAPU has no
    contract) and a message that states that limit in the reader's language."""

    code: str
    limit: datetime | None
    message: object  # a lazy string

    def limit_iso(self):
        return self.limit.astimezone(WIB).isoformat() if self.limit else None

    def result(self, serial):
        """A batch result for an event refused for its time (the API answers it as is)."""
        return {"serial": serial, "result": self.code, "limit": self.limit_iso(), "detail": str(self.message)}


@dataclass(frozen=True)
class StampWindow:
    """The accepted stamp times of one WAPU at ``now``."""

    latest: datetime
    contract_start: datetime | None  # None: the WAPU has no contract
    lookback_start: datetime
    future_minutes: int
    lookback_months: int
    allow_old: bool = False

    @classmethod
    def build(cls, first_contract_day: date | None, *, now=None, allow_old=False):
        config = current_app.config
        now = now or utcnow()
        future, months = config["STAMP_MAX_FUTURE_MINUTES"], config["STAMP_LOOKBACK_MONTHS"]
        return cls(latest=now + timedelta(minutes=future),
                   contract_start=day_start(first_contract_day) if first_contract_day else None,
                   lookback_start=lookback_start(now, months), future_minutes=future, lookback_months=months,
                   allow_old=allow_old)

    @property
    def earliest(self) -> datetime | None:
        """The first accepted time (None: nothing is accepted)."""
        if self.contract_start is None:
            return None
        return self.contract_start if self.allow_old else max(self.contract_start, self.lookback_start)

    def is_old(self, moment: datetime) -> bool:
        """Older than the look-back (accepted only with ``allow_old``)."""
        return moment < self.lookback_start

    def refusal(self, moment: datetime) -> WindowRefusal | None:
        """None when ``moment`` is accepted, else why not. A time in the future or before the first
        contract is refused even with ``allow_old``."""
        if moment > self.latest:
            return WindowRefusal(IN_FUTURE, self.latest, _l(
                "The stamp time is in the future: it may be at most %(minutes)s minutes after now (%(limit)s).",
                minutes=self.future_minutes, limit=format_wib(self.latest, with_seconds=True)))
        if self.contract_start is None:
            return WindowRefusal(BEFORE_CONTRACT, None, _l("The WAPU has no contract: no stamp time is accepted."))
        if moment < self.contract_start:
            return WindowRefusal(BEFORE_CONTRACT, self.contract_start, _l(
                "The stamp time is before the WAPU's first contract, which started on %(limit)s.",
                limit=format_day(self.contract_start.date())))
        if not self.allow_old and self.is_old(moment):
            return WindowRefusal(TOO_OLD, self.lookback_start, _l(
                "The stamp time is older than the look-back of %(months)s months: stamps before %(limit)s are no "
                "longer accepted (the distributor admin may still import them from a usage file, with a reason).",
                months=self.lookback_months, limit=format_day(self.lookback_start.date())))
        return None


def first_contract_days(wapu_ids=None) -> dict:
    """``{wapu_id: start date of its first contract}`` (WAPUs without a contract are absent)."""
    stmt = select(Contract.wapu_id, func.min(Contract.start_date)).group_by(Contract.wapu_id)
    if wapu_ids is not None:
        stmt = stmt.where(Contract.wapu_id.in_(list(wapu_ids)))
    return dict(db.session.execute(stmt).all())


def stamp_window(wapu_id, *, now=None, allow_old=False) -> StampWindow:
    """The accepted stamp times of one WAPU at ``now`` (one query: its first contract's start)."""
    return StampWindow.build(first_contract_days([wapu_id]).get(wapu_id), now=now, allow_old=allow_old)
