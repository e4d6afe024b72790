"""In the browser: a WAPU's finance user reads the stamping history, filters it down to the
refunded stamps, opens one and sees its quota went back, and exports the filtered list to Excel."""

import re

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)

REASON = "timeout layanan pembubuhan"
STAMPED = ["SN-OK-1", "SN-OK-2", "SN-OK-3"]
REFUNDED = ["SN-REF-1", "SN-REF-2"]
FAILED = "SN-FAIL-1"
RESERVED = "SN-RES-1"
REFUNDED_ID = "dikembalikan"  # StampState.RELEASED's label in Indonesian
REFUNDED_LIFE_ID = "Dikembalikan: e-Meterai kembali ke kuota Anda"
EXPORT_HEADERS = ("Nomor seri", "WAPU", "Status", "Jenis dokumen", "Nomor dokumen", "Tanggal dokumen",  # in Indonesian
                  "Dipesan pada (WIB)", "Dibubuhkan pada (WIB)", "Dikembalikan pada (WIB)", "Alasan pengembalian",
                  "Dilaporkan melalui")




def make_history(app, wapu_id):
    """Quota 20, then 3 stamped, 2 reserved and refunded, 1 reported failed, 1 still reserved.
    Available quota after each step: 17 after the stamped ones; each refund goes 16 -> 17; 16 at the end."""
    from scm.core.database import unit_of_work, utcnow
    from scm.quota.services import issue_quota
    from scm.stamping.services import StampEvent, StampInput, commit_stamp, ingest_events, release_stamp, reserve_stamp

    with app.app_context():
        with unit_of_work():
            issue_quota(wapu_id, quantity=20, key="po-e2e-usage", reference="PO/E2E/1")
        for serial in STAMPED:
            with unit_of_work():
                reserve_stamp(wapu_id, None, data=StampInput(serial, "surat_perjanjian", f"SPK/{serial}"))
            with unit_of_work():
                commit_stamp(wapu_id, serial)
        for serial in REFUNDED:
            with unit_of_work():
                reserve_stamp(wapu_id, None, data=StampInput(serial, "surat_perjanjian", f"SPK/{serial}"))
            with unit_of_work():
                release_stamp(wapu_id, serial, reason=REASON)
        with unit_of_work():
            results = ingest_events(wapu_id, None, events=[StampEvent(FAILED, "failed", utcnow(), "akta_notaris", "AKTA/9")])
            assert results == [{"serial": FAILED, "result": "applied"}]
        with unit_of_work():
            reserve_stamp(wapu_id, None, data=StampInput(RESERVED, "cek", "CEK/1"))


def test_wapu_user_filters_history_opens_refunded_stamp_and_exports(app, page, factory, tmp_path):
    wapu = factory.wapu(901)
    make_history(app, wapu["id"])
    log_in(page, factory.user("WAPU_FIN", wapu_id=wapu["id"]))

    # The whole history: every stamp listed, counted per state.
    page.goto("/usage")
    expect(page.locator("tr[data-serial]")).to_have_count(7)
    for state, count in {"stamped": 3, "released": 2, "failed": 1, "reserved": 1}.items():
        expect(page.locator(f'[data-count="{state}"] .badge')).to_have_text(str(count))

    # Filter by state with the form: only the two refunded stamps are left, newest first.
    filters = page.locator('main form[method="get"]')
    filters.locator('select[name="state"]').select_option("released")
    filters.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/usage\?(.*&)?state=released(&|$)"))
    rows = page.locator("tr[data-serial]")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-serial", REFUNDED[1])
    expect(rows.nth(1)).to_have_attribute("data-serial", REFUNDED[0])
    expect(page.locator('tr[data-serial] [data-state="released"]')).to_have_text([REFUNDED_ID, REFUNDED_ID])
    expect(page.locator('select[name="state"]')).to_have_value("released")  # the form keeps the filter
    filtered_url = page.url

    # Open one: it shows refunded, why, and the quota that left and came back.
    page.locator(f'tr[data-serial="{REFUNDED[0]}"] a').click()
    expect(page).to_have_url(re.compile(r"/usage/stamps/\d+$"))
    expect(page.locator("h1")).to_contain_text(REFUNDED[0])
    expect(page.get_by_test_id("stamp-state")).to_have_text(REFUNDED_ID)
    life = page.get_by_test_id("stamp-life")
    expect(life).to_contain_text(REFUNDED_LIFE_ID)
    expect(life).to_contain_text(REASON)
    ledger = page.locator("tr[data-kind]")
    expect(ledger).to_have_count(2)
    expect(ledger.nth(0)).to_have_attribute("data-kind", "reserve")
    expect(ledger.nth(1)).to_have_attribute("data-kind", "release")
    expect(page.locator('tr[data-kind="reserve"] td.text-end')).to_have_text("16")
    expect(page.locator('tr[data-kind="release"] td.text-end')).to_have_text("17")  # back to the quota

    # Back to the filtered list, and export it.
    page.go_back()
    expect(page).to_have_url(filtered_url)
    expect(page.locator("tr[data-serial]")).to_have_count(2)
    export = page.get_by_test_id("export")
    expect(export).to_have_attribute("href", re.compile(r"state=released"))
    with page.expect_download() as info:
        export.click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == "riwayat-pembubuhan.xlsx"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    rows = list(load_workbook(saved, read_only=True).active.iter_rows(values_only=True))
    assert rows[0] == EXPORT_HEADERS
    assert len(rows) == 3, rows
    data = rows[1:]
    assert [r[0] for r in data] == [REFUNDED[1], REFUNDED[0]]
    assert {r[2] for r in data} == {REFUNDED_ID}  # the state's name, not its code
    assert {r[3] for r in data} == {"Surat perjanjian"} and {r[10] for r in data} == {"API"}
    assert {r[1] for r in data} == {wapu["code"]}
    assert {r[9] for r in data} == {REASON}
    assert all(r[6] is not None and r[7] is None and r[8] >= r[6] for r in data)
