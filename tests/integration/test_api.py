"""The stamping API /api/v1: authentication, reserve / commit / release, batches, history, bad input
and exactly-once stamping under concurrency. Every test ends with ``flask quota verify`` passing."""

import base64
import io
import json
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, update

from scm.api.models import ApiToken, hash_token
from scm.api.services import revoke_token
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.extensions import db
from scm.registration.models import Contract, Wapu, WapuStatus
from scm.stamping.models import Stamp
from scm.stamping.services import expire_reservations
from scm.stamping.summary import rebuild_usage
from tests.integration.api_helpers import (
    STAMPED_AT,
    Api,
    HttpApi,
    assert_ledger_verifies,
    balances,
    check_ok,
    check_problem,
    entry_counts,
    event,
    give_quota,
    new_token,
    serve_in_thread,
    stamp_row,
    stamp_states,
)


@pytest.fixture(autouse=True)
def _books_balance_afterwards(app):
    yield
    assert_ledger_verifies(app)


@pytest.fixture
def wapu(app, factory):
    found = factory.wapu(701)
    found["token"] = new_token(app, found["id"])
    return found


@pytest.fixture
def api(app, wapu):
    return Api(app.test_client(), wapu["token"])


@pytest.fixture
def other(app, factory):
    """A second WAPU with its own token and quota."""
    found = factory.wapu(702)
    found["token"] = new_token(app, found["id"])
    give_quota(app, found["id"], 10, key="po-other")
    found["api"] = Api(app.test_client(), found["token"])
    return found


def _bal(available, reserved=0, consumed=0, issued=None):
    return {"available": available, "reserved": reserved, "consumed": consumed,
            "issued": available + reserved + consumed if issued is None else issued}


# --------------------------------------------------------------------------- authentication and balance


def test_quota_returns_the_four_balances(app, wapu, api):
    assert check_ok(api.get("/quota")) == _bal(0)
    give_quota(app, wapu["id"], 50)
    assert check_ok(api.get("/quota")) == _bal(50)
    check_ok(api.reserve("Q-1"), 201)
    check_ok(api.reserve("Q-2"), 201)
    check_ok(api.commit("Q-2"))
    assert check_ok(api.get("/quota")) == _bal(48, 1, 1) == balances(app, wapu["id"])


def test_missing_or_unknown_token_is_401(app, wapu):
    give_quota(app, wapu["id"], 5)
    for header in (None, "Bearer scm_unknown-token", "Bearer ", "Basic dXNlcjpwdw==", wapu["token"],
                   "Bearer " + wapu["token"][:-1], "Bearer " + "x" * 500):
        headers = {"Authorization": header} if header else {}
        for response in (app.test_client().get("/api/v1/quota", headers=headers),
                         app.test_client().post("/api/v1/stamps", json={"serial": "A-1", "document_type": "cek"},
                                                headers=headers)):
            check_problem(response, 401, "invalid_token")
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), header
    assert stamp_states(app) == {}
    assert balances(app, wapu["id"]) == _bal(5)


