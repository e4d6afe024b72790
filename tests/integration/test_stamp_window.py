"""The stamp time window (issue #15, finding 9): a reported ``stamped_at`` more than a few minutes in
the future, before the WAPU's first contract, or older than the look-back is refused, with a machine
code and the limit, in the API's batches and in the usage import alike; the distributor admin may
still import older stamps deliberately, with a reason that the audit log keeps.

The API tests freeze the services' clock (``NOW``), so that the limits are exact and the tests do
not depend on today's date; the web and command-line tests count from the real today.
"""

import csv
import io
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select, update

from scm.auth.models import User
from scm.core.database import unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import WIB, format_day
from scm.core.models import AuditLog
from scm.core.services import audit_text
from scm.extensions import db
from scm.registration.models import Contract
from scm.stamping import services as stamping_services
from scm.stamping.models import Stamp
from scm.stamping.services import StampEvent, ingest_events
from scm.stamping.usage_import import UsageFileError, apply_usage_file, check_old_usage_reason, read_usage_file
from scm.stamping.window import StampWindow, lookback_start
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


# --------------------------------------------------------------------------- the usage import


HEADER = ["serial", "wapu_code", "stamped_at", "document_type", "status"]


def _csv(rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def _real_limits():
    """The look-back's first moment and a day before it, counted from the real now (WIB)."""
    start = lookback_start(utcnow(), 2)
    return start, start - timedelta(days=1)


def test_import_rows_outside_the_window_are_errors_with_their_row_and_nothing_is_applied(app, wapu):
    _start_contract_on(app, wapu["id"], date(2026, 7, 15))
    code = wapu["code"]
    rows = [["I-OK", code, "2026-11-14T10:00:00+07:00", "cek", "stamped"],
            ["I-FUTURE", code, "2031-01-01T10:00:00+07:00", "cek", "stamped"],
            ["I-1999", code, "1999-01-01T10:00:00+07:00", "cek", "failed"],
            ["I-OLD", code, "2026-08-31T23:59:59+07:00", "cek", "stamped"],
            ["I-EDGE", code, SEPT_1, "cek", "stamped"]]
    with app.app_context():
        with pytest.raises(UsageFileError) as refused:
            read_usage_file(_csv(rows), "u.csv", now=NOW)
        errors = {e.row: e for e in refused.value.errors}
        assert set(errors) == {3, 4, 5} and {e.column for e in errors.values()} == {"stamped_at"}
        assert errors[5].value == "2026-08-31T23:59:59+07:00"
        with app.test_request_context():  # Indonesian by default, the limit in the message
            assert "15 Nov 2026 10.05.00 WIB" in str(errors[3].message)
            assert "15 Juli 2026" in str(errors[4].message)
            assert "1 September 2026" in str(errors[5].message)
        assert db.session.execute(select(func.count()).select_from(Stamp)).scalar() == 0
        # Deliberately (allow_old) the old row passes; the future and pre-contract ones never do.
        with pytest.raises(UsageFileError) as still:
            read_usage_file(_csv(rows), "u.csv", now=NOW, allow_old=True)
        assert {e.row for e in still.value.errors} == {3, 4}
        usage = read_usage_file(_csv([rows[0], rows[3], rows[4]]), "u.csv", now=NOW, allow_old=True)
        assert (usage.rows, usage.old_rows, usage.lookback_start) == (3, 1, datetime(2026, 9, 1, tzinfo=WIB))


def _upload(client, data, **fields):
    return client.post("/usage/import", {"file": (io.BytesIO(data), "pemakaian.csv"), **fields},
                       content_type="multipart/form-data", follow_redirects=True)  # checked in the queue


def _token(page):
    return re.search(r'name="token" type="hidden" value="([0-9a-f]{32})"', page).group(1)


def test_the_import_page_refuses_old_rows_and_the_admin_imports_them_deliberately_with_a_reason(app, wapu,
                                                                                                  login_as):
    start, old = _real_limits()
    recent = utcnow() - timedelta(hours=1)
    data = _csv([["W-OLD", wapu["code"], old.isoformat(), "cek", "stamped"],
                 ["W-NEW", wapu["code"], recent.isoformat(), "cek", "stamped"]])
    admin = login_as("DIST_ADMIN")
    form = admin.get("/usage/import").get_data(as_text=True)
    assert 'name="allow_old"' in form and 'name="reason"' in form

    refused = _upload(admin, data)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and re.findall(r'data-row="(\d+)"', page) == ["2"]
    assert "stamped_at" in page

    without_reason = _upload(admin, data, allow_old="y", reason="  ").get_data(as_text=True)
    assert 'data-field-error="reason"' in without_reason and 'name="token"' not in without_reason

    reason = "Koreksi laporan Agustus yang disepakati dengan WAPU (surat 12/2026)"
    preview = _upload(admin, data, allow_old="y", reason=reason)
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and 'data-testid="old-rows"' in page and reason in page
    result = admin.post("/usage/import/apply", {"token": _token(page), "allow_old": "y", "reason": reason},
                        follow_redirects=True)
    assert result.status_code == 200
    assert re.search(r'data-wapu="total">.*?data-result="applied">2<', result.get_data(as_text=True), re.S)
    assert _stored(app, wapu["id"]) == {"W-OLD", "W-NEW"}
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "usage.import_old")).scalar_one()
        assert entry.actor_id == db.session.execute(select(User.id).where(User.email == admin.email)).scalar()
        assert entry.details["note"] == reason and entry.details["old_rows"] == 1
        assert entry.details["lookback_start"] == start.date().isoformat() and entry.details["applied"] == 2
        with app.test_request_context(), force_locale("id"):
            text = audit_text(entry)
            day = format_day(start.date())
        assert text == (f"2 baris, 1 di antaranya dari sebelum {day} (lebih lama dari batas mundur), diimpor dengan "
                        f"sengaja: 2 diterapkan, 0 sudah tercatat: {reason}")
        assert reason in entry.summary
    assert_ledger_verifies(app)


