"""In the browser: STAFF raises a purchase request, the WAPU's SPV approves it, STAFF turns it into
a purchase order, the distributor's SPV approves it; the quota shows on the STAFF dashboard, the
bell counts the news, the notification is listed and the email names the PO."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)

QUANTITY = 1500
PR_NUMBER = re.compile(r"^PR/\S+/\d{4}/\d{5}$")
PO_NUMBER = re.compile(r"^PO/\S+/\d{4}/\d{5}$")




def test_order_flow_staff_spv_distributor_quota_and_notification(new_page, factory, mailbox):
    wapu = factory.wapu()
    staff_email = factory.user("WAPU_STAFF", wapu_id=wapu["id"])
    spv_email = factory.user("WAPU_SPV", wapu_id=wapu["id"])
    distributor_email = factory.user("DIST_SPV")

    # STAFF raises a purchase request for 1500 and sends it to the supervisor.
    staff = new_page()
    log_in(staff, staff_email)
    expect(staff.get_by_test_id("quota-available")).to_have_text("0")
    staff.goto("/purchase-requests/new")
    staff.locator('[name="quantity"]').fill(str(QUANTITY))
    staff.locator('[name="purpose"]').fill("Kontrak pelanggan bulan depan")
    staff.locator('button[name="submit"]').click()
    expect(staff).to_have_url(re.compile(r"/purchase-requests/\d+$"))
    expect(staff.locator('h1 [data-state="submitted"]')).to_be_visible()
    expect(staff.get_by_test_id("quantity")).to_have_text("1.500")
    pr_url = staff.url
    pr_number = staff.locator("h1").inner_text().split()[0]
    assert PR_NUMBER.match(pr_number), pr_number

    # The WAPU's SPV approves it.
    spv = new_page()
    log_in(spv, spv_email)
    spv.goto(pr_url)
    expect(spv.locator("h1")).to_contain_text(pr_number)
    spv.locator('[data-action="approve"]').click()
    expect(spv.locator('h1 [data-state="approved"]')).to_be_visible()
    expect(spv.locator('[data-action="approve"]')).to_have_count(0)

    # STAFF raises the purchase order: the preview shows the price and the total.
    staff.reload()
    expect(staff.locator('h1 [data-state="approved"]')).to_be_visible()
    staff.locator('[data-action="order"]').click()
    expect(staff).to_have_url(re.compile(r"/purchase-requests/\d+/order$"))
    expect(staff.get_by_test_id("unit-price")).to_have_text("Rp10.000")
    expect(staff.get_by_test_id("total")).to_have_text("Rp15.000.000")
    staff.locator("main form button[type=submit]").click()
    expect(staff).to_have_url(re.compile(r"/purchase-orders/\d+$"))
    expect(staff.locator('h1 [data-state="submitted"]')).to_be_visible()
    expect(staff.locator('[data-action="approve"]')).to_have_count(0)  # not for the WAPU to decide
    po_url = staff.url
    po_number = staff.locator("h1").inner_text().split()[0]
    assert PO_NUMBER.match(po_number), po_number

    # The distributor's SPV approves the purchase order: the quota is issued.
    distributor = new_page()
    log_in(distributor, distributor_email)
    distributor.goto(po_url)
    expect(distributor.locator("h1")).to_contain_text(po_number)
    distributor.locator('[data-action="approve"]').click()
    expect(distributor.locator('h1 [data-state="approved"]')).to_be_visible()
    expect(distributor.locator('[data-action="approve"]')).to_have_count(0)

    # STAFF sees the new quota and the unread badge, then the notification.
    staff.goto("/")
    expect(staff.get_by_test_id("quota-available")).to_have_text("1.500")
    expect(staff.get_by_test_id("unread-count")).to_have_text(re.compile(r"^[1-9]\d*$"))
    staff.get_by_test_id("bell").click()
    expect(staff).to_have_url(re.compile(r"/notifications$"))
    item = staff.locator('[data-notification="po_approved"]')
    expect(item).to_have_count(1)
    expect(item).to_contain_text(po_number)
    expect(staff.get_by_test_id("unread-count")).to_have_count(0)  # opening the list reads them

    # STAFF was also emailed about it.
    mails = mailbox.to(staff_email)
    assert any(po_number in mailbox.body(m) for m in mails), [m["Subject"] for m in mails]