def test_revoked_token_is_401(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    check_ok(api.get("/quota"))
    with app.app_context(), unit_of_work():
        token = db.session.execute(
            select(ApiToken).where(ApiToken.token_hash == hash_token(wapu["token"]))).scalar_one()
        revoke_token(token, None)
    check_problem(api.get("/quota"), 401, "invalid_token")
    check_problem(api.reserve("R-1"), 401, "invalid_token")
    assert stamp_states(app) == {}
    assert balances(app, wapu["id"]) == _bal(5)


def test_a_browser_session_does_not_authenticate_the_api(app, wapu, login_as):
    give_quota(app, wapu["id"], 5)
    browser = login_as("WAPU_SPV", wapu_id=wapu["id"])
    assert browser.get("/quota").status_code == 200  # the session itself works
    check_problem(browser.get("/api/v1/quota"), 401, "invalid_token")
    check_problem(browser.raw.post("/api/v1/stamps", json={"serial": "S-1", "document_type": "cek"}),
                  401, "invalid_token")
    assert stamp_states(app) == {}


def test_a_token_from_the_cli_works(app, wapu):
    result = app.test_cli_runner().invoke(args=["api-token", "create", "--wapu", wapu["code"], "--name", "cli"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert check_ok(Api(app.test_client(), token).get("/quota")) == _bal(0)


# --------------------------------------------------------------------------- reserve


def test_reserve_then_an_identical_retry_answers_the_same_stamp(app, wapu, api):
    give_quota(app, wapu["id"], 3)
    first = check_ok(api.reserve("SN-0001", document_number="D/1", document_date="2026-11-20T10:00:00+07:00"), 201)
    assert first["state"] == "reserved" and first["serial"] == "SN-0001" and first["source"] == "api"
    reserved_at = datetime.fromisoformat(first["reserved_at"])
    expires_at = datetime.fromisoformat(first["expires_at"])
    assert expires_at - reserved_at == timedelta(minutes=app.config["RESERVATION_MINUTES"])
    again = check_ok(api.reserve("SN-0001", document_number="D/1", document_date="2026-11-20T10:00:00+07:00"), 200)
    assert again == first
    assert balances(app, wapu["id"]) == _bal(2, 1)
    assert stamp_states(app) == {"reserved": 1}
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "reserve": 1}


def test_same_serial_with_other_content_is_a_conflict(app, wapu, api):
    give_quota(app, wapu["id"], 3)
    check_ok(api.reserve("SN-1", document_number="D/1"), 201)
    for changed in ({"document_type": "cek"}, {"document_number": "other"}, {"document_number": None},
                    {"document_date": "2026-11-21T10:00:00+07:00"}):
        fields = {"document_type": "surat_perjanjian", "document_number": "D/1", **changed}
        check_problem(api.reserve("SN-1", **fields), 409, "serial_conflict")
    result = check_ok(api.batch([event("SN-1", document_number="D/1")]))  # a reported stamp is other content
    assert result["results"] == [{"serial": "SN-1", "result": "committed"}]
    assert balances(app, wapu["id"]) == _bal(2, 0, 1)
    assert stamp_row(app, "SN-1").document_number == "D/1"


def test_a_serial_of_another_wapu_is_a_conflict(app, wapu, api, other):
    give_quota(app, wapu["id"], 3)
    check_ok(api.reserve("SHARED-1"), 201)
    check_problem(other["api"].reserve("SHARED-1"), 409, "serial_conflict")
    result = check_ok(other["api"].batch([event("SHARED-1")]))
    assert result["results"] == [{"serial": "SHARED-1", "result": "serial_conflict"}]
    check_problem(other["api"].commit("SHARED-1"), 404, "not_found")  # not even its existence leaks
    check_problem(other["api"].release("SHARED-1"), 404, "not_found")
    assert balances(app, other["id"]) == _bal(10)
    assert balances(app, wapu["id"]) == _bal(2, 1)
    assert stamp_row(app, "SHARED-1").wapu_id == wapu["id"]


def test_no_quota_is_refused_with_the_available_count(app, wapu, api):
    body = check_problem(api.reserve("NQ-0"), 409, "insufficient_quota")
    assert body["available"] == 0
    give_quota(app, wapu["id"], 1)
    check_ok(api.reserve("NQ-1"), 201)
    body = check_problem(api.reserve("NQ-2"), 409, "insufficient_quota")
    assert body["available"] == 0
    assert stamp_row(app, "NQ-2") is None and stamp_row(app, "NQ-0") is None
    assert balances(app, wapu["id"]) == _bal(0, 1)


def _suspend(wapu_id):
    db.session.get(Wapu, wapu_id).status = WapuStatus.SUSPENDED


def _expire_contract(wapu_id):
    db.session.execute(update(Contract).where(Contract.wapu_id == wapu_id)
                       .values(start_date=date(2025, 1, 1), end_date=today_wib() - timedelta(days=1)))


@pytest.mark.parametrize("make_inactive", [_suspend, _expire_contract], ids=["suspended", "contract_expired"])
def test_an_inactive_wapu_cannot_reserve(app, wapu, api, make_inactive):
    give_quota(app, wapu["id"], 5)
    check_ok(api.reserve("IN-1"), 201)
    with app.app_context(), unit_of_work():
        make_inactive(wapu["id"])
    check_problem(api.reserve("IN-2"), 403, "wapu_not_active")
    assert stamp_row(app, "IN-2") is None
    check_ok(api.commit("IN-1"))  # a reservation made while active may still be committed
    assert balances(app, wapu["id"]) == _bal(4, 0, 1)


# --------------------------------------------------------------------------- commit


def test_commit_stamps_and_is_idempotent(app, wapu, api):
    give_quota(app, wapu["id"], 2)
    check_ok(api.reserve("C-1"), 201)
    first = check_ok(api.commit("C-1"))
    assert first["state"] == "stamped" and first["stamped_at"]
    assert check_ok(api.commit("C-1")) == first
    assert check_ok(api.reserve("C-1"), 200) == first  # an identical reserve retry sees the stamp
    assert balances(app, wapu["id"]) == _bal(1, 0, 1)
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "reserve": 1, "commit": 1}


def test_commit_of_an_unknown_or_impossible_serial_is_404(app, wapu, api):
    check_problem(api.commit("NEVER-SEEN"), 404, "not_found")
    check_problem(api.commit("bad.serial"), 404, "not_found")
    check_problem(api.commit("x" * 65), 404, "not_found")
    assert stamp_states(app) == {}


def test_commit_after_release_is_refused(app, wapu, api):
    give_quota(app, wapu["id"], 1)
    check_ok(api.reserve("CR-1"), 201)
    check_ok(api.release("CR-1"))
    body = check_problem(api.commit("CR-1"), 409, "reservation_released")
    assert body["state"] == "released"
    assert balances(app, wapu["id"]) == _bal(1)


def test_commit_of_a_failed_stamp_is_refused(app, wapu, api):
    check_ok(api.batch([event("F-1", status="failed")]))
    check_problem(api.commit("F-1"), 409, "stamp_failed")
    check_problem(api.release("F-1"), 409, "stamp_failed")
    assert balances(app, wapu["id"]) == _bal(0)


def test_commit_after_the_expiry_job_is_refused_and_the_quota_is_back(app, wapu, api):
    give_quota(app, wapu["id"], 2)
    reserved = check_ok(api.reserve("EX-1"), 201)
    check_ok(api.reserve("EX-2"), 201)
    expires_at = datetime.fromisoformat(reserved["expires_at"])
    with app.app_context():
        assert expire_reservations(now=expires_at - timedelta(seconds=1)) == 0
        assert expire_reservations(now=expires_at + timedelta(minutes=1)) == 2
    assert balances(app, wapu["id"]) == _bal(2)
    body = check_problem(api.commit("EX-1"), 409, "reservation_released")
    assert body["state"] == "released"
    assert stamp_row(app, "EX-1").release_reason == "expired"
    assert check_ok(api.get("/quota")) == _bal(2)


def _zero_ttl(app, serial):
    app.config["RESERVATION_MINUTES"] = 0


def _expires_in_the_past(app, serial):
    with app.app_context(), unit_of_work():
        db.session.execute(update(Stamp).where(Stamp.serial == serial)
                           .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))


