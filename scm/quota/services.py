"""The quota ledger: issue, adjust (and later reserve / commit / release), balances, verify.

Every movement writes its entry and its account change in one transaction. Overdraw is
refused by one conditional UPDATE (``... WHERE available >= n``), never by read-then-write, and
the database's unique (kind, idempotency_key) is the final word on duplicates.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, time

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from scm.auth.models import Role
from scm.core.database import utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import WIB
from scm.core.services import record_audit, register_audit_action
from scm.extensions import db
from scm.quota.models import EntryKind, QuotaAccount, QuotaEntry
from scm.registration.models import Wapu

register_audit_action("quota.issue", _l("Quota issued"), _l("+%(quantity)s to %(wapu)s (%(reference)s)"))
register_audit_action("quota.adjust", _l("Quota adjusted"), _l("%(delta)s for %(wapu)s"), delta="signed")


class InsufficientQuota(ServiceError):
    code = "insufficient_quota"


def ensure_account(wapu_id: int) -> QuotaAccount:
    """The WAPU's quota account, created on first use (safe when two transactions race)."""
    account = db.session.execute(select(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id)).scalar_one_or_none()
    if account is not None:
        return account
    try:
        with db.session.begin_nested():
            account = QuotaAccount(wapu_id=wapu_id)
            db.session.add(account)
    except IntegrityError:
        account = db.session.execute(select(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id)).scalar_one()
    return account


def find_entry(kind: EntryKind, key: str):
    return db.session.execute(
        select(QuotaEntry).where(QuotaEntry.kind == kind, QuotaEntry.idempotency_key == key)
    ).scalar_one_or_none()


_ACCOUNTS = QuotaAccount.__table__
_ENTRIES = QuotaEntry.__table__
_INSERT_ENTRY = insert(_ENTRIES)
_MOVES = {}


def _move_statement(columns, guarded, only_if=None):
    """The account UPDATE for a set of columns, built once and reused (the hot path of stamping):
    ``SET col = col + :d_col ... WHERE wapu_id = :p_wapu [AND available >= :p_minimum] [AND only_if]
    RETURNING``."""
    key = (columns, guarded, id(only_if))  # a clause compared with == would build SQL, not answer
    if key not in _MOVES:
        stmt = (
            update(_ACCOUNTS)
            .where(_ACCOUNTS.c.wapu_id == bindparam("p_wapu"))
            .values({**{c: _ACCOUNTS.c[c] + bindparam(f"d_{c}") for c in columns}, "updated_at": bindparam("p_now")})
            .returning(_ACCOUNTS.c.id, _ACCOUNTS.c.available)
        )
        if guarded:
            stmt = stmt.where(_ACCOUNTS.c.available >= bindparam("p_minimum"))
        if only_if is not None:
            stmt = stmt.where(only_if)
        _MOVES[key] = stmt
    return _MOVES[key]


def move_quota(wapu_id, actor_id, *, kind, quantity, key, reference, changes, minimum=None, now=None,
               only_if=None, only_if_params=None) -> int:
    """The one way quota moves: a conditional UPDATE of the account and its ledger entry.

    ``changes`` maps account columns to deltas; ``minimum`` refuses the move unless ``available``
    is at least that much (raising ``InsufficientQuota``, nothing changed). ``only_if`` is one more
    condition of the same UPDATE (a clause built once, with ``only_if_params`` for its bind
    parameters): unmet, the move is refused the same way, and the caller says why. The database's unique
    (kind, key) raises IntegrityError for a duplicate: the caller's transaction then rolls back
    whole. Returns the available balance after the move.
    """
    now = now or utcnow()
    columns = tuple(sorted(changes))
    params = {"p_wapu": wapu_id, "p_now": now, **{f"d_{c}": changes[c] for c in columns}}
    if minimum is not None:
        params["p_minimum"] = minimum
    params.update(only_if_params or {})
    connection = db.session.connection()
    row = connection.execute(_move_statement(columns, minimum is not None, only_if), params).first()
    if row is None:
        raise InsufficientQuota(_l("Not enough quota available."))
    connection.execute(_INSERT_ENTRY, {
        "account_id": row.id, "wapu_id": wapu_id, "kind": kind, "quantity": quantity, "idempotency_key": key,
        "reference": reference[:200], "actor_id": actor_id, "available_after": row.available, "created_at": now,
    })
    return row.available


