"""Property-based stateful test of the quota ledger: issue, adjust, reserve, commit, release, the
expiry job and batches of reported stamps, in random sequences, on the test's real database.

A ``RuleBasedStateMachine`` applies random operations (with duplicate and conflicting retries) to
two WAPUs and keeps a simple model: the balances of each account and the life of each serial.
After every step it reads the database and checks that the books balance, that nothing is
negative, that each serial moved quota at most once, that ``verify_ledger()`` (the check behind
``flask quota verify``) finds nothing, that the usage summary equals the stamps (``verify_summary()``,
checked by the same command), that every entry's ``available_after`` is the running
balance, and that the database equals the model (so a refusal changed nothing).

The database is not reset between Hypothesis examples. Each example therefore first brings the
two accounts to the same state (earlier reservations released, nothing available), takes a
snapshot, uses its own prefix for serials and idempotency keys and its own stretch of time, and
checks the database against the snapshot plus the model.
"""

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from scm.auth.models import User
from scm.core.database import run_once_more_on_conflict, unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.extensions import db
from scm.quota.models import EntryKind, QuotaAccount, QuotaEntry
from scm.quota.services import InsufficientQuota, account_for, adjust_quota, issue_quota, verify_ledger
from scm.stamping.models import Stamp, StampState
from scm.stamping.services import (
    StampError,
    StampEvent,
    StampInput,
    commit_stamp,
    expire_reservations,
    fingerprint,
    ingest_events,
    release_stamp,
    reserve_stamp,
)
from scm.stamping.summary import verify_summary
from scm.stamping.usage_import import UsageFileError, read_usage_file

SERIALS = 12  # a small pool, so that retries and conflicts happen often
ISSUE_KEYS = 4
ADJUST_KEYS = 3
COLUMNS = ("available", "reserved", "consumed", "issued", "adjusted")
NOT_NEGATIVE = ("available", "reserved", "consumed", "issued")
# How each kind of entry moves ``available`` (quantity is signed only for adjust).
AVAILABLE_EFFECT = {
    EntryKind.ISSUE: 1, EntryKind.ADJUST: 1, EntryKind.RESERVE: -1,
    EntryKind.COMMIT: 0, EntryKind.RELEASE: 1, EntryKind.CONSUME: -1,
}
STAMP_KINDS = (EntryKind.RESERVE, EntryKind.COMMIT, EntryKind.RELEASE, EntryKind.CONSUME)
# A batch event for an API reservation that a batch already committed or released: a retry.
SETTLED = {(StampState.STAMPED, "stamped"), (StampState.RELEASED, "failed")}
# Batch results for an event that was not applied.
REFUSED = {"serial_conflict", "insufficient_quota", "reservation_released"}

_examples = itertools.count(1)
_ORIGIN = utcnow().replace(microsecond=0)

wapu_index = st.integers(0, 1)
serial_index = st.integers(0, SERIALS - 1)
doc_index = st.integers(0, 1)
# Minutes that pass before a stamping call (the reservation lifetime is 15 minutes).
wait = st.sampled_from([0, 0, 0, 1, 5, 15, 16])
batch_event = st.tuples(serial_index, st.sampled_from(["stamped", "failed"]), st.integers(0, 2), doc_index)


@dataclass
class SerialModel:
    wapu_id: int
    state: StampState
    source: str  # "api" or "batch"
    fp: str
    expires_at: datetime | None = None

    def entry_kinds(self):
        """The ledger entries this serial must have: each exactly once, no others."""
        if self.source != "api":
            return {EntryKind.CONSUME} if self.state == StampState.STAMPED else set()
        return {EntryKind.RESERVE} | {StampState.STAMPED: {EntryKind.COMMIT},
                                      StampState.RELEASED: {EntryKind.RELEASE}}.get(self.state, set())


def ledger_differences():
    """``verify_ledger()`` as {(wapu, column): account - ledger}: unchanged by any correct movement."""
    return {(m.wapu_id, m.column): m.account - m.ledger for m in verify_ledger()}


