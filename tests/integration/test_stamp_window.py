"""The stamp time window (issue #15, finding 9): a reported ``stamped_at`` more than a few minutes in
the future, before the WAPU's first contract, or older than the look-back is refused, with a machine
code and the limit, in the API's batches and in the usage import alike; the distributor admin may
still import older stamps deliberately, with a reason that the audit log keeps.

The API tests freeze the services' clock (``NOW``), so that the limits are exact and the tests do
not depend on today's date; the web and command-line tests count from the real today.
"""

from datetime import date, datetime, timedelta, timezone

import pytest
from flask_babel import force_locale
from sqlalchemy import select, update

from scm.core.database import unit_of_work
from scm.core.formatting import WIB
from scm.extensions import db
from scm.registration.models import Contract
from scm.stamping import services as stamping_services
from scm.stamping.models import Stamp
from scm.stamping.services import StampEvent, ingest_events
from scm.stamping.window import StampWindow
from tests.integration.api_helpers import Api, assert_ledger_verifies, balances, check_ok, event, give_quota, new_token

NOW = datetime(2026, 11, 15, 10, 0, tzinfo=WIB)  # the frozen clock of the API tests
SEPT_1 = "2026-09-01T00:00:00+07:00"  # on any day of November, the look-back (2 months) starts here


@pytest.fixture
def wapu(app, factory):
    found = factory.wapu(1501)  # its contract started on 1 January 2026
    found["token"] = new_token(app, found["id"])
    give_quota(app, found["id"], 50)
    return found


@pytest.fixture
def api(app, wapu, monkeypatch):
    """The API of ``wapu`` with the services' clock frozen at ``NOW``."""
    monkeypatch.setattr(stamping_services, "utcnow", lambda: NOW.astimezone(timezone.utc))
    yield Api(app.test_client(), wapu["token"])
    assert_ledger_verifies(app)


def _results(response):
    return {r["serial"]: r for r in check_ok(response)["results"]}


def _stored(app, wapu_id):
    with app.app_context():
        return set(db.session.execute(select(Stamp.serial).where(Stamp.wapu_id == wapu_id)).scalars())


def _start_contract_on(app, wapu_id, day):
    with app.app_context(), unit_of_work():
        db.session.execute(update(Contract).where(Contract.wapu_id == wapu_id).values(start_date=day))


# --------------------------------------------------------------------------- the API's batches


def test_the_findings_stamps_from_2031_and_1999_are_refused(app, wapu, api):
    results = _results(api.batch([event("C-2031", stamped_at="2031-01-01T10:00:00+07:00"),
                                  event("C-1999", stamped_at="1999-01-01T10:00:00+07:00")]))
    assert results["C-2031"]["result"] == "stamped_at_in_future"
    assert results["C-1999"]["result"] == "stamped_at_before_contract"
    assert results["C-1999"]["limit"] == "2026-01-01T00:00:00+07:00"
    assert _stored(app, wapu["id"]) == set()
    assert balances(app, wapu["id"])["available"] == 50


def test_a_stamp_at_most_five_minutes_ahead_is_accepted_a_second_more_is_refused(app, wapu, api):
    limit = NOW + timedelta(minutes=5)
    body = check_ok(api.batch([event("F-EDGE", stamped_at=limit.isoformat()),
                               event("F-OVER", stamped_at=(limit + timedelta(seconds=1)).isoformat()),
                               event("F-UTC", stamped_at="2026-11-15T03:05:00.000001Z")]))
    results = {r["serial"]: r for r in body["results"]}
    assert results["F-EDGE"] == {"serial": "F-EDGE", "result": "applied"}
    over = results["F-OVER"]
    assert over["result"] == results["F-UTC"]["result"] == "stamped_at_in_future"
    assert over["limit"] == "2026-11-15T10:05:00+07:00"
    assert "5 minutes" in over["detail"] and "15 Nov 2026 10:05:00 WIB" in over["detail"]  # the API speaks English
    assert body["counts"] == {"applied": 1, "stamped_at_in_future": 2}
    assert _stored(app, wapu["id"]) == {"F-EDGE"}


def test_a_stamp_before_the_first_contract_is_refused_even_within_the_look_back(app, wapu, api):
    _start_contract_on(app, wapu["id"], date(2026, 10, 15))  # within the look-back (from 1 September)
    results = _results(api.batch([event("K-EDGE", stamped_at="2026-10-15T00:00:00+07:00"),
                                  event("K-BEFORE", stamped_at="2026-10-14T23:59:59.999999+07:00"),
                                  event("K-FAILED", status="failed", stamped_at="2026-10-01T12:00:00+07:00")]))
    assert results["K-EDGE"]["result"] == "applied"
    for serial in ("K-BEFORE", "K-FAILED"):  # a failed stamp is no stamp either: its time counts too
        assert results[serial]["result"] == "stamped_at_before_contract"
        assert results[serial]["limit"] == "2026-10-15T00:00:00+07:00"
        assert "15 October 2026" in results[serial]["detail"]
    assert _stored(app, wapu["id"]) == {"K-EDGE"}