def test_the_apply_step_refuses_old_rows_without_the_reason(app, wapu, login_as):
    _, old = _real_limits()
    data = _csv([["T-OLD", wapu["code"], old.isoformat(), "cek", "stamped"]])
    admin = login_as("DIST_ADMIN")
    page = _upload(admin, data, allow_old="y", reason="koreksi").get_data(as_text=True)
    token = _token(page)
    refused = admin.post("/usage/import/apply", {"token": token, "reason": "koreksi"},  # the override dropped
                         follow_redirects=True)
    assert refused.status_code == 422 and re.findall(r'data-row="(\d+)"', refused.get_data(as_text=True)) == ["2"]
    token = _token(_upload(admin, data, allow_old="y", reason="koreksi").get_data(as_text=True))
    tampered = admin.post("/usage/import/apply", {"token": token, "allow_old": "y", "reason": ""})
    assert tampered.status_code == 302 and tampered.headers["Location"].endswith("/usage/import")  # no task
    assert _stored(app, wapu["id"]) == set()
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(AuditLog)
                                  .where(AuditLog.action.like("usage.import%"))).scalar() == 0


def test_only_the_distributor_admin_may_import_old_stamps(app, wapu, factory, login_as):
    _, old = _real_limits()
    data = _csv([["X-OLD", wapu["code"], old.isoformat(), "cek", "stamped"]])
    for role in ("DIST_SPV", "DIST_FIN"):
        client = login_as(role)
        assert _upload(client, data, allow_old="y", reason="koreksi").status_code == 403
        assert client.post("/usage/import/apply", {"token": "0" * 32, "allow_old": "y",
                                                   "reason": "koreksi"}).status_code == 403
    spv_email = factory.user("DIST_SPV")
    with app.app_context():
        spv = db.session.execute(select(User).where(User.email == spv_email)).scalar_one()
        with pytest.raises(ServiceError) as forbidden:
            check_old_usage_reason(spv, "koreksi")
        assert forbidden.value.code == "forbidden"
        usage = read_usage_file(data, "u.csv", allow_old=True)
        with pytest.raises(ServiceError) as refused, unit_of_work():
            apply_usage_file(usage, spv, reason="koreksi")
        assert refused.value.code == "forbidden"
        with pytest.raises(ServiceError) as no_reason, unit_of_work():
            apply_usage_file(usage, None, reason=" ")
        assert no_reason.value.code == "reason_required"
    assert _stored(app, wapu["id"]) == set()


def test_the_command_imports_old_stamps_only_with_allow_old_and_a_reason(app, wapu, tmp_path):
    _, old = _real_limits()
    future = utcnow() + timedelta(days=1)
    path = tmp_path / "old.csv"
    path.write_bytes(_csv([["Y-OLD", wapu["code"], old.isoformat(), "cek", "stamped"]]))
    runner = app.test_cli_runner()
    plain = runner.invoke(args=["usage", "import", str(path)])
    assert plain.exit_code == 1 and "row 2: stamped_at" in plain.output, plain.output
    no_reason = runner.invoke(args=["usage", "import", str(path), "--allow-old"])
    assert no_reason.exit_code == 2 and "--allow-old" in no_reason.output
    stray = runner.invoke(args=["usage", "import", str(path), "--reason", "koreksi"])
    assert stray.exit_code == 2
    done = runner.invoke(args=["usage", "import", str(path), "--allow-old", "--reason", "koreksi Agustus"])
    assert done.exit_code == 0 and "applied 1" in done.output and "1 rows older" in done.output, done.output
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "usage.import_old")).scalar_one()
        assert entry.actor_label == "flask usage import" and entry.details["note"] == "koreksi Agustus"
    path.write_bytes(_csv([["Y-FUTURE", wapu["code"], future.isoformat(), "cek", "stamped"]]))
    never = runner.invoke(args=["usage", "import", str(path), "--allow-old", "--reason", "koreksi"])
    assert never.exit_code == 1 and "row 2: stamped_at" in never.output
    assert _stored(app, wapu["id"]) == {"Y-OLD"}
    assert_ledger_verifies(app)


def test_the_import_page_states_the_window(app, login_as):
    start, _ = _real_limits()
    page = login_as("DIST_ADMIN").get("/usage/import").get_data(as_text=True)
    with app.test_request_context(), force_locale("id"):
        assert format_day(start.date()) in page