@pytest.mark.parametrize("when", ["before_reserve", "after_reserve"])
def test_commit_past_expiry_before_the_job_ran_is_refused_and_the_quota_is_back(app, wapu, api, when):
    give_quota(app, wapu["id"], 1)
    if when == "before_reserve":
        _zero_ttl(app, "LATE-1")
    check_ok(api.reserve("LATE-1"), 201)
    if when == "after_reserve":
        _expires_in_the_past(app, "LATE-1")
    assert balances(app, wapu["id"]) == _bal(0, 1)
    body = check_problem(api.commit("LATE-1"), 409, "reservation_released")
    assert body["state"] == "released"
    assert balances(app, wapu["id"]) == _bal(1)
    stamp = stamp_row(app, "LATE-1")
    assert (stamp.state.value, stamp.release_reason) == ("released", "expired")
    check_problem(api.commit("LATE-1"), 409, "reservation_released")  # and it stays so
    with app.app_context():
        assert expire_reservations(now=datetime.now(timezone.utc) + timedelta(days=1)) == 0
    assert balances(app, wapu["id"]) == _bal(1)
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "reserve": 1, "release": 1}


# --------------------------------------------------------------------------- release


def test_release_gives_the_quota_back_and_is_idempotent(app, wapu, api):
    give_quota(app, wapu["id"], 2)
    check_ok(api.reserve("RL-1"), 201)
    first = check_ok(api.release("RL-1", reason="printer jammed"))
    assert first["state"] == "released" and first["release_reason"] == "printer jammed" and first["released_at"]
    assert balances(app, wapu["id"]) == _bal(2)
    assert check_ok(api.release("RL-1", reason="printer jammed")) == first
    assert check_ok(api.release("RL-1")) == first
    check_ok(api.reserve("RL-2"), 201)
    assert check_ok(api.release("RL-2"))["release_reason"] == "released by client"  # no body at all
    assert balances(app, wapu["id"]) == _bal(2)
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "reserve": 2, "release": 2}


def test_release_after_commit_is_refused(app, wapu, api):
    give_quota(app, wapu["id"], 1)
    check_ok(api.reserve("RC-1"), 201)
    check_ok(api.commit("RC-1"))
    check_problem(api.release("RC-1"), 409, "already_stamped")
    assert balances(app, wapu["id"]) == _bal(0, 0, 1)
    assert stamp_row(app, "RC-1").state.value == "stamped"


