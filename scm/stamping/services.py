"""Using quota: reserve -> commit (stamped) or release (refunded), batches of stamps reported
after the fact, and the expiry of reservations nobody committed.

Every operation is one transaction in which the stamp row, the account and the ledger entry
change together. State changes are conditional UPDATEs (``... WHERE state = 'reserved'``), so
a commit racing an expiry or a release has exactly one winner, and the unique serial (stamps)
and unique (kind, serial) (ledger) are the final word on duplicates. Plain SQL statements
(SQLAlchemy Core) keep the hot path lean.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, exists, func, insert, select, update

from scm.core.database import insert_or_ignore, is_sqlite, unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import to_wib, today_wib
from scm.extensions import db
from scm.quota.models import EntryKind, QuotaAccount
from scm.quota.services import InsufficientQuota, consume_quota_bulk, move_quota
from scm.registration.models import Contract, Wapu, WapuStatus
from scm.stamping.models import Stamp, StampState
from scm.stamping.summary import record_moved, record_new, record_rows
from scm.stamping.window import WINDOW_CODES, stamp_window

RESERVE = {"available": -1, "reserved": 1}
COMMIT = {"reserved": -1, "consumed": 1}
RELEASE = {"reserved": -1, "available": 1}

# The hot path's statements, built once (plain Core on the table, RETURNING the stamp).
_STAMPS = Stamp.__table__
_FIND = select(_STAMPS).where(_STAMPS.c.serial == bindparam("p_serial"))
# INSERT ... ON CONFLICT (serial) DO NOTHING RETURNING: the new row, or nothing when the serial exists
# (on PostgreSQL after waiting for a concurrent insert of the same serial to commit or roll back).
_INSERT_NEW = {dialect: insert_or_ignore(_STAMPS, {}, ["serial"], dialect=dialect).returning(*_STAMPS.c)
               for dialect in ("sqlite", "postgresql")}
_COMMIT = (
    update(_STAMPS)
    .where(_STAMPS.c.serial == bindparam("p_serial"), _STAMPS.c.wapu_id == bindparam("p_wapu_id"),
           _STAMPS.c.state == StampState.RESERVED, _STAMPS.c.expires_at > bindparam("p_now"))
    .values(state=StampState.STAMPED, stamped_at=bindparam("p_now"), occurred_at=bindparam("p_now"))
    .returning(*_STAMPS.c)
)
_RELEASE = (
    update(_STAMPS)
    .where(_STAMPS.c.serial == bindparam("p_serial"), _STAMPS.c.wapu_id == bindparam("p_wapu_id"),
           _STAMPS.c.state == StampState.RESERVED)
    .values(state=StampState.RELEASED, released_at=bindparam("p_now"), release_reason=bindparam("p_reason"))
    .returning(*_STAMPS.c)
)
_RELEASE_EXPIRED = _RELEASE.where(_STAMPS.c.expires_at <= bindparam("p_now"))
_IN_FORCE = exists().where(Contract.wapu_id == Wapu.id, Contract.start_date <= bindparam("p_today"),
                           Contract.end_date >= bindparam("p_today"),
                           (Contract.ended_from.is_(None)) | (Contract.ended_from > bindparam("p_today")))
_ACTIVE = (
    select(func.count()).select_from(Wapu)
    .where(Wapu.id == bindparam("p_wapu_id"), Wapu.status == WapuStatus.ACTIVE, _IN_FORCE)
)
# The same rule as one more condition of the reservation's account UPDATE (no statement of its own).
_ACCOUNT_ACTIVE = exists().where(Wapu.id == QuotaAccount.__table__.c.wapu_id, Wapu.status == WapuStatus.ACTIVE,
                                 _IN_FORCE)


def _run(stmt, **params):
    return db.session.connection().execute(stmt, params)


class StampError(ServiceError):
    """A refused stamping operation: a machine code (``serial_conflict``, ``insufficient_quota``, …),
    a message, and facts the caller may show (``available``, ``state``). Nothing was changed."""

    def __init__(self, code, message, **extra):
        super().__init__(message, code=code)
        self.extra = extra


@dataclass
class StampInput:
    serial: str
    document_type: str
    document_number: str | None = None
    document_date: str | None = None


def fingerprint(*parts) -> str:
    """What makes a retry identical: the same serial and the same content."""
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


def _stamp_by_serial(serial):
    """The stamp row (a read-only Row with the columns of ``stamps``) or None."""
    return _run(_FIND, p_serial=serial).first()


def check_wapu_active(wapu_id, day=None):
    """A suspended WAPU, or one without a contract in force on ``day`` (WIB; default today), may
    not reserve. The refusal says why: ``reason`` is ``suspended``, ``no_contract`` or ``contract_ended``."""
    day = day or today_wib()
    if not _run(_ACTIVE, p_wapu_id=wapu_id, p_today=day).scalar():
        reason = db.session.get(Wapu, wapu_id).inactive_reason(day)
        raise StampError("wapu_not_active", reason.label if reason else
                         _l("The WAPU is suspended or has no valid contract today; it cannot stamp."),
                         reason=reason.value if reason else "no_contract")


def _available(wapu_id):
    return db.session.execute(
        select(QuotaAccount.available).where(QuotaAccount.wapu_id == wapu_id)
    ).scalar() or 0


def reserve_stamp(wapu_id, token_id, *, data: StampInput, now=None):
    """Reserve one e-Meterai for ``data.serial``. Returns ``(stamp, created)``; an identical retry
    returns the first stamp with ``created`` False.

    Four statements when it succeeds: the stamp's INSERT (nothing when the serial exists), the
    account's UPDATE guarded by the quota and by the WAPU being active with a contract in force
    today, the ledger entry and the summary. A refusal then says why, and the caller's unit of
    work rolls the INSERT back."""
    now = now or utcnow()
    fp = fingerprint(data.serial, data.document_type, data.document_number, data.document_date)
    ttl = timedelta(minutes=current_app.config["RESERVATION_MINUTES"])
    stamp = _run(
        _INSERT_NEW["sqlite" if is_sqlite() else "postgresql"],
        serial=data.serial, wapu_id=wapu_id, state=StampState.RESERVED, document_type=data.document_type,
        document_number=data.document_number, document_date=data.document_date, fingerprint=fp, source="api",
        token_id=token_id, reserved_at=now, expires_at=now + ttl, stamped_at=None, released_at=None,
        release_reason=None, occurred_at=now, created_at=now,
    ).first()
    if stamp is None:
        existing = _stamp_by_serial(data.serial)
        if existing.wapu_id == wapu_id and existing.fingerprint == fp and existing.source == "api":
            return existing, False
        raise StampError("serial_conflict", _l("This serial was already used with other content."))
    today = to_wib(now).date()
    try:
        move_quota(wapu_id, None, kind=EntryKind.RESERVE, quantity=1, key=data.serial, reference=data.serial,
                   changes=RESERVE, minimum=1, now=now, only_if=_ACCOUNT_ACTIVE, only_if_params={"p_today": today})
    except InsufficientQuota:
        check_wapu_active(wapu_id, today)
        raise StampError("insufficient_quota", _l("No quota available."),
                         available=_available(wapu_id)) from None
    record_new(wapu_id, StampState.RESERVED, now)
    return stamp, True


def commit_stamp(wapu_id, serial, *, now=None):
    """Mark a reserved stamp stamped (quota consumed). Returns ``(stamp, outcome)`` where outcome is
    ``committed``, ``already`` (idempotent retry) or ``expired`` (released now: refuse after commit)."""
    now = now or utcnow()
    stamp = _run(_COMMIT, p_serial=serial, p_wapu_id=wapu_id, p_now=now).first()
    if stamp is not None:
        move_quota(wapu_id, None, kind=EntryKind.COMMIT, quantity=1, key=serial, reference=serial, changes=COMMIT,
                   now=now)
        record_moved(wapu_id, (stamp.reserved_at, StampState.RESERVED), (now, StampState.STAMPED))
        return stamp, "committed"
    stamp = _stamp_by_serial(serial)
    if stamp is None or stamp.wapu_id != wapu_id:
        raise StampError("not_found", _l("No stamp with this serial."))
    if stamp.state == StampState.STAMPED:
        return stamp, "already"
    if stamp.state == StampState.RESERVED:  # past its expiry, not yet swept: release it now
        return _release(wapu_id, serial, "expired", now), "expired"
    if stamp.state == StampState.RELEASED:
        raise StampError("reservation_released",
                         _l("The reservation was released; reserve again."), state=stamp.state.value)
    raise StampError("stamp_failed", _l("This stamp was reported as failed."), state=stamp.state.value)


def _release(wapu_id, serial, reason, now, only_expired=False):
    """Release a reservation; returns the released stamp, or None when it was not reserved."""
    stamp = _run(_RELEASE_EXPIRED if only_expired else _RELEASE, p_serial=serial, p_wapu_id=wapu_id, p_now=now,
                 p_reason=reason[:200]).first()
    if stamp is not None:
        move_quota(wapu_id, None, kind=EntryKind.RELEASE, quantity=1, key=serial, reference=f"{serial}: {reason}",
                   changes=RELEASE, now=now)
        record_moved(wapu_id, (stamp.occurred_at, StampState.RESERVED), (stamp.occurred_at, StampState.RELEASED))
    return stamp


def release_stamp(wapu_id, serial, *, reason, now=None):
    """Give a reserved e-Meterai back (the stamp failed). Returns ``(stamp, released_now)``."""
    now = now or utcnow()
    stamp = _release(wapu_id, serial, reason or "released", now)
    if stamp is not None:
        return stamp, True
    stamp = _stamp_by_serial(serial)
    if stamp is None or stamp.wapu_id != wapu_id:
        raise StampError("not_found", _l("No stamp with this serial."))
    if stamp.state == StampState.RELEASED:
        return stamp, False
    if stamp.state == StampState.STAMPED:
        raise StampError("already_stamped", _l("This stamp is already stamped; it cannot be released."))
    raise StampError("stamp_failed", _l("This stamp was reported as failed."))


def expire_reservations(now=None, limit=1000) -> int:
    """Release every reservation past its expiry (the scheduled job). Each in its own transaction."""
    now = now or utcnow()
    with unit_of_work():
        due = db.session.execute(
            select(Stamp.wapu_id, Stamp.serial)
            .where(Stamp.state == StampState.RESERVED, Stamp.expires_at <= now).limit(limit)
        ).all()
    released = 0
    for wapu_id, serial in due:
        with unit_of_work():
            released += _release(wapu_id, serial, "expired", now, only_expired=True) is not None
    return released


# ------------------------------------------------------------------------------------------ batches


@dataclass
class StampEvent:
    """A stamp reported after the fact: ``stamped`` consumes one e-Meterai, ``failed`` nothing."""

    serial: str
    status: str
    stamped_at: datetime
    document_type: str
    document_number: str | None = None
    document_date: str | None = None
    wapu_id: int | None = None

    def fingerprint(self):
        """The same moment written with another offset is the same event."""
        return fingerprint(self.serial, self.status, self.stamped_at.astimezone(timezone.utc).isoformat(),
                           self.document_type, self.document_number, self.document_date)


def ingest_events(wapu_id, token_id, *, events, source="batch", now=None, allow_old=False):
    """Apply a batch of stamp events for one WAPU; returns one result dict per event, in order.

    Results: ``applied`` (new), ``duplicate`` (already applied: retries are safe), ``committed``
    (a reservation made by the API, now stamped), ``serial_conflict``, ``insufficient_quota``, and
    for a new event whose ``stamped_at`` lies outside the WAPU's stamp time window
    (``scm.stamping.window``) ``stamped_at_in_future``, ``stamped_at_before_contract`` or
    ``stamped_at_too_old``, with the ``limit`` crossed and a ``detail``. ``allow_old`` (the
    distributor admin's deliberate import) lifts only the look-back. An event already recorded
    answers as before, whatever its time: a retry stays a ``duplicate``.
    New stamped events are consumed in bulk, in the order given, while quota lasts.
    """
    now = now or utcnow()
    window = stamp_window(wapu_id, now=now, allow_old=allow_old)
    serials = [e.serial for e in events]
    existing = {
        row.serial: row for row in db.session.execute(
            select(Stamp.serial, Stamp.wapu_id, Stamp.state, Stamp.fingerprint, Stamp.source)
            .where(Stamp.serial.in_(serials))
        )
    }
    results = [None] * len(events)
    first_seen = {}  # serial -> (fingerprint, index of its first event in this batch)
    repeats = []  # (index, index of the first event) for an identical event repeated in the batch
    fresh_stamped, fresh_failed = [], []
    for index, event in enumerate(events):
        fp = event.fingerprint()
        previous = existing.get(event.serial)
        if event.serial in first_seen:
            first_fp, first_index = first_seen[event.serial]
            if first_fp == fp:
                repeats.append((index, first_index))
            else:
                results[index] = {"serial": event.serial, "result": "serial_conflict"}
            continue
        first_seen[event.serial] = (fp, index)
        if previous is None:
            refusal = window.refusal(event.stamped_at)
            if refusal is not None:
                results[index] = refusal.result(event.serial)
            else:
                (fresh_stamped if event.status == "stamped" else fresh_failed).append((index, event, fp))
        elif previous.wapu_id != wapu_id:
            results[index] = {"serial": event.serial, "result": "serial_conflict"}
        elif previous.fingerprint == fp or _settled_as(previous, event.status):
            results[index] = {"serial": event.serial, "result": "duplicate"}
        elif previous.state == StampState.RESERVED and event.status == "stamped":
            _, outcome = commit_stamp(wapu_id, event.serial, now=now)
            results[index] = {"serial": event.serial,
                              "result": "committed" if outcome == "committed" else "reservation_released"}
        elif previous.state == StampState.RESERVED and event.status == "failed":
            _release(wapu_id, event.serial, "failed", now)
            results[index] = {"serial": event.serial, "result": "released"}
        else:
            results[index] = {"serial": event.serial, "result": "serial_conflict"}

    if fresh_stamped:
        available = db.session.execute(
            select(QuotaAccount.available).where(QuotaAccount.wapu_id == wapu_id).with_for_update()
        ).scalar() or 0
        granted = fresh_stamped[:available]
        for index, event, _ in fresh_stamped[available:]:
            results[index] = {"serial": event.serial, "result": "insufficient_quota"}
        if granted:
            _consume_bulk(wapu_id, token_id, granted, source, now)
            for index, event, _ in granted:
                results[index] = {"serial": event.serial, "result": "applied"}
    if fresh_failed:
        rows = [_stamp_row(wapu_id, token_id, event, fp, source, StampState.FAILED, now) for _, event, fp in fresh_failed]
        db.session.execute(insert(Stamp), rows)
        record_rows(rows)
        for index, event, _ in fresh_failed:
            results[index] = {"serial": event.serial, "result": "applied"}
    for index, first_index in repeats:  # a repeat shares the fate of its first: refused, or applied once
        first = results[first_index]
        results[index] = dict(first) if first["result"] in REFUSALS else {"serial": events[index].serial,
                                                                          "result": "duplicate"}
    return results


REFUSALS = {"insufficient_quota", "serial_conflict", "reservation_released", *WINDOW_CODES}


def _settled_as(previous, status):
    """A retried event that already settled an API reservation (committed it, or released it)."""
    return previous.source == "api" and (previous.state, status) in {
        (StampState.STAMPED, "stamped"), (StampState.RELEASED, "failed")}


def _stamp_row(wapu_id, token_id, event, fp, source, state, now):
    return {
        "serial": event.serial, "wapu_id": wapu_id, "state": state, "document_type": event.document_type,
        "document_number": event.document_number, "document_date": event.document_date, "fingerprint": fp,
        "source": source, "token_id": token_id, "stamped_at": event.stamped_at, "occurred_at": event.stamped_at,
        "created_at": now,
        "reserved_at": None, "expires_at": None, "released_at": None, "release_reason": None,
    }


def _consume_bulk(wapu_id, token_id, granted, source, now):
    """Consume ``len(granted)`` e-Meterai at once: one guarded UPDATE and their ledger entries, rows inserted in bulk."""
    consume_quota_bulk(wapu_id, [event.serial for _, event, _ in granted], now=now)
    rows = [_stamp_row(wapu_id, token_id, event, fp, source, StampState.STAMPED, now) for _, event, fp in granted]
    db.session.execute(insert(Stamp), rows)
    record_rows(rows)
