"""The usage summary (``usage_daily``): equal to the stamps after every kind of movement, on the WIB
day the history and billing mean; ``flask quota verify`` reports a summary that is not; the
history's filters that read it or use the new ranges."""

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from scm.core.database import prefix_range, unit_of_work
from scm.extensions import db
from scm.quota.services import issue_quota
from scm.stamping.models import Stamp, StampState, UsageDay
from scm.stamping.services import (
    StampError,
    StampEvent,
    StampInput,
    commit_stamp,
    expire_reservations,
    ingest_events,
    release_stamp,
    reserve_stamp,
)
from scm.stamping.summary import counts_by_state, rebuild_usage, verify_summary

# 2026-11-19 16:59:59 UTC is 23:59:59 WIB on the 19th; a second later it is the 20th in WIB.
LAST_SECOND_19 = datetime(2026, 11, 19, 16, 59, 59, 999999, tzinfo=timezone.utc)
FIRST_SECOND_20 = datetime(2026, 11, 19, 17, 0, tzinfo=timezone.utc)
D19, D20 = date(2026, 11, 19), date(2026, 11, 20)


def summary_rows(wapu_id):
    """``{(day, state): count}`` of the WAPU's non-zero summary rows."""
    return {(row.day, row.state.value): row.count for row in db.session.execute(
        select(UsageDay).where(UsageDay.wapu_id == wapu_id, UsageDay.count != 0)).scalars()}


def stamps_by_day(wapu_id):
    """The same figure counted from the stamps in Python (WIB day of ``occurred_at``)."""
    from scm.core.formatting import to_wib

    counts = {}
    for occurred_at, state in db.session.execute(
            select(Stamp.occurred_at, Stamp.state).where(Stamp.wapu_id == wapu_id)).all():
        key = (to_wib(occurred_at).date(), state.value)
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.fixture
def wapu_id(app, factory):
    wapu = factory.wapu(861)
    with app.app_context(), unit_of_work():
        issue_quota(wapu["id"], quantity=100, key="po-861", reference="PO 861")
    return wapu["id"]


def test_every_movement_keeps_the_summary_equal_to_the_stamps(app, wapu_id):
    """Reserve, commit (across WIB midnight), release, expiry, commit past expiry, batches of stamped
    and failed events (a duplicate and a conflict among them): after each, summary == stamps."""
    with app.app_context():
        def step(operation):
            with unit_of_work():
                operation()
            assert verify_summary() == []
            assert summary_rows(wapu_id) == stamps_by_day(wapu_id)

        step(lambda: reserve_stamp(wapu_id, None, data=StampInput("S-1", "cek"), now=LAST_SECOND_19))
        assert summary_rows(wapu_id) == {(D19, "reserved"): 1}
        step(lambda: commit_stamp(wapu_id, "S-1", now=FIRST_SECOND_20))  # reserved the 19th, stamped the 20th
        assert summary_rows(wapu_id) == {(D20, "stamped"): 1}
        step(lambda: commit_stamp(wapu_id, "S-1", now=FIRST_SECOND_20 + timedelta(minutes=1)))  # a retry
        step(lambda: reserve_stamp(wapu_id, None, data=StampInput("S-2", "cek"), now=LAST_SECOND_19))
        step(lambda: release_stamp(wapu_id, "S-2", reason="gagal", now=FIRST_SECOND_20))  # on its reservation's day
        assert summary_rows(wapu_id) == {(D20, "stamped"): 1, (D19, "released"): 1}
        step(lambda: release_stamp(wapu_id, "S-2", reason="gagal", now=FIRST_SECOND_20))  # a retry
        step(lambda: reserve_stamp(wapu_id, None, data=StampInput("S-3", "cek"), now=FIRST_SECOND_20))
        assert expire_reservations(now=FIRST_SECOND_20 + timedelta(hours=1)) == 1  # its own transactions
        assert verify_summary() == [] and summary_rows(wapu_id) == stamps_by_day(wapu_id)
        step(lambda: reserve_stamp(wapu_id, None, data=StampInput("S-4", "cek"), now=FIRST_SECOND_20))
        step(lambda: commit_stamp(wapu_id, "S-4", now=FIRST_SECOND_20 + timedelta(hours=1)))  # expired: released
        assert summary_rows(wapu_id) == {(D20, "stamped"): 1, (D19, "released"): 1, (D20, "released"): 2}
        reported = FIRST_SECOND_20 + timedelta(hours=2)
        step(lambda: reserve_stamp(wapu_id, None, data=StampInput("S-5", "cek"), now=reported - timedelta(minutes=1)))
        events = [StampEvent("B-1", "stamped", LAST_SECOND_19, "cek"), StampEvent("B-2", "stamped", FIRST_SECOND_20, "cek"),
                  StampEvent("B-3", "failed", LAST_SECOND_19, "cek"), StampEvent("B-1", "stamped", LAST_SECOND_19, "cek"),
                  StampEvent("S-5", "stamped", FIRST_SECOND_20, "cek"), StampEvent("S-1", "failed", FIRST_SECOND_20, "akta")]
        step(lambda: ingest_events(wapu_id, None, events=events, now=reported))
        step(lambda: ingest_events(wapu_id, None, events=events, now=reported))  # the whole batch again
        assert summary_rows(wapu_id) == {(D19, "stamped"): 1, (D20, "stamped"): 3, (D19, "failed"): 1,
                                         (D19, "released"): 1, (D20, "released"): 2}
        assert counts_by_state(wapu_id=wapu_id) == {StampState.STAMPED: 4, StampState.FAILED: 1,
                                                   StampState.RELEASED: 3}
        assert counts_by_state(wapu_id=wapu_id, first=D20, last=D20) == {StampState.STAMPED: 3,
                                                                         StampState.RELEASED: 2}


