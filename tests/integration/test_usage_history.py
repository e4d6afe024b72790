"""Riwayat pembubuhan: filters, counts, keyset pages, XLSX export, stamp life; the scheduler job."""

import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook

from scm.core.database import unit_of_work, utcnow
from scm.extensions import db
from scm.quota.services import issue_quota
from scm.stamping.models import Stamp, StampState
from scm.stamping.services import (
    StampEvent,
    StampInput,
    commit_stamp,
    expire_reservations,
    ingest_events,
    release_stamp,
    reserve_stamp,
)


@pytest.fixture
def usage(app, factory):
    """A WAPU with every kind of stamp: stamped, released (refunded), failed, reserved."""
    wapu = factory.wapu(801)
    other = factory.wapu(802)
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=100, key="po-u1", reference="PO/U/1")
            issue_quota(other["id"], quantity=10, key="po-u2", reference="PO/U/2")
        for i in range(60):
            with unit_of_work():
                reserve_stamp(wapu["id"], None, data=StampInput(f"SN-{i:03d}", "surat_perjanjian", f"=HYPERLINK({i})"))
            with unit_of_work():
                if i % 3 == 0:
                    release_stamp(wapu["id"], f"SN-{i:03d}", reason="timeout pada layanan pembubuhan")
                elif i % 3 == 1:
                    commit_stamp(wapu["id"], f"SN-{i:03d}")
        with unit_of_work():
            reported = datetime(2026, 11, 20, 3, tzinfo=timezone.utc)  # the window is that of the report's time
            ingest_events(wapu["id"], None, now=reported, events=[
                StampEvent("FAIL-1", "failed", datetime(2026, 11, 20, 2, tzinfo=timezone.utc), "akta_notaris", "+62-1"),
                StampEvent("OTHER-OK", "stamped", datetime(2026, 11, 20, 2, tzinfo=timezone.utc), "cek"),
            ])
            ingest_events(other["id"], None, now=reported, events=[
                StampEvent("B-SECRET", "stamped", datetime(2026, 11, 20, 2, tzinfo=timezone.utc), "cek")])
    return wapu, other


def test_history_counts_states_and_pages_by_keyset(app, usage, login_as):
    wapu, _ = usage
    client = login_as("WAPU_FIN", wapu_id=wapu["id"])
    page = client.get("/usage").get_data(as_text=True)
    counts = dict(re.findall(r'data-count="(\w+)">.*?<span class="badge text-bg-light">([\d.]+)</span>', page, re.S))
    assert counts == {"reserved": "20", "stamped": "21", "failed": "1", "released": "20"}
    assert "B-SECRET" not in page  # another WAPU's stamp
    first = re.findall(r'data-serial="([^"]+)"', page)
    assert len(first) == 50
    older = re.search(r'href="([^"]+)" data-testid="older"', page).group(1).replace("&amp;", "&")
    second = re.findall(r'data-serial="([^"]+)"', client.get(older).get_data(as_text=True))
    assert len(second) == 12 and not set(first) & set(second)


def test_history_filters(app, usage, login_as):
    wapu, _ = usage
    client = login_as("WAPU_STAFF", wapu_id=wapu["id"])
    released = re.findall(r'data-state="(\w+)"', client.get("/usage?state=released").get_data(as_text=True))
    assert released and set(released) == {"released"}
    assert re.findall(r'data-serial="([^"]+)"', client.get("/usage?serial=FAIL").get_data(as_text=True)) == ["FAIL-1"]
    by_type = re.findall(r'data-serial="([^"]+)"', client.get("/usage?document_type=cek").get_data(as_text=True))
    assert by_type == ["OTHER-OK"]
    dated = re.findall(r'data-serial="([^"]+)"', client.get("/usage?date_from=2026-11-20&date_to=2026-11-20").get_data(as_text=True))
    assert sorted(dated) == ["FAIL-1", "OTHER-OK"]