# --------------------------------------------------------------------------- batches


def test_a_batch_consumes_stamped_events_only_and_a_retry_changes_nothing(app, wapu, api):
    give_quota(app, wapu["id"], 10)
    events = [event(f"B-{i}") for i in range(3)] + [event(f"BF-{i}", status="failed") for i in range(2)]
    first = check_ok(api.batch(events))
    assert first["results"] == [{"serial": e["serial"], "result": "applied"} for e in events]
    assert first["counts"] == {"applied": 5}
    assert balances(app, wapu["id"]) == _bal(7, 0, 3)
    assert stamp_states(app) == {"stamped": 3, "failed": 2}
    retry = check_ok(api.batch(events))
    assert retry["results"] == [{"serial": e["serial"], "result": "duplicate"} for e in events]
    assert retry["counts"] == {"duplicate": 5}
    assert balances(app, wapu["id"]) == _bal(7, 0, 3)
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "consume": 3}
    stamp = stamp_row(app, "B-0")
    assert (stamp.source, stamp.stamped_at) == ("batch", datetime.fromisoformat(STAMPED_AT))


def test_stamped_events_beyond_the_quota_are_refused_in_order(app, wapu, api):
    give_quota(app, wapu["id"], 3)
    events = [event(f"OQ-{i}") for i in range(5)] + [event("OQ-F", status="failed")]
    result = check_ok(api.batch(events))
    assert [r["result"] for r in result["results"]] == ["applied"] * 3 + ["insufficient_quota"] * 2 + ["applied"]
    assert result["counts"] == {"applied": 4, "insufficient_quota": 2}
    assert stamp_row(app, "OQ-3") is None and stamp_row(app, "OQ-4") is None
    assert balances(app, wapu["id"]) == _bal(0, 0, 3)
    give_quota(app, wapu["id"], 2, key="po-more")
    result = check_ok(api.batch(events))
    assert [r["result"] for r in result["results"]] == ["duplicate"] * 3 + ["applied"] * 2 + ["duplicate"]
    assert balances(app, wapu["id"]) == _bal(0, 0, 5)


def test_a_repeated_event_refused_for_quota_is_not_reported_as_applied(app, wapu, api):
    give_quota(app, wapu["id"], 1)
    result = check_ok(api.batch([event("RQ-1"), event("RQ-2"), event("RQ-2")]))
    assert balances(app, wapu["id"]) == _bal(0, 0, 1) and stamp_row(app, "RQ-2") is None
    assert [r["result"] for r in result["results"]] == ["applied", "insufficient_quota", "insufficient_quota"]


def test_a_batch_commits_or_releases_earlier_api_reservations(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    for serial in ("AR-1", "AR-2"):
        check_ok(api.reserve(serial), 201)
    events = [event("AR-1"), event("AR-2", status="failed"), event("AR-3")]
    result = check_ok(api.batch(events))
    assert [r["result"] for r in result["results"]] == ["committed", "released", "applied"]
    assert balances(app, wapu["id"]) == _bal(3, 0, 2)
    assert {s: stamp_row(app, s).state.value for s in ("AR-1", "AR-2", "AR-3")} == {
        "AR-1": "stamped", "AR-2": "released", "AR-3": "stamped"}
    check_ok(api.batch(events))  # a retry changes nothing ...
    assert balances(app, wapu["id"]) == _bal(3, 0, 2)
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "reserve": 2, "commit": 1, "release": 1, "consume": 1}