def check_whole_history(wapu_ids):
    """Replaying every entry of each account gives each ``available_after`` and the final balance."""
    for wapu_id in wapu_ids:
        running = 0
        for entry in db.session.execute(
            select(QuotaEntry).where(QuotaEntry.wapu_id == wapu_id).order_by(QuotaEntry.id)
        ).scalars():
            running += AVAILABLE_EFFECT[entry.kind] * entry.quantity
            assert entry.available_after == running, (wapu_id, entry.id, entry.kind, entry.available_after, running)
        account = db.session.execute(select(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id)).scalar_one()
        assert account.available == running, wapu_id


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, app, wapu_ids, admin_email):
        super().__init__()
        self.app = app
        self.wapu_ids = wapu_ids
        self.admin_email = admin_email
        self.doc_types = app.config["DOCUMENT_TYPES"][:2]
        self.ttl = timedelta(minutes=app.config["RESERVATION_MINUTES"])
        self.last = None

    # ------------------------------------------------------------------------------ set-up

    @initialize()
    def start(self):
        number = next(_examples)
        self.prefix = f"p{number}x"
        # Each example's clock starts a day after the last one's, so that the reservations earlier
        # examples left behind are all past their expiry, whenever (and however often) this runs.
        self.clock = _ORIGIN + timedelta(days=number)
        self.base = self.clock
        self.serials = {}  # serial -> SerialModel, for this example's serials
        self.issue_keys = {}  # key -> (wapu_id, quantity)
        self.adjust_keys = {}  # key -> (wapu_id, delta)
        self.expected_entries = Counter()  # (kind, key, wapu_id, quantity) of the entries to be written
        self.written_entries = Counter()  # the same, as read from the database
        self.new_stamps = 0
        with self.app.app_context():
            # Every example starts alike (what is generated must not depend on earlier examples):
            # their reservations, all past their expiry, released; then nothing available.
            expire_reservations(now=self.clock)
            assert db.session.execute(
                select(func.count()).select_from(Stamp).where(Stamp.state == StampState.RESERVED)
            ).scalar() == 0
            with unit_of_work():
                admin = db.session.execute(select(User).where(User.email == self.admin_email)).scalar_one()
                for wapu_id in self.wapu_ids:
                    if available := account_for(wapu_id).available:
                        adjust_quota(wapu_id, admin, delta=-available, reason="a new test example")
            self.balances = {w: {c: getattr(a, c) for c in COLUMNS}
                             for w, a in ((w, account_for(w)) for w in self.wapu_ids)}
            self.sound = {w: self._sound(b) for w, b in self.balances.items()}
            self.stamps_before = db.session.execute(select(func.count()).select_from(Stamp)).scalar()
            self.differences = ledger_differences()  # {} unless an earlier example broke the books
            # available_after: new entries must continue from the balance found.
            self.last_entry_id = db.session.execute(select(func.coalesce(func.max(QuotaEntry.id), 0))).scalar()
            self.running = {w: self.balances[w]["available"] for w in self.wapu_ids}
        for w in self.wapu_ids:  # some quota to start with, so that stamping is not always refused
            self._issue(w, 10, f"{self.prefix}kstart-{w}")

    # ------------------------------------------------------------------------------ helpers

    @staticmethod
    def _sound(balance):
        return (balance["available"] + balance["reserved"] + balance["consumed"]
                == balance["issued"] + balance["adjusted"]
                and all(balance[c] >= 0 for c in NOT_NEGATIVE))

    def serial(self, index):
        return f"{self.prefix}s{index:02d}"

    def account(self, wapu_id):
        return self.balances[wapu_id]

    def move(self, wapu_id, kind, key, quantity, **changes):
        """Quota moves: one ledger entry, and the account's columns change by ``changes``."""
        for column, delta in changes.items():
            self.balances[wapu_id][column] += delta
        self.expected_entries[kind, key, wapu_id, quantity] += 1

    def call(self, name, operation, stamping=False):
        """Run one operation in its unit of work: ("ok", result) or ("refused", error code)."""
        with self.app.app_context():
            try:
                if stamping:
                    outcome = "ok", run_once_more_on_conflict(operation)
                else:
                    with unit_of_work():
                        outcome = "ok", operation()
            except (StampError, InsufficientQuota, ServiceError) as refusal:
                outcome = "refused", refusal.code
        note(f"{name}: {outcome[1] if outcome[0] == 'refused' else 'ok'}")
        return outcome

    def do(self, action, minutes=0):
        """Let ``minutes`` pass, run ``action`` and remember it for ``retry_last``."""
        self.clock += timedelta(minutes=minutes)
        self.last = action
        action()

    # ------------------------------------------------------------------------------ issue / adjust

    @rule(w=wapu_index, quantity=st.sampled_from([0, -3, *range(1, 51)]), key=st.integers(0, ISSUE_KEYS - 1))
    def issue(self, w, quantity, key):
        self.do(lambda: self._issue(self.wapu_ids[w], quantity, f"{self.prefix}k{key}"))

    def _issue(self, wapu_id, quantity, key):
        def operation():
            entry = issue_quota(wapu_id, quantity=quantity, key=key, reference=f"PO {key}")
            return entry.wapu_id, entry.quantity, entry.kind

        outcome = self.call("issue", operation)
        if quantity <= 0:
            assert outcome == ("refused", "invalid")
        elif key in self.issue_keys:  # a retry (even for another WAPU or quantity) returns the first entry
            first_wapu, first_quantity = self.issue_keys[key]
            assert outcome == ("ok", (first_wapu, first_quantity, EntryKind.ISSUE))
        else:
            assert outcome == ("ok", (wapu_id, quantity, EntryKind.ISSUE))
            self.issue_keys[key] = (wapu_id, quantity)
            self.move(wapu_id, EntryKind.ISSUE, key, quantity, available=quantity, issued=quantity)

    @rule(w=wapu_index, delta=st.integers(-60, 60), key=st.one_of(st.none(), st.integers(0, ADJUST_KEYS - 1)),
          as_admin=st.sampled_from([True] * 5 + [False]), reason=st.sampled_from(["koreksi"] * 5 + ["  "]))
    def adjust(self, w, delta, key, as_admin, reason):
        key = None if key is None else f"{self.prefix}a{key}"
        self.do(lambda: self._adjust(self.wapu_ids[w], delta, key, as_admin, reason))

    def _adjust(self, wapu_id, delta, key, as_admin, reason):
        def operation():
            actor = None
            if as_admin:
                actor = db.session.execute(select(User).where(User.email == self.admin_email)).scalar_one()
            entry = adjust_quota(wapu_id, actor, delta=delta, reason=reason, key=key)
            return entry.wapu_id, entry.quantity, entry.kind

        outcome = self.call("adjust", operation)
        if not as_admin:
            assert outcome == ("refused", "forbidden")
        elif not reason.strip() or delta == 0:
            assert outcome == ("refused", "invalid")
        elif key is not None and key in self.adjust_keys:
            first_wapu, first_delta = self.adjust_keys[key]
            assert outcome == ("ok", (first_wapu, first_delta, EntryKind.ADJUST))
        elif self.account(wapu_id)["available"] + delta < 0:
            assert outcome == ("refused", "insufficient_quota")
        else:
            assert outcome == ("ok", (wapu_id, delta, EntryKind.ADJUST))
            if key is not None:
                self.adjust_keys[key] = (wapu_id, delta)
            self.move(wapu_id, EntryKind.ADJUST, key, delta, available=delta, adjusted=delta)

    # ------------------------------------------------------------------------------ stamping

    @rule(w=wapu_index, s=serial_index, d=doc_index, minutes=wait)
    def reserve(self, w, s, d, minutes):
        self.do(lambda: self._reserve(self.wapu_ids[w], self.serial(s), self.doc_types[d], self.clock), minutes)

    def _reserve(self, wapu_id, serial, document_type, now):
        def operation():
            stamp, created = reserve_stamp(wapu_id, None, data=StampInput(serial, document_type), now=now)
            return stamp.serial, stamp.wapu_id, stamp.state, created

        outcome = self.call("reserve", operation, stamping=True)
        fp = fingerprint(serial, document_type, None, None)
        model = self.serials.get(serial)
        if model is not None:
            if model.wapu_id == wapu_id and model.fp == fp and model.source == "api":
                assert outcome == ("ok", (serial, wapu_id, model.state, False))
            else:
                assert outcome == ("refused", "serial_conflict")
        elif self.account(wapu_id)["available"] < 1:
            assert outcome == ("refused", "insufficient_quota")
        else:
            assert outcome == ("ok", (serial, wapu_id, StampState.RESERVED, True))
            self.serials[serial] = SerialModel(wapu_id, StampState.RESERVED, "api", fp, now + self.ttl)
            self.new_stamps += 1
            self.move(wapu_id, EntryKind.RESERVE, serial, 1, available=-1, reserved=1)

    def _model_release(self, serial):
        model = self.serials[serial]
        model.state = StampState.RELEASED
        self.move(model.wapu_id, EntryKind.RELEASE, serial, 1, reserved=-1, available=1)

    def _model_commit(self, serial, now):
        """A reserved serial is committed: stamped while the reservation holds, else released."""
        model = self.serials[serial]
        if model.expires_at > now:
            model.state = StampState.STAMPED
            self.move(model.wapu_id, EntryKind.COMMIT, serial, 1, reserved=-1, consumed=1)
            return "committed"
        self._model_release(serial)
        return "expired"

    @rule(w=wapu_index, s=serial_index, minutes=wait)
    def commit(self, w, s, minutes):
        self.do(lambda: self._commit(self.wapu_ids[w], self.serial(s), self.clock), minutes)

    def _commit(self, wapu_id, serial, now):
        def operation():
            stamp, result = commit_stamp(wapu_id, serial, now=now)
            return stamp.state, result

        outcome = self.call("commit", operation, stamping=True)
        model = self.serials.get(serial)
        if model is None or model.wapu_id != wapu_id:
            assert outcome == ("refused", "not_found")
        elif model.state == StampState.RESERVED:
            result = self._model_commit(serial, now)
            note(f"commit: {result}")
            assert outcome == ("ok", (model.state, result))
        elif model.state == StampState.STAMPED:
            note("commit: already")
            assert outcome == ("ok", (StampState.STAMPED, "already"))
        elif model.state == StampState.RELEASED:
            assert outcome == ("refused", "reservation_released")
        else:
            assert outcome == ("refused", "stamp_failed")

    @rule(w=wapu_index, s=serial_index, reason=st.sampled_from(["gagal", None]), minutes=wait)
    def release(self, w, s, reason, minutes):
        self.do(lambda: self._release(self.wapu_ids[w], self.serial(s), reason, self.clock), minutes)

    @precondition(lambda self: self.serials)
    @rule(data=st.data(), own=st.sampled_from([True, True, True, False]), action=st.sampled_from(["commit", "release"]),
          reserved_only=st.booleans(), minutes=wait)
    def act_on_known_serial(self, data, own, action, reserved_only, minutes):
        """Commit or release a serial that exists (mostly by its own WAPU, often a reservation)."""
        reserved = [s for s, m in self.serials.items() if m.state == StampState.RESERVED]
        serial = data.draw(st.sampled_from(sorted(reserved if reserved_only and reserved else self.serials)),
                           label="serial")
        owner = self.serials[serial].wapu_id
        wapu_id = owner if own else next(w for w in self.wapu_ids if w != owner)
        if action == "commit":
            self.do(lambda: self._commit(wapu_id, serial, self.clock), minutes)
        else:
            self.do(lambda: self._release(wapu_id, serial, "gagal", self.clock), minutes)

    def _release(self, wapu_id, serial, reason, now):
        def operation():
            stamp, released = release_stamp(wapu_id, serial, reason=reason, now=now)
            return stamp.state, released

        outcome = self.call("release", operation, stamping=True)
        model = self.serials.get(serial)
        if model is None or model.wapu_id != wapu_id:
            assert outcome == ("refused", "not_found")
        elif model.state == StampState.RESERVED:  # released even when past its expiry
            self._model_release(serial)
            assert outcome == ("ok", (StampState.RELEASED, True))
        elif model.state == StampState.RELEASED:
            assert outcome == ("ok", (StampState.RELEASED, False))
        elif model.state == StampState.STAMPED:
            assert outcome == ("refused", "already_stamped")
        else:
            assert outcome == ("refused", "stamp_failed")

    @rule(offset=st.sampled_from([-30, 0, 14, 15, 16, 24 * 60]))
    def expire(self, offset):
        """The expiry job, run at some time around now (a day later: every reservation is due)."""
        self.do(lambda: self._expire(self.clock + timedelta(minutes=offset)))

    @precondition(lambda self: any(m.state == StampState.RESERVED for m in self.serials.values()))
    @rule(data=st.data(), seconds=st.sampled_from([-1, 0, 1]))
    def expire_around_a_reservation(self, data, seconds):
        """The job runs just before, at, or just after a reservation's expiry."""
        reserved = sorted(s for s, m in self.serials.items() if m.state == StampState.RESERVED)
        expires_at = self.serials[data.draw(st.sampled_from(reserved), label="serial")].expires_at
        self.do(lambda: self._expire(expires_at + timedelta(seconds=seconds)))

    def _expire(self, now):
        with self.app.app_context():
            released = expire_reservations(now=now)  # one unit of work per reservation, its own
        due = [s for s, m in self.serials.items() if m.state == StampState.RESERVED and m.expires_at <= now]
        for serial in due:
            self._model_release(serial)
        note(f"expire: released {min(len(due), 2)}+")
        assert released == len(due)

    @rule(minutes=st.sampled_from([1, 2, 5, 15, 16]))
    def tick(self, minutes):
        self.clock += timedelta(minutes=minutes)

    @rule(w=wapu_index, events=st.lists(batch_event, min_size=1, max_size=5), minutes=wait)
    def batch(self, w, events, minutes):
        events = [
            StampEvent(self.serial(s), status, self.base + timedelta(minutes=minute), self.doc_types[d])
            for s, status, minute, d in events
        ]
        self.do(lambda: self._batch(self.wapu_ids[w], events, self.clock), minutes)

    def _batch(self, wapu_id, events, now):
        outcome = self.call("batch", lambda: ingest_events(wapu_id, None, events=events, now=now), stamping=True)
        before = {serial: (m.wapu_id, m.state, m.fp, m.source) for serial, m in self.serials.items()}
        expected, first_seen, repeats, fresh_stamped, fresh_failed = [None] * len(events), {}, [], [], []
        for index, event in enumerate(events):
            fp = event.fingerprint()
            if event.serial in first_seen:  # the same serial earlier in this batch
                first_fp, first_index = first_seen[event.serial]
                if first_fp == fp:
                    repeats.append((index, first_index))
                else:
                    expected[index] = "serial_conflict"
                continue
            first_seen[event.serial] = (fp, index)
            previous = before.get(event.serial)
            if previous is None:
                (fresh_stamped if event.status == "stamped" else fresh_failed).append((index, event, fp))
                continue
            owner, state, previous_fp, source = previous
            if owner != wapu_id:
                result = "serial_conflict"
            elif previous_fp == fp:
                result = "duplicate"
            elif source == "api" and (state, event.status) in SETTLED:  # a retry of a batch that settled it
                result = "duplicate"
            elif state == StampState.RESERVED and event.status == "stamped":
                committed = self._model_commit(event.serial, now) == "committed"
                result = "committed" if committed else "reservation_released"
            elif state == StampState.RESERVED:
                self._model_release(event.serial)
                result = "released"
            else:  # e.g. a reported stamp reported again with other content
                result = "serial_conflict"
            expected[index] = result
        granted = max(self.account(wapu_id)["available"], 0)  # stamped events, in order, while quota lasts
        for number, (index, event, fp) in enumerate(fresh_stamped):
            if number < granted:
                expected[index] = "applied"
                self.serials[event.serial] = SerialModel(wapu_id, StampState.STAMPED, "batch", fp)
                self.new_stamps += 1
                self.move(wapu_id, EntryKind.CONSUME, event.serial, 1, available=-1, consumed=1)
            else:
                expected[index] = "insufficient_quota"
        for index, event, fp in fresh_failed:
            expected[index] = "applied"
            self.serials[event.serial] = SerialModel(wapu_id, StampState.FAILED, "batch", fp)
            self.new_stamps += 1
        for index, first_index in repeats:  # an identical repeat shares the fate of the first event
            first = expected[first_index]
            if first == "insufficient_quota" or first in REFUSED:
                expected[index] = first
            else:
                expected[index] = "duplicate"
        assert outcome[0] == "ok", outcome
        results = outcome[1]
        assert [r["serial"] for r in results] == [e.serial for e in events], results
        for result, allowed in zip(results, expected, strict=True):
            note(f"batch: {result['result']}")
            assert result["result"] in ({allowed} if isinstance(allowed, str) else allowed), (results, expected)

    # ------------------------------------------------------------------------------ retries

    @precondition(lambda self: self.last is not None)
    @rule()
    def retry_last(self):
        """The client did not hear the answer and sends the very same request again."""
        self.last()

    # ------------------------------------------------------------------------------ invariants

    @invariant()
    def database_matches_model(self):
        names = [self.serial(i) for i in range(SERIALS)]
        with self.app.app_context():
            accounts = {row.wapu_id: row for row in db.session.execute(
                select(QuotaAccount.__table__).where(QuotaAccount.wapu_id.in_(self.wapu_ids)))}
            differences = ledger_differences()
            entries = db.session.execute(
                select(QuotaEntry.id, QuotaEntry.wapu_id, QuotaEntry.kind, QuotaEntry.quantity,
                       QuotaEntry.idempotency_key, QuotaEntry.available_after)
                .where(QuotaEntry.id > self.last_entry_id).order_by(QuotaEntry.id)
            ).all()
            stamps = db.session.execute(
                select(Stamp.serial, Stamp.wapu_id, Stamp.state, Stamp.source).where(Stamp.serial.in_(names))
            ).all()
            stamp_count = db.session.execute(select(func.count()).select_from(Stamp)).scalar()
            summary_differences = verify_summary()

        # The books balance, nothing is negative, and the balances are the model's.
        for wapu_id in self.wapu_ids:
            actual = {c: getattr(accounts[wapu_id], c) if wapu_id in accounts else 0 for c in COLUMNS}
            if self.sound[wapu_id]:  # (else an earlier example already failed on it)
                assert actual["available"] + actual["reserved"] + actual["consumed"] == (
                    actual["issued"] + actual["adjusted"]), (wapu_id, actual)
                assert all(actual[c] >= 0 for c in NOT_NEGATIVE), (wapu_id, actual)
                assert actual["issued"] + actual["adjusted"] >= 0, (wapu_id, actual)
            assert actual == self.balances[wapu_id], (wapu_id, actual, self.balances[wapu_id])
        # What `flask quota verify` checks: [] on sound books (then self.differences is {}).
        assert differences == self.differences, differences

        # Every entry written is one the model expects (so a refusal, a retry or a duplicate wrote
        # none), and its available_after is the running available balance of its account.
        for entry in entries:
            self.running[entry.wapu_id] += AVAILABLE_EFFECT[entry.kind] * entry.quantity
            assert entry.available_after == self.running[entry.wapu_id], (entry, self.running)
            key = entry.idempotency_key if entry.idempotency_key.startswith(self.prefix) else None  # adjust: uuid
            self.written_entries[entry.kind, key, entry.wapu_id, entry.quantity] += 1
            self.last_entry_id = entry.id
        assert self.written_entries == self.expected_entries

        # Each serial applied at most once: one RESERVE, one COMMIT or CONSUME, one RELEASE at most,
        # as its state says; one stamp row at most, in the model's state.
        per_serial = Counter(
            (key, kind) for (kind, key, _, _), n in self.written_entries.items() if kind in STAMP_KINDS
            for _ in range(n)
        )
        assert all(n == 1 for n in per_serial.values()), per_serial
        assert set(per_serial) == {(s, kind) for s, m in self.serials.items() for kind in m.entry_kinds()}
        assert len({serial for serial, *_ in stamps}) == len(stamps)
        assert sorted(tuple(row) for row in stamps) == sorted(
            (serial, m.wapu_id, m.state, m.source) for serial, m in self.serials.items()
        )
        assert stamp_count == self.stamps_before + self.new_stamps
        # The usage summary (per WAPU, WIB day and state) equals a GROUP BY of the stamps.
        assert summary_differences == [], summary_differences