def test_a_refused_movement_leaves_the_summary_alone(app, factory):
    wapu = factory.wapu(862)
    with app.app_context():
        with pytest.raises(StampError), unit_of_work():  # no quota: the reservation is refused, nothing written
            reserve_stamp(wapu["id"], None, data=StampInput("R-1", "cek"), now=FIRST_SECOND_20)
        assert summary_rows(wapu["id"]) == {} and verify_summary() == []


def test_rebuild_derives_the_summary_from_the_stamps(app, wapu_id):
    with app.app_context():
        with unit_of_work():
            reserve_stamp(wapu_id, None, data=StampInput("RB-1", "cek"), now=LAST_SECOND_19)
        expected = summary_rows(wapu_id)
        with unit_of_work():
            db.session.execute(update(UsageDay).values(count=UsageDay.count + 5))
        assert verify_summary() != []
        with unit_of_work():
            rebuild_usage()
        assert summary_rows(wapu_id) == expected and verify_summary() == []


@pytest.mark.parametrize("tamper", ["count", "missing", "extra", "moved"])
def test_flask_quota_verify_reports_a_summary_that_differs_from_the_stamps(app, wapu_id, tamper):
    runner = app.test_cli_runner()
    with app.app_context():
        with unit_of_work():
            reserve_stamp(wapu_id, None, data=StampInput("V-1", "cek"), now=LAST_SECOND_19 - timedelta(seconds=9))
            commit_stamp(wapu_id, "V-1", now=LAST_SECOND_19)
    assert runner.invoke(args=["quota", "verify"]).exit_code == 0
    with app.app_context(), unit_of_work():
        row = UsageDay.__table__
        if tamper == "count":
            db.session.execute(update(UsageDay).where(UsageDay.state == StampState.STAMPED).values(count=2))
        elif tamper == "missing":
            db.session.execute(row.delete())
        elif tamper == "extra":
            db.session.execute(row.insert().values(wapu_id=wapu_id, day=D20, state=StampState.FAILED, count=1))
        else:  # the stamp's time changed behind the summary's back
            db.session.execute(update(Stamp).values(occurred_at=FIRST_SECOND_20, stamped_at=FIRST_SECOND_20))
    result = runner.invoke(args=["quota", "verify"])
    assert result.exit_code == 1, result.output
    assert "do NOT balance" in result.output
    expected = {"count": f"wapu={wapu_id} usage 2026-11-19 stamped: summary=2 stamps=1",
                "missing": f"wapu={wapu_id} usage 2026-11-19 stamped: summary=0 stamps=1",
                "extra": f"wapu={wapu_id} usage 2026-11-20 failed: summary=1 stamps=0",
                "moved": f"wapu={wapu_id} usage 2026-11-20 stamped: summary=0 stamps=1"}[tamper]
    assert f"MISMATCH {expected}" in result.output