def test_retrying_a_batch_that_committed_api_reservations_answers_duplicate(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    for serial in ("AD-1", "AD-2"):
        check_ok(api.reserve(serial), 201)
    events = [event("AD-1"), event("AD-2", status="failed")]
    assert [r["result"] for r in check_ok(api.batch(events))["results"]] == ["committed", "released"]
    assert [r["result"] for r in check_ok(api.batch(events))["results"]] == ["duplicate", "duplicate"]


def test_repeated_serials_within_one_batch(app, wapu, api, other):
    give_quota(app, wapu["id"], 5)
    other["api"].batch([event("THEIRS")])
    events = [event("RP-1"), event("RP-1"), event("RP-1", document_type="cek"), event("THEIRS")]
    result = check_ok(api.batch(events))
    assert [r["result"] for r in result["results"]] == ["applied", "duplicate", "serial_conflict", "serial_conflict"]
    assert balances(app, wapu["id"]) == _bal(4, 0, 1)
    assert balances(app, other["id"]) == _bal(9, 0, 1)


# --------------------------------------------------------------------------- history


def _page_through(api, **query):
    serials, cursor, pages = [], None, 0
    while True:
        pages += 1
        assert pages <= 50
        page = check_ok(api.get("/stamps", **query, **({"cursor": cursor} if cursor else {})))
        serials += [item["serial"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return serials, pages


def test_history_pages_with_a_keyset_cursor(app, wapu, api):
    give_quota(app, wapu["id"], 30)
    base = datetime.combine(today_wib() - timedelta(days=2), datetime.min.time(), timezone.utc)  # in the window
    events = [event(f"H-{i:02d}", stamped_at=(base + timedelta(hours=i)).isoformat()) for i in range(22)]
    events += [event(f"HF-{i}", status="failed", stamped_at=base.isoformat()) for i in range(3)]
    check_ok(api.batch(events))
    check_ok(api.reserve("H-API"), 201)
    everything = [e["serial"] for e in events] + ["H-API"]

    serials, pages = _page_through(api, limit=10)
    assert pages == 3
    assert serials == list(reversed(everything))  # newest first, none lost, none twice
    serials, pages = _page_through(api, limit=26)
    assert (len(serials), pages) == (26, 1)

    assert _page_through(api, state="failed", limit=2)[0] == ["HF-2", "HF-1", "HF-0"]
    assert _page_through(api, state="reserved")[0] == ["H-API"]
    assert len(_page_through(api, state="stamped", limit=7)[0]) == 22
    window = {"from": (base + timedelta(hours=5)).isoformat(),
              "to": (base + timedelta(hours=10)).astimezone(timezone(timedelta(hours=7))).isoformat()}  # 5h..10h UTC
    assert _page_through(api, state="stamped", limit=2, **window)[0] == [f"H-{i:02d}" for i in range(9, 4, -1)]
    item = check_ok(api.get("/stamps", limit=1))["items"][0]
    assert item["serial"] == "H-API" and item["state"] == "reserved" and item["expires_at"]


def test_history_shows_only_the_tokens_wapu(app, wapu, api, other):
    check_ok(other["api"].batch([event("OTHER-1")]))
    assert check_ok(api.get("/stamps")) == {"items": [], "next_cursor": None}


def _cursor(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_bad_history_queries_are_422(app, wapu, api):
    for query in ({"cursor": "!!!"}, {"cursor": _cursor("x12")}, {"cursor": _cursor("s")}, {"cursor": "%%"},
                  {"cursor": _cursor("s12x")}, {"limit": "0"}, {"limit": "1001"}, {"limit": "ten"},
                  {"limit": "9" * 30}, {"limit": "1.5"}, {"state": "lost"}, {"from": "2026-11-01"},
                  {"from": "2026-11-01T00:00:00"}, {"to": "yesterday"}, {"state": "x", "limit": "-1"}):
        body = check_problem(api.get("/stamps", **query), 422, "validation_error")
        assert set(body["errors"]) == set(query), query


def test_an_out_of_range_cursor_is_not_a_server_error(app, wapu, api):
    check_ok(api.batch([event("OR-1", status="failed")]))
    for cursor in ("s" + "9" * 30, "s-" + "9" * 30, "s" + "9" * 19, f"s{2 ** 31}"):
        response = api.get("/stamps", cursor=_cursor(cursor))
        if response.status_code == 422:
            assert set(check_problem(response, 422, "validation_error")["errors"]) == {"cursor"}
        else:
            assert check_ok(response)["next_cursor"] is None


def test_the_cursor_carries_stamp_ids_past_2_31(app, wapu, api):
    """Stamp keys are BIGINT: a history past 2^31 - 1 stamps pages on; garbage is still a 422."""
    give_quota(app, wapu["id"], 1)
    check_ok(api.batch([event("BIG-1")]))
    with app.app_context(), unit_of_work():  # written straight to the table: the ledger knows only BIG-1
        first = db.session.execute(select(Stamp).where(Stamp.serial == "BIG-1")).scalar_one()
        for serial, stamp_id in (("BIG-2", 2**40 + 3), ("BIG-3", 2**40 + 7)):
            db.session.execute(insert(Stamp).values(
                id=stamp_id, serial=serial, wapu_id=first.wapu_id, state=first.state, document_type="cek",
                fingerprint="f" * 64, source="batch", stamped_at=first.stamped_at, occurred_at=first.occurred_at))
        rebuild_usage(first.wapu_id)  # and their usage summary, which `flask quota verify` checks
    page = check_ok(api.get("/stamps", limit=1))
    assert [item["serial"] for item in page["items"]] == ["BIG-3"]
    assert base64.urlsafe_b64decode(page["next_cursor"] + "==").decode() == f"s{2**40 + 7}"
    assert _page_through(api, limit=1) == (["BIG-3", "BIG-2", "BIG-1"], 3)
    assert [i["serial"] for i in check_ok(api.get("/stamps", cursor=_cursor(f"s{2**63 - 1}")))["items"]] == [
        "BIG-3", "BIG-2", "BIG-1"]
    for garbage in (f"s{2**63}", "s0", "s007", "s 12", "s+12", "s1_000", "s١٢", f"s{2**40}\n", "s-5"):
        body = check_problem(api.get("/stamps", cursor=_cursor(garbage)), 422, "validation_error")
        assert set(body["errors"]) == {"cursor"}, garbage


# --------------------------------------------------------------------------- bad input


def test_malformed_json_is_400(app, wapu, api):
    for path in ("/stamps", "/stamps/batch", "/stamps/X-1/release"):
        for raw in ('{"serial": ', "not json", '{"a": 1} trailing', b"\xff\xfe\x00{", "{'single': 'quotes'}"):
            check_problem(api.post(path, raw=raw), 400, "malformed_json")
    assert stamp_states(app) == {}


WRONG_TYPES = [
    ("/stamps", {"serial": 12345, "document_type": "cek"}, {"serial"}),
    ("/stamps", {"serial": "OK-1", "document_type": ["cek"], "document_number": 7},
     {"document_type", "document_number"}),
    ("/stamps", {}, {"serial", "document_type"}),
    ("/stamps", {"serial": None, "document_type": None}, {"serial", "document_type"}),
    ("/stamps", {"serial": True, "document_type": {"a": 1}, "document_date": 20261123}, {"serial", "document_type",
                                                                                          "document_date"}),
    ("/stamps", [{"serial": "A"}], {""}),
    ("/stamps", "just a string", {""}),
    ("/stamps/batch", {"events": {"serial": "A"}}, {"events"}),
    ("/stamps/batch", {"events": "A"}, {"events"}),
    ("/stamps/batch", {"events": []}, {"events"}),
    ("/stamps/batch", {}, {"events"}),
    ("/stamps/batch", {"events": ["A", {"serial": 5, "status": "done", "stamped_at": 1, "document_type": "x"}]},
     {"events[0].", "events[1].serial", "events[1].status", "events[1].stamped_at", "events[1].document_type"}),
    ("/stamps/X-1/release", {"reason": 5}, {"reason"}),
    ("/stamps/X-1/release", {"reason": "r" * 201}, {"reason"}),
    ("/stamps/X-1/release", ["reason"], {""}),
]


def test_wrong_types_are_422_with_per_field_errors(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    check_ok(api.reserve("X-1"), 201)
    for path, body, fields in WRONG_TYPES:
        problem = check_problem(api.post(path, body), 422, "validation_error")
        assert set(problem["errors"]) == fields, (path, body, problem)
        assert all(isinstance(m, list) and m and all(isinstance(t, str) for t in m)
                   for m in problem["errors"].values()), problem
    assert balances(app, wapu["id"]) == _bal(4, 1)
    assert stamp_states(app) == {"reserved": 1}


def test_a_body_over_the_limit_is_413(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    limit = app.config["API_MAX_BODY_BYTES"]
    padding = " " * (limit + 1 - len('{"serial": "BIG-1", "document_type": "cek"}'))
    raw = '{"serial": "BIG-1", "document_type": "cek"}' + padding
    assert len(raw) == limit + 1
    check_problem(api.post("/stamps", raw=raw), 413, "payload_too_large")
    check_problem(api.post("/stamps/batch", raw=raw), 413, "payload_too_large")
    check_ok(api.post("/stamps", raw=raw[:-1]), 201)  # exactly the limit is fine
    big = app.config["MAX_CONTENT_LENGTH"] + 1
    check_problem(api.post("/stamps", raw="x" * big), 413)
    assert balances(app, wapu["id"]) == _bal(4, 1)


def test_a_chunked_body_over_the_limit_is_413(app, wapu):
    """A body without Content-Length (chunked, as a WSGI server passes it on) is cut off at the limit too."""
    limit = app.config["API_MAX_BODY_BYTES"]
    body = b'{"serial": "CH-1", "document_type": "cek", "document_number": "' + b"x" * limit + b'"}'
    response = app.test_client().post(
        "/api/v1/stamps", input_stream=io.BytesIO(body), environ_overrides={"wsgi.input_terminated": True},
        headers={"Authorization": f"Bearer {wapu['token']}", "Transfer-Encoding": "chunked"})
    check_problem(response, 413, "payload_too_large")
    assert stamp_states(app) == {}


def test_a_batch_of_more_than_1000_events_is_refused(app, wapu, api):
    give_quota(app, wapu["id"], 1001)
    problem = check_problem(api.batch([event(f"L-{i}") for i in range(1001)]), 422, "batch_too_large")
    assert "events" in problem["errors"]
    assert stamp_states(app) == {}
    result = check_ok(api.batch([event(f"L-{i}") for i in range(1000)]))
    assert result["counts"] == {"applied": 1000}
    assert balances(app, wapu["id"]) == _bal(1, 0, 1000)


def test_bad_serials_are_422(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    for serial in ("has space", "semi;colon", "dot.ted", "slash/ed", "ünï", "x" * 65, "", " ", "new\nline",
                   "A\x00B"):
        assert set(check_problem(api.reserve(serial), 422, "validation_error")["errors"]) == {"serial"}, serial
        problem = check_problem(api.batch([event(serial)]), 422, "validation_error")
        assert set(problem["errors"]) == {"events[0].serial"}, serial
    check_ok(api.reserve("y" * 64), 201)  # the longest allowed
    check_ok(api.reserve("Aa0-_"), 201)
    assert stamp_states(app) == {"reserved": 2}


def test_a_serial_ending_in_a_newline_is_422(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    check_problem(api.reserve("trailing\n"), 422, "validation_error")
    check_problem(api.batch([event("trailing\n")]), 422, "validation_error")


def test_unknown_document_type_and_dates_without_offset_are_422(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    cases = [
        (api.reserve("DT-1", document_type="kwitansi"), {"document_type"}),
        (api.reserve("DT-2", document_date="2026-11-23T09:30:00"), {"document_date"}),
        (api.reserve("DT-3", document_date="2026-11-23"), {"document_date"}),
        (api.reserve("DT-4", document_date="23/11/2026 09:30 +07:00"), {"document_date"}),
        (api.reserve("DT-5", document_date="2026-13-45T09:30:00+07:00"), {"document_date"}),
        (api.batch([event("DT-6", stamped_at="2026-11-23T09:30:00")]), {"events[0].stamped_at"}),
        (api.batch([event("DT-7", document_type="kwitansi")]), {"events[0].document_type"}),
    ]
    for response, fields in cases:
        assert set(check_problem(response, 422, "validation_error")["errors"]) == fields
    check_ok(api.reserve("DT-8", document_date="2026-11-23T09:30:00Z"), 201)
    assert stamp_states(app) == {"reserved": 1}


def test_unknown_routes_and_methods_answer_problem_json(app, wapu, api):
    check_problem(api.get("/nothing-here"), 404, "not_found")
    check_problem(api.post("/stamps/A-1/explode"), 404, "not_found")
    check_problem(app.test_client().get("/api/v2/quota"), 404)
    check_problem(app.test_client().delete("/api/v1/quota", headers=api.headers), 405, "method_not_allowed")
    check_problem(api.get("/stamps/batch"), 405, "method_not_allowed")


def test_deeply_nested_json_is_not_a_server_error(app, wapu, api):
    for raw in ("[" * 100_000 + "]" * 100_000,
                '{"serial": "N-1", "document_type": ' + "[" * 50_000 + "]" * 50_000 + "}"):
        # nesting deeper than the parser's recursion limit is not JSON we can read: 400, like a typo
        check_problem(api.post("/stamps", raw=raw), 400, "malformed_json")
    assert stamp_states(app) == {}


def _post_text_everywhere(app, api, text):
    """Send ``text`` as a free-text field of reserve, batch and release; return the three responses."""
    raw = json.dumps({"serial": "ODD-1", "document_type": "cek", "document_number": text})
    reserved = api.post("/stamps", raw=raw)
    reported = api.post("/stamps/batch", raw=json.dumps({"events": [event("ODD-2", document_number=text)]}))
    released = api.post("/stamps/ODD-1/release", raw=json.dumps({"reason": text}))
    return reserved, reported, released


def test_unusual_but_valid_text_is_stored_as_sent(app, wapu, api):
    give_quota(app, wapu["id"], 5)
    text = "Surat 🧾 \u202eRTL «ü» \t tab"
    reserved, reported, released = _post_text_everywhere(app, api, text)
    assert check_ok(reserved, 201)["document_number"] == text
    assert check_ok(reported)["counts"] == {"applied": 1}
    assert check_ok(released)["release_reason"] == text
    assert stamp_row(app, "ODD-2").document_number == text


@pytest.mark.parametrize("text", [
    pytest.param("nul\x00byte", id="nul"),
    pytest.param("lone \ud800 surrogate", id="lone_surrogate"),
])
def test_text_the_database_cannot_store_is_never_a_server_error(app, wapu, api, text):
    give_quota(app, wapu["id"], 5)
    reserved, reported, released = _post_text_everywhere(app, api, text)
    # refused by validation on every database (PostgreSQL cannot store NUL, nobody can encode a lone
    # surrogate), naming the field, before anything is looked up or written
    assert set(check_problem(reserved, 422, "validation_error")["errors"]) == {"document_number"}
    assert set(check_problem(reported, 422, "validation_error")["errors"]) == {"events[0].document_number"}
    assert set(check_problem(released, 422, "validation_error")["errors"]) == {"reason"}
    assert stamp_states(app) == {}


# --------------------------------------------------------------------------- concurrency


THREADS, PER_THREAD, QUOTA = 8, 250, 1200


def test_concurrent_reserve_and_commit_stamp_exactly_the_quota(app, wapu):
    give_quota(app, wapu["id"], QUOTA)
    outcomes = [[] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def stamp_many(n):
        client = HttpApi(base, wapu["token"])
        try:
            barrier.wait(timeout=30)
            for i in range(PER_THREAD):
                serial = f"T{n}-{i:04d}"
                status, body = client.reserve(serial)
                if status == 201:
                    status, body = client.commit(serial)
                    outcomes[n].append("stamped" if (status, body["state"]) == (200, "stamped")
                                       else f"commit {status} {body}")
                else:
                    outcomes[n].append(body.get("code") if status == 409 else f"reserve {status} {body}")
        except Exception as error:  # recorded, then asserted below
            outcomes[n].append(f"exception {error!r}")
        finally:
            client.close()

    with serve_in_thread(app) as base:
        workers = [threading.Thread(target=stamp_many, args=(n,)) for n in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=240)
        assert not any(worker.is_alive() for worker in workers)
    flat = [o for per_thread in outcomes for o in per_thread]
    assert len(flat) == THREADS * PER_THREAD
    assert flat.count("stamped") == QUOTA
    assert flat.count("insufficient_quota") == THREADS * PER_THREAD - QUOTA, {o for o in flat}
    assert balances(app, wapu["id"]) == _bal(0, 0, QUOTA)
    assert stamp_states(app, wapu["id"]) == {"stamped": QUOTA}
    assert entry_counts(app, wapu["id"]) == {"issue": 1, "reserve": QUOTA, "commit": QUOTA}


def test_concurrent_identical_calls_count_once(app, wapu):
    """Clients retrying the same reserve, commit and batch at the same time: each serial counts once."""
    give_quota(app, wapu["id"], 1000)
    serials = [f"SAME-{i:03d}" for i in range(40)]
    events = [event(f"SAMEB-{i:03d}") for i in range(200)]
    seen = [[] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def retry_everything(n):
        client = HttpApi(base, wapu["token"])
        try:
            barrier.wait(timeout=30)
            for serial in serials:
                seen[n].append(("reserve", client.reserve(serial)[0]))
                seen[n].append(("commit", client.commit(serial)[0]))
            status, body = client.batch(events)
            seen[n].append(("batch", status))
            seen[n] += [("event", r["result"]) for r in body["results"]]
        except Exception as error:  # recorded, then asserted below
            seen[n].append(("exception", repr(error)))
        finally:
            client.close()

    with serve_in_thread(app) as base:
        workers = [threading.Thread(target=retry_everything, args=(n,)) for n in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not any(worker.is_alive() for worker in workers)
    flat = [item for per_thread in seen for item in per_thread]
    assert flat.count(("reserve", 201)) == len(serials), [i for i in flat if i[0] == "exception"]
    assert flat.count(("reserve", 200)) == (THREADS - 1) * len(serials)
    assert flat.count(("commit", 200)) == THREADS * len(serials)
    assert flat.count(("batch", 200)) == THREADS
    assert flat.count(("event", "applied")) == len(events)
    assert flat.count(("event", "duplicate")) == (THREADS - 1) * len(events)
    stamped = len(serials) + len(events)
    assert balances(app, wapu["id"]) == _bal(1000 - stamped, 0, stamped)
    assert stamp_states(app) == {"stamped": stamped}