@pytest.mark.timeout(900)  # a failure is shrunk for up to 5 minutes (Hypothesis's limit)
def test_ledger_stays_balanced_under_random_operations(app, factory):
    wapu_ids = [factory.wapu(seed)["id"] for seed in (811, 812)]
    admin_email = factory.user("DIST_ADMIN")
    run_state_machine_as_test(
        lambda: LedgerMachine(app, wapu_ids, admin_email),
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            database=None,  # the database is not reset between runs: replaying stored examples is moot
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    with app.app_context():
        assert verify_ledger() == []
        assert verify_summary() == []
        check_whole_history(wapu_ids)


# --------------------------------------------------------------------------- answers the machine found wrong once

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def _batch(wapu_id, events, now=T0 + timedelta(hours=2)):
    return [r["result"] for r in run_once_more_on_conflict(lambda: ingest_events(wapu_id, None, events=events, now=now))]


def test_a_reported_stamp_reported_again_with_other_content_is_a_conflict(app, factory):
    wapu_id = factory.wapu(821)["id"]
    kinds = app.config["DOCUMENT_TYPES"]
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu_id, quantity=5, key="po-821", reference="PO 821")
        stamped, failed = StampEvent("OC-1", "stamped", T0, kinds[0]), StampEvent("OC-2", "failed", T0, kinds[0])
        assert _batch(wapu_id, [stamped, failed]) == ["applied", "applied"]
        assert _batch(wapu_id, [stamped, failed]) == ["duplicate", "duplicate"]  # a retry
        other_document = StampEvent("OC-1", "stamped", T0, kinds[1])
        other_time = StampEvent("OC-2", "failed", T0 + timedelta(hours=1), kinds[0])
        # Within one batch the second, different event is a conflict; in a later batch it must be too.
        assert _batch(wapu_id, [StampEvent("OC-3", "stamped", T0, kinds[0]),
                                StampEvent("OC-3", "stamped", T0, kinds[1])]) == ["applied", "serial_conflict"]
        assert _batch(wapu_id, [other_document, other_time]) == ["serial_conflict", "serial_conflict"]


