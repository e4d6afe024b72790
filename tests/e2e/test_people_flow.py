"""In the browser: the distributor admin adds a STAFF user to a WAPU, who logs in with the one-time
password and must change it; a user resets a forgotten password through the emailed link; an SPV
names a stand-in, who approves a PR on the SPV's behalf."""

import re
import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)


def test_the_admin_adds_a_staff_user_who_logs_in_with_the_one_time_password(new_page, factory, mailbox):
    wapu = factory.wapu()
    admin = new_page()
    log_in(admin, factory.user("DIST_ADMIN"))
    admin.goto(f"/wapus/{wapu['id']}")
    admin.get_by_test_id("manage-users").click()
    expect(admin).to_have_url(re.compile(rf"/wapus/{wapu['id']}/users$"))
    admin.get_by_test_id("add-user").click()
    admin.locator('[name="name"]').fill("Staf Pengganti")
    admin.locator('[name="email"]').fill("staf.pengganti@example.com")
    admin.locator('[name="phone"]').fill("0812 7777 8888")
    admin.locator('[name="role"]').select_option("WAPU_STAFF")
    admin.locator("main button[type=submit]").click()
    credential = admin.locator('td[data-credential="staf.pengganti@example.com"]')
    expect(credential).to_have_text(re.compile(r"\S{8,}"))
    one_time = credential.inner_text().strip()
    assert any(one_time in mailbox.body(m) for m in mailbox.to("staf.pengganti@example.com"))

    staff = new_page()
    staff.goto("/login")
    staff.locator('[name="email"]').fill("staf.pengganti@example.com")
    staff.locator('[name="password"]').fill(one_time)
    staff.locator("main button[type=submit]").click()
    expect(staff).to_have_url(re.compile(r"/password$"))
    staff.goto("/purchase-requests")
    expect(staff).to_have_url(re.compile(r"/password$"))  # nothing else before the change
    staff.locator('[name="current_password"]').fill(one_time)
    staff.locator('[name="new_password"]').fill("Sandi-Baru-Staf-2026")
    staff.locator('[name="confirm_password"]').fill("Sandi-Baru-Staf-2026")
    staff.locator("main button[type=submit]").click()
    expect(staff).to_have_url(re.compile(r"/$"))
    expect(staff.get_by_test_id("whoami")).to_be_attached()

    admin.goto(f"/wapus/{wapu['id']}/users")
    expect(admin.locator('tr[data-user="staf.pengganti@example.com"]')).to_contain_text("Staf Pengganti")


def test_a_forgotten_password_is_reset_through_the_emailed_link(new_page, factory, mailbox):
    email = factory.user("WAPU_FIN")
    page = new_page()
    page.goto("/login")
    page.get_by_test_id("forgot-password").click()
    expect(page).to_have_url(re.compile(r"/password/forgot$"))
    page.locator('[name="email"]').fill(email)
    page.locator("main button[type=submit]").click()
    expect(page.get_by_test_id("reset-requested")).to_be_visible()

    for _ in range(100):  # the mail leaves once the answer has gone
        if mailbox.to(email):
            break
        time.sleep(0.1)
    body = mailbox.body(mailbox.to(email)[-1])
    link = re.search(r"http://127\.0\.0\.1:\d+/password/reset/[A-Za-z0-9_-]+", body).group(0)
    page.goto(link)
    page.locator('[name="new_password"]').fill("Sandi-Lupa-Baru-2026")
    page.locator('[name="confirm_password"]').fill("Sandi-Lupa-Baru-2026")
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    log_in(page, email, "Sandi-Lupa-Baru-2026")
    expect(page).to_have_url(re.compile(r"/$"))

    page.goto(link)  # spent
    expect(page.get_by_test_id("reset-link-invalid")).to_be_visible()


def test_an_spv_names_a_stand_in_who_approves_a_pr(app, new_page, factory):
    from scm.core.formatting import today_wib

    wapu = factory.wapu()
    staff_email = factory.user("WAPU_STAFF", wapu_id=wapu["id"])
    spv_email = factory.user("WAPU_SPV", wapu_id=wapu["id"])
    stand_in_email = factory.user("WAPU_SPV", wapu_id=wapu["id"])

    spv = new_page()
    log_in(spv, spv_email)
    spv.get_by_test_id("whoami").click()
    spv.get_by_test_id("stand-ins-link").click()
    expect(spv).to_have_url(re.compile(r"/stand-ins$"))
    option = spv.locator('[name="substitute"] option', has_text=stand_in_email)
    spv.locator('[name="substitute"]').select_option(option.get_attribute("value"))
    today = today_wib()
    spv.locator('[name="start_date"]').fill(today.isoformat())
    spv.locator('[name="end_date"]').fill((today + timedelta(days=5)).isoformat())
    spv.locator('[data-action="name-stand-in"]').click()
    expect(spv.get_by_test_id("named-stand-ins")).to_contain_text(stand_in_email)

    staff = new_page()
    log_in(staff, staff_email)
    staff.goto("/purchase-requests/new")
    staff.locator('[name="quantity"]').fill("2000")
    staff.locator('button[name="submit"]').click()
    expect(staff.locator('h1 [data-state="submitted"]')).to_be_visible()
    pr_url = staff.url

    stand_in = new_page()
    log_in(stand_in, stand_in_email)
    stand_in.goto("/stand-ins")
    expect(stand_in.get_by_test_id("serving")).to_contain_text("Pengguna WAPU_SPV")
    stand_in.goto(pr_url)
    stand_in.locator('[data-action="approve"]').click()
    expect(stand_in.locator('h1 [data-state="approved"]')).to_be_visible()
    expect(stand_in.get_by_test_id("on-behalf-of")).to_be_visible()
