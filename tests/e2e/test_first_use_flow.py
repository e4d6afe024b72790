"""In the browser, what a new user tripped on (issue #10): a quantity typed the Indonesian way, the
stamping history in time order with document types by name, and an audit log people can read."""

import re
from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)


def test_staff_types_a_quantity_with_thousands_dots(new_page, factory):
    wapu = factory.wapu()
    staff = new_page()
    log_in(staff, factory.user("WAPU_STAFF", wapu_id=wapu["id"]))
    staff.goto("/purchase-requests/new")
    staff.locator('[name="quantity"]').fill("5.000")
    staff.locator('button[name="submit"]').click()
    expect(staff).to_have_url(re.compile(r"/purchase-requests/\d+$"))
    expect(staff.get_by_test_id("quantity")).to_have_text("5.000")

    staff.goto("/purchase-requests/new")
    staff.locator('[name="quantity"]').fill("lima ribu")
    staff.locator('button[name="submit"]').click()
    expect(staff.locator(".invalid-feedback")).to_contain_text("Isi bilangan bulat, mis. 5.000.")
    expect(staff.locator('[name="quantity"]')).to_have_value("lima ribu")


def test_history_reads_newest_first_with_document_type_names(app, new_page, factory):
    from scm.core.database import unit_of_work
    from scm.quota.services import issue_quota
    from scm.stamping.services import StampEvent, StampInput, commit_stamp, ingest_events, reserve_stamp

    wapu = factory.wapu()
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=10, key="po-e2e-order", reference="PO/E2E/2")
        with unit_of_work():
            reserve_stamp(wapu["id"], None, data=StampInput("TODAY-1", "surat_perjanjian"))
        with unit_of_work():
            commit_stamp(wapu["id"], "TODAY-1")
        with unit_of_work():  # imported after today's stamp, for earlier days
            ingest_events(wapu["id"], None, source="file", now=datetime(2026, 11, 30, 4, tzinfo=timezone.utc), events=[
                StampEvent(f"OLD-{day}", "failed", datetime(2026, 11, day, 3, tzinfo=timezone.utc), "akta_notaris")
                for day in (29, 25, 27)])
    fin = new_page()
    log_in(fin, factory.user("WAPU_FIN", wapu_id=wapu["id"]))
    fin.goto("/usage")
    rows = fin.locator("tbody tr[data-serial]")
    expect(rows).to_have_count(4)
    assert [rows.nth(i).get_attribute("data-serial") for i in range(4)] == ["TODAY-1", "OLD-29", "OLD-27", "OLD-25"]
    expect(rows.nth(0)).to_contain_text("Surat perjanjian")
    expect(rows.nth(1)).to_contain_text("Akta notaris")
    expect(fin.locator("main")).not_to_contain_text("surat_perjanjian")
    expect(fin.locator("#document_type option[value=akta_notaris]")).to_have_text("Akta notaris")


def test_the_audit_log_reads_in_indonesian(app, new_page, factory):
    from scm.core.database import unit_of_work
    from scm.quota.services import issue_quota

    wapu = factory.wapu()
    with app.app_context(), unit_of_work():
        issue_quota(wapu["id"], quantity=5000, key="po-e2e-audit", reference="PO/E2E/3")
    admin = new_page()
    log_in(admin, factory.user("DIST_ADMIN"))
    admin.goto("/admin/audit")
    row = admin.locator('tr[data-action="quota.issue"]')
    expect(row).to_contain_text("Kuota diterbitkan")
    expect(row).to_contain_text(f"+5.000 ke {wapu['code']} (PO/E2E/3)")
    expect(admin.locator("[data-testid=audit-log] th").last).to_be_in_viewport()