def test_an_identical_repeat_in_a_batch_shares_the_refusal_of_the_first(app, factory):
    mine, theirs = factory.wapu(822)["id"], factory.wapu(823)["id"]
    kind = app.config["DOCUMENT_TYPES"][0]
    with app.app_context():
        with unit_of_work():
            issue_quota(mine, quantity=5, key="po-822", reference="PO 822")
            issue_quota(theirs, quantity=5, key="po-823", reference="PO 823")
        assert _batch(theirs, [StampEvent("RR-1", "stamped", T0, kind)]) == ["applied"]
        repeated = StampEvent("RR-1", "stamped", T0, kind)
        results = {"conflict": _batch(mine, [repeated, repeated])}
        run_once_more_on_conflict(lambda: reserve_stamp(mine, None, data=StampInput("RR-2", kind), now=T0))
        late = StampEvent("RR-2", "stamped", T0, kind)
        results["expired"] = _batch(mine, [late, late], now=T0 + timedelta(hours=1))
        assert results == {"conflict": ["serial_conflict", "serial_conflict"],
                           "expired": ["reservation_released", "reservation_released"]}


# --------------------------------------------------------------------------- the stamp time window (#15, finding 9)

JAKARTA = timezone(timedelta(hours=7))  # WIB: UTC+7 all year since 1964
OFFSETS = [timezone(timedelta(minutes=m)) for m in (0, 420, -300, 840, -720, 345, 390)]
_window_examples = itertools.count(1)