def test_failed_and_refunded_stamps_show_their_life(app, usage, login_as):
    wapu, other = usage
    client = login_as("WAPU_STAFF", wapu_id=wapu["id"])
    with app.app_context():
        ids = {s.serial: s.id for s in db.session.query(Stamp).all()}
    refunded = client.get(f"/usage/stamps/{ids['SN-000']}").get_data(as_text=True)
    assert "timeout pada layanan pembubuhan" in refunded
    assert 'data-kind="reserve"' in refunded and 'data-kind="release"' in refunded
    failed = client.get(f"/usage/stamps/{ids['FAIL-1']}").get_data(as_text=True)
    assert 'data-kind=' not in failed  # no quota moved for a failed stamp
    with app.app_context():
        assert re.search(r'data-testid="stamp-state">([^<]+)<', failed).group(1) == str(StampState.FAILED.label)
    assert client.get(f"/usage/stamps/{ids['B-SECRET']}").status_code == 404
    assert login_as("DIST_FIN").get(f"/usage/stamps/{ids['B-SECRET']}").status_code == 200


def test_export_is_a_real_workbook_with_the_filtered_rows_and_no_formulas(app, usage, login_as):
    wapu, _ = usage
    client = login_as("WAPU_FIN", wapu_id=wapu["id"])
    response = client.get("/usage/export.xlsx?state=released")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Nomor seri" and len(rows) == 21  # the headers and values in the user's language
    assert {r[2] for r in rows[1:]} == {"dikembalikan"}
    assert {r[3] for r in rows[1:]} == {"Surat perjanjian"}  # the document type's name, not its code
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:K21"
    for row in sheet.iter_rows(min_row=2):
        number = row[4]
        assert number.data_type == "s" and number.value.startswith("=HYPERLINK(")  # text, never a formula
    reserved_at, stamped_at, released_at = rows[1][6:9]
    assert isinstance(reserved_at, datetime) and stamped_at is None and released_at >= reserved_at
    everything = load_workbook(io.BytesIO(client.get("/usage/export.xlsx").data)).active
    assert everything.max_row == 63 and "B-SECRET" not in [r[0] for r in everything.iter_rows(values_only=True)]


def test_distributor_sees_every_wapu_and_filters_by_code(app, usage, login_as):
    _, other = usage
    client = login_as("DIST_SPV")
    page = client.get(f"/usage?wapu={other['code']}").get_data(as_text=True)
    assert re.findall(r'data-serial="([^"]+)"', page) == ["B-SECRET"]


def test_expiry_job_releases_late_reservations_and_a_late_commit_is_refused(app, usage):
    wapu, _ = usage
    with app.app_context():
        later = utcnow() + timedelta(minutes=app.config["RESERVATION_MINUTES"] + 1)
        assert expire_reservations(now=later) == 20
        assert expire_reservations(now=later) == 0  # idempotent
        stamp = db.session.query(Stamp).filter_by(serial="SN-002").one()
        assert stamp.state == StampState.RELEASED and stamp.release_reason == "expired"
    result = app.test_cli_runner().invoke(args=["quota", "verify"])
    assert result.exit_code == 0, result.output


def test_scheduler_run_once_command(app, usage):
    result = app.test_cli_runner().invoke(args=["scheduler", "run-once", "expire-reservations"])
    assert result.exit_code == 0 and "released" in result.output
    result = app.test_cli_runner().invoke(args=["scheduler", "run-once", "send-outbox"])
    assert result.exit_code == 0 and "sent" in result.output


def test_an_invalid_filter_is_shown_and_the_valid_ones_still_apply(app, usage, login_as):
    wapu, _ = usage
    client = login_as("WAPU_STAFF", wapu_id=wapu["id"])
    page = client.get("/usage?serial=FAIL&date_from=notadate&document_type=bogus").get_data(as_text=True)
    assert 'data-field-error="date_from"' in page and 'data-field-error="document_type"' in page
    assert re.findall(r'data-serial="([^"]+)"', page) == ["FAIL-1"]
    export = load_workbook(io.BytesIO(client.get("/usage/export.xlsx?serial=FAIL&date_from=x").data)).active
    assert [r[0] for r in export.iter_rows(min_row=2, values_only=True)] == ["FAIL-1"]