def test_a_stamp_older_than_the_look_back_is_refused_with_the_limit(app, wapu, api):
    results = _results(api.batch([event("O-EDGE", stamped_at=SEPT_1),
                                  event("O-EDGE-UTC", stamped_at="2026-08-31T17:00:00Z"),  # the same moment
                                  event("O-OLD", stamped_at="2026-08-31T23:59:59.999999+07:00"),
                                  event("O-MARCH", stamped_at="2026-03-10T10:00:00+07:00")]))
    assert results["O-EDGE"]["result"] == results["O-EDGE-UTC"]["result"] == "applied"
    for serial in ("O-OLD", "O-MARCH"):
        assert results[serial]["result"] == "stamped_at_too_old"
        assert results[serial]["limit"] == SEPT_1
        assert "1 September 2026" in results[serial]["detail"] and "2 months" in results[serial]["detail"]
    assert _stored(app, wapu["id"]) == {"O-EDGE", "O-EDGE-UTC"}
    assert balances(app, wapu["id"])["available"] == 48


def test_the_look_back_is_a_setting(app, wapu, api):
    app.config["STAMP_LOOKBACK_MONTHS"] = 0  # only this month
    results = _results(api.batch([event("L-NOV", stamped_at="2026-11-01T00:00:00+07:00"),
                                   event("L-OCT", stamped_at="2026-10-31T23:59:59+07:00")]))
    assert (results["L-NOV"]["result"], results["L-OCT"]["result"]) == ("applied", "stamped_at_too_old")
    assert results["L-OCT"]["limit"] == "2026-11-01T00:00:00+07:00"
    app.config["STAMP_MAX_FUTURE_MINUTES"] = 0
    late = _results(api.batch([event("L-NOW", stamped_at=NOW.isoformat()),
                               event("L-SOON", stamped_at=(NOW + timedelta(microseconds=1)).isoformat())]))
    assert (late["L-NOW"]["result"], late["L-SOON"]["result"]) == ("applied", "stamped_at_in_future")


def test_refusals_are_per_event_and_a_retry_stays_a_duplicate_after_the_window_moved(app, wapu, api, monkeypatch):
    events = [event("R-OK", stamped_at=SEPT_1), event("R-OLD", stamped_at="2026-08-01T10:00:00+07:00"),
              event("R-OLD", stamped_at="2026-08-01T10:00:00+07:00")]  # an identical repeat shares the refusal
    first = check_ok(api.batch(events))
    assert [r["result"] for r in first["results"]] == ["applied", "stamped_at_too_old", "stamped_at_too_old"]
    assert first["results"][2] == first["results"][1]
    # December: 1 September is now older than the look-back, but R-OK was recorded in time.
    monkeypatch.setattr(stamping_services, "utcnow", lambda: datetime(2026, 11, 30, 17, tzinfo=timezone.utc))
    again = check_ok(api.batch(events))
    assert [r["result"] for r in again["results"]] == ["duplicate", "stamped_at_too_old", "stamped_at_too_old"]
    assert again["results"][1]["limit"] == "2026-10-01T00:00:00+07:00"
    assert _stored(app, wapu["id"]) == {"R-OK"}


def test_the_window_turns_with_the_wib_month(app, factory):
    """The last instant of November (WIB) still accepts 1 September; the first of December does not."""
    wapu_id = factory.wapu(1502)["id"]
    give_quota(app, wapu_id, 5)
    september = StampEvent("M-SEP", "failed", datetime(2026, 9, 1, tzinfo=WIB), "cek")
    with app.app_context():
        with unit_of_work():
            december = ingest_events(wapu_id, None, events=[september], now=datetime(2026, 12, 1, tzinfo=WIB))
        with unit_of_work():
            november = ingest_events(wapu_id, None, events=[september],
                                     now=datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=WIB))
    assert december[0]["result"] == "stamped_at_too_old" and november[0]["result"] == "applied"


def test_a_wapu_without_a_contract_accepts_no_stamp_time(app):
    with app.test_request_context(), force_locale("en"):
        window = StampWindow.build(None, now=NOW, allow_old=True)
        refusal = window.refusal(NOW - timedelta(days=1))
        assert (refusal.code, refusal.limit, window.earliest) == ("stamped_at_before_contract", None, None)
        assert "no contract" in str(refusal.message)


def test_the_api_documents_the_window_codes(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    result = spec["components"]["schemas"]["BatchResult"]["properties"]["results"]["items"]["properties"]
    assert {"stamped_at_in_future", "stamped_at_before_contract", "stamped_at_too_old"} <= set(result["result"]["enum"])
    assert {"limit", "detail"} <= result.keys()
    assert "stamped_at_too_old" in spec["paths"]["/stamps/batch"]["post"]["description"]