def _expected_window(now, months, future, allow_old):
    """The accepted times, worked out here by hand: ``(earliest, latest, contract start, look-back start)``.
    The factories' contracts start on 1 January 2026; the look-back starts on the first day of the WIB
    month ``months`` before the month of ``now``."""
    local = now.astimezone(JAKARTA)
    year, month = local.year, local.month
    for _ in range(months):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    contract, lookback = datetime(2026, 1, 1, tzinfo=JAKARTA), datetime(year, month, 1, tzinfo=JAKARTA)
    return (contract if allow_old else max(contract, lookback)), now + timedelta(minutes=future), contract, lookback


def _expected_refusal(moment, latest, contract):
    if moment > latest:
        return "stamped_at_in_future"
    return "stamped_at_before_contract" if moment < contract else "stamped_at_too_old"


@pytest.mark.timeout(900)
def test_no_accepted_stamp_falls_outside_the_window(app, factory):
    """Stamp times from 1969 to 2100 (and around every limit, to the microsecond), any offset, any
    ``now``, look-back and future margin, with and without the admin's ``allow_old``: a batch applies
    exactly the events inside the window (and stores them with their time), refuses the others with
    the right code and limit; a usage file is refused on exactly the rows outside it."""
    wapu = factory.wapu(831)
    with app.app_context(), unit_of_work():
        issue_quota(wapu["id"], quantity=1_000_000, key="po-831", reference="PO 831")
    moments = st.datetimes(min_value=datetime(1969, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59),
                           timezones=st.sampled_from(OFFSETS))

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(now=st.datetimes(min_value=datetime(2025, 10, 1), max_value=datetime(2027, 12, 31),
                            timezones=st.just(timezone.utc)),
           months=st.integers(0, 14), future=st.integers(0, 90), allow_old=st.booleans(), data=st.data())
    def check(now, months, future, allow_old, data):
        app.config.update(STAMP_LOOKBACK_MONTHS=months, STAMP_MAX_FUTURE_MINUTES=future)
        earliest, latest, contract, lookback = _expected_window(now, months, future, allow_old)
        edges = [limit + timedelta(microseconds=d) for limit in (earliest, latest, contract, lookback)
                 for d in (-1, 0, 1)]
        near = st.tuples(st.sampled_from(edges), st.sampled_from(OFFSETS)).map(lambda p: p[0].astimezone(p[1]))
        drawn = data.draw(st.lists(st.tuples(st.one_of(moments, near), st.sampled_from(["stamped", "failed"])),
                                   min_size=1, max_size=12), label="events")
        times = [t for t, _ in drawn]
        inside = [earliest <= t <= latest for t in times]
        prefix = f"w{next(_window_examples)}x"
        events = [StampEvent(f"{prefix}{i}", status, t, "cek") for i, (t, status) in enumerate(drawn)]
        with app.app_context():
            with unit_of_work():
                results = ingest_events(wapu["id"], None, events=events, now=now, allow_old=allow_old)
            for moment, ok, result in zip(times, inside, results, strict=True):
                if ok:
                    assert result["result"] == "applied", (moment, result)
                else:
                    assert result["result"] == _expected_refusal(moment, latest, contract), (moment, result)
                    assert datetime.fromisoformat(result["limit"]) in (latest, contract, lookback), result
            stored = db.session.execute(
                select(Stamp.serial, Stamp.stamped_at).where(Stamp.serial.startswith(prefix))).all()
            assert {serial for serial, _ in stored} == {e.serial for e, ok in zip(events, inside, strict=True) if ok}
            assert all(earliest <= moment <= latest for _, moment in stored), stored

            rows = "\n".join(f"{prefix}f{i},{wapu['code']},{t.isoformat()},cek,{status}"
                             for i, (t, status) in enumerate(drawn))
            try:
                usage = read_usage_file(f"serial,wapu_code,stamped_at,document_type,status\n{rows}\n".encode(),
                                        now=now, allow_old=allow_old)
            except UsageFileError as refused:
                assert {e.row for e in refused.errors} == {i + 2 for i, ok in enumerate(inside) if not ok}
                assert {e.column for e in refused.errors} == {"stamped_at"}
            else:
                assert all(inside)
                assert usage.old_rows == sum(t < lookback for t in times)
        note(f"window: {sum(inside)} of {len(times)} inside")

    check()