def consume_quota_bulk(wapu_id, keys, *, now=None) -> None:
    """``move_quota``'s sibling for stamps reported in bulk: ``len(keys)`` e-Meterai go from available
    to consumed in one guarded UPDATE, with one ``consume`` entry per key (a stamp serial).

    Refuses with ``InsufficientQuota`` (nothing changed) unless all of them are available; a key
    already consumed raises IntegrityError through the unique (kind, key), as ``move_quota`` does.
    """
    now = now or utcnow()
    n = len(keys)
    row = db.session.execute(
        update(QuotaAccount)
        .where(QuotaAccount.wapu_id == wapu_id, QuotaAccount.available >= n)
        .values(available=QuotaAccount.available - n, consumed=QuotaAccount.consumed + n, updated_at=now)
        .returning(QuotaAccount.id, QuotaAccount.available)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        raise InsufficientQuota(_l("Not enough quota available."))
    after = row.available + n
    entries = []
    for key in keys:
        after -= 1
        entries.append({"account_id": row.id, "wapu_id": wapu_id, "kind": EntryKind.CONSUME, "quantity": 1,
                        "idempotency_key": key, "reference": key, "actor_id": None, "available_after": after,
                        "created_at": now})
    db.session.execute(_INSERT_ENTRY, entries)


def _move(wapu_id, kind, quantity, key, reference, actor, changes, minimum=None, now=None):
    """``move_quota`` once per (kind, key): a retry returns the first entry. Returns (entry, created)."""
    existing = find_entry(kind, key)
    if existing is not None:
        return existing, False
    ensure_account(wapu_id)
    try:
        with db.session.begin_nested():
            move_quota(wapu_id, getattr(actor, "id", None), kind=kind, quantity=quantity, key=key,
                       reference=reference, changes=changes, minimum=minimum, now=now)
    except IntegrityError:  # the same movement was written concurrently: it counts once
        return find_entry(kind, key), False
    return find_entry(kind, key), True


def issue_quota(wapu_id: int, actor=None, *, quantity: int, key: str, reference: str, now=None) -> QuotaEntry:
    """Add ``quantity`` to the WAPU's available and issued quota, once per ``key`` (e.g. ``po-42``);
    ``now`` dates the entry (the demo's history), else the clock."""
    if quantity <= 0:
        raise ServiceError(_l("The quantity must be a positive whole number."), field="quantity")
    entry, created = _move(wapu_id, EntryKind.ISSUE, quantity, key, reference, actor,
                           {"available": quantity, "issued": quantity}, now=now)
    if created:
        code = _wapu_code(wapu_id)
        record_audit(actor, "quota.issue", entry, f"+{quantity} to WAPU {wapu_id} ({reference})",
                     object_type="QuotaEntry", object_id=entry.id, ref=code,
                     details={"quantity": quantity, "wapu": code, "reference": reference})
    return entry


def adjust_quota(wapu_id: int, actor, *, delta: int, reason: str, key: str | None = None) -> QuotaEntry:
    """A correction by the distributor admin, with a reason; never takes ``available`` below zero."""
    if actor is None or actor.role != Role.DIST_ADMIN:
        raise ServiceError(_l("Only the distributor administrator may adjust quota."), code="forbidden")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_l("A reason is required."), field="reason")
    if not isinstance(delta, int) or delta == 0:
        raise ServiceError(_l("Enter a whole number other than zero."), field="delta")
    try:
        entry, created = _move(wapu_id, EntryKind.ADJUST, delta, key or f"adjust-{uuid.uuid4()}", reason,
                               actor, {"available": delta, "adjusted": delta}, -delta if delta < 0 else None)
    except InsufficientQuota:
        raise InsufficientQuota(
            _l("The adjustment would take the available quota below zero."), field="delta"
        ) from None
    if created:
        code = _wapu_code(wapu_id)
        record_audit(actor, "quota.adjust", entry, f"{delta:+d} for WAPU {wapu_id}: {reason}",
                     object_type="QuotaEntry", object_id=entry.id, ref=code,
                     details={"delta": delta, "wapu": code, "note": reason})
    return entry


def _wapu_code(wapu_id: int) -> str:
    return db.session.execute(select(Wapu.code).where(Wapu.id == wapu_id)).scalar() or str(wapu_id)


# How each kind of entry moves the *available* quota (what the movements page shows with a sign).
AVAILABLE_SIGN = {EntryKind.ISSUE: 1, EntryKind.ADJUST: 1, EntryKind.RESERVE: -1, EntryKind.RELEASE: 1,
                  EntryKind.COMMIT: 0, EntryKind.CONSUME: -1}