def test_verify_reports_a_stamped_stamp_shown_at_another_time_than_it_was_stamped(app, wapu_id):
    with app.app_context():
        with unit_of_work():
            ingest_events(wapu_id, None, events=[StampEvent("M-1", "stamped", LAST_SECOND_19, "cek")],
                          now=FIRST_SECOND_20)
        with unit_of_work():
            db.session.execute(update(Stamp).values(stamped_at=FIRST_SECOND_20))
        assert [(m.column, m.account) for m in verify_summary()] == [("stamped_at differs from occurred_at", 1)]


# --------------------------------------------------------------------------- the history's filters


@pytest.mark.parametrize("prefix", ["A", "A-", "A_", "A-B", "Z", "", "%", "_", "\\", "é", "\U0010ffff", "A\U0010ffff"])
def test_a_serial_prefix_is_one_range_and_means_starts_with(app, prefix):
    values = ["A", "A-", "A-B-1", "A_B-1", "AB-1", "A%", "B", "a-1", "Z\U0010ffff", "é1", "ê", "\U0010ffff1",
              "A\U0010ffffX", "B"]
    with app.app_context():
        clauses = prefix_range(Stamp.serial, prefix)
        assert len(clauses) <= 2
        if prefix:
            assert {v for v in values if v >= prefix and (len(clauses) == 1 or v < clauses[1].right.value)} == {
                v for v in values if v.startswith(prefix)}


def test_history_filters_by_wapu_code_and_serial_prefix_with_counts_from_the_summary(app, factory, login_as):
    one, two = factory.wapu(863), factory.wapu(864)
    with app.app_context():
        with unit_of_work():
            issue_quota(one["id"], quantity=10, key="po-863", reference="PO 863")
            issue_quota(two["id"], quantity=10, key="po-864", reference="PO 864")
        with unit_of_work():
            ingest_events(one["id"], None, now=FIRST_SECOND_20, events=[
                StampEvent(serial, "stamped", LAST_SECOND_19, "cek") for serial in ("A_1", "A-1", "AB1", "A-2")])
            ingest_events(two["id"], None, now=FIRST_SECOND_20, events=[
                StampEvent("A-9", "failed", LAST_SECOND_19, "cek")])
    client = login_as("DIST_FIN")

    def shown(query):
        page = client.get(f"/usage?{query}").get_data(as_text=True)
        counts = dict(re.findall(r'data-count="(\w+)">.*?<span class="badge text-bg-light">([\d.]+)</span>', page,
                                 re.S))
        return sorted(re.findall(r'data-serial="([^"]+)"', page)), {k: v for k, v in counts.items() if v != "0"}

    assert shown("") == (["A-1", "A-2", "A-9", "AB1", "A_1"], {"stamped": "4", "failed": "1"})
    assert shown(f"wapu={one['code'].lower()}") == (["A-1", "A-2", "AB1", "A_1"], {"stamped": "4"})
    assert shown(f"wapu={two['code']}") == (["A-9"], {"failed": "1"})
    assert shown("wapu=W9999") == ([], {})
    assert shown("serial=A-") == (["A-1", "A-2", "A-9"], {"stamped": "2", "failed": "1"})
    assert shown("serial=A_") == (["A_1"], {"stamped": "1"})
    assert shown("serial=A%25") == ([], {})
    assert shown(f"serial=A&wapu={two['code']}") == (["A-9"], {"failed": "1"})
    assert shown("date_from=2026-11-20&date_to=2026-11-20") == ([], {})
    assert shown("date_from=2026-11-19&date_to=2026-11-19") == (["A-1", "A-2", "A-9", "AB1", "A_1"],
                                                              {"stamped": "4", "failed": "1"})
    wapu_client = login_as("WAPU_FIN", wapu_id=two["id"])
    page = wapu_client.get(f"/usage?wapu={one['code']}").get_data(as_text=True)  # a WAPU sees only its own
    assert re.findall(r'data-serial="([^"]+)"', page) == ["A-9"]
    with app.app_context():
        assert db.session.execute(select(func.sum(UsageDay.count))).scalar() == 5