def movements(wapu_id: int):
    """The statement of a WAPU's movements, newest first: one row per entry, except stamps reported
    together (a batch or a usage file, one instant) which are one row. Columns: kind, created_at,
    entries, quantity, available_after, reference, actor_id, last_id."""
    grouped = QuotaEntry.kind == EntryKind.CONSUME
    batch = case((grouped, QuotaEntry.created_at), else_=None)
    single = case((grouped, None), else_=QuotaEntry.id)
    return (
        select(QuotaEntry.kind, func.min(QuotaEntry.created_at).label("created_at"),
               func.count().label("entries"), func.sum(QuotaEntry.quantity).label("quantity"),
               func.min(QuotaEntry.available_after).label("available_after"),
               func.min(QuotaEntry.reference).label("reference"), func.max(QuotaEntry.reference).label("last_reference"),
               func.min(QuotaEntry.actor_id).label("actor_id"), func.max(QuotaEntry.id).label("last_id"))
        .where(QuotaEntry.wapu_id == wapu_id)
        .group_by(QuotaEntry.kind, batch, single)
        .order_by(func.max(QuotaEntry.id).desc())
    )


def account_for(wapu_id: int):
    """Balances of a WAPU (zeros when it has no account yet)."""
    account = db.session.execute(select(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id)).scalar_one_or_none()
    return account or QuotaAccount(wapu_id=wapu_id, available=0, reserved=0, consumed=0, issued=0, adjusted=0)


@dataclass
class Mismatch:
    wapu_id: int
    column: str
    account: int
    ledger: int
    names: tuple[str, str] = ("account", "ledger")  # what ``account`` and ``ledger`` are, for the report

    def __str__(self):
        return f"wapu={self.wapu_id} {self.column}: {self.names[0]}={self.account} {self.names[1]}={self.ledger}"


# Other books that must equal what they summarise, checked with the ledger by ``verify_books``: the
# features above quota add theirs (stamping: the usage summary against the stamps). Each returns
# a list of ``Mismatch``.
BOOK_CHECKS: list = []


def register_book_check(check) -> None:
    """Have ``flask quota verify`` (and the nightly job) run ``check() -> list[Mismatch]`` too."""
    if check not in BOOK_CHECKS:
        BOOK_CHECKS.append(check)


def verify_books() -> list:
    """``verify_ledger`` and every registered check: the differences (empty: everything balances)."""
    mismatches = verify_ledger()
    for check in BOOK_CHECKS:
        mismatches += check()
    return mismatches


def _sum(kind):
    return func.coalesce(func.sum(case((QuotaEntry.kind == kind, QuotaEntry.quantity), else_=0)), 0)


def verify_ledger() -> list:
    """Re-derive every account from its entries; returns the differences (empty: books balance)."""
    derived = {
        row.account_id: row
        for row in db.session.execute(
            select(
                QuotaEntry.account_id,
                _sum(EntryKind.ISSUE).label("issue"),
                _sum(EntryKind.ADJUST).label("adjust"),
                _sum(EntryKind.RESERVE).label("reserve"),
                _sum(EntryKind.COMMIT).label("commit"),
                _sum(EntryKind.RELEASE).label("release"),
                _sum(EntryKind.CONSUME).label("consume"),
            ).group_by(QuotaEntry.account_id)
        )
    }
    mismatches = []
    for account in db.session.execute(select(QuotaAccount).order_by(QuotaAccount.wapu_id)).scalars():
        row = derived.get(account.id)
        issue, adjust, reserve, commit, release, consume = (
            (row.issue, row.adjust, row.reserve, row.commit, row.release, row.consume) if row else (0,) * 6
        )
        expected = {
            "issued": issue,
            "adjusted": adjust,
            "reserved": reserve - commit - release,
            "consumed": commit + consume,
            "available": issue + adjust - reserve + release - consume,
        }
        for column, ledger in expected.items():
            if getattr(account, column) != ledger:
                mismatches.append(Mismatch(account.wapu_id, column, getattr(account, column), ledger))
        if account.available + account.reserved + account.consumed != account.issued + account.adjusted:
            mismatches.append(Mismatch(account.wapu_id, "balance", account.available + account.reserved
                                       + account.consumed, account.issued + account.adjusted))
    return mismatches


def dashboard_panel(user, today) -> dict:
    """The quota part of a dashboard: the WAPU's balances, or the quota issued this (WIB) month."""
    if user.is_wapu:
        return {"account": account_for(user.wapu_id)}
    month_start = datetime.combine(today.replace(day=1), time.min, WIB)
    issued = db.session.execute(
        select(func.coalesce(func.sum(QuotaEntry.quantity), 0))
        .where(QuotaEntry.kind == EntryKind.ISSUE, QuotaEntry.created_at >= month_start)
    ).scalar()
    return {"issued_this_month": issued}
