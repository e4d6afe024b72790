"""In the browser: a newcomer registers, a reviewer approves, the STAFF contact logs in and must
change the one-time password; form errors beside the fields; the language switch."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.fixtures.factories import pdf_bytes, registration_form

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)

HEADING_ID = "Daftar sebagai Pemungut"
HEADING_EN = "Register as a Pemungut"
APPROVE_ID = "Setujui dan terbitkan akun"  # "Approve and issue logins"


@pytest.fixture
def contract_pdf(tmp_path):
    path = tmp_path / "kontrak.pdf"
    path.write_bytes(pdf_bytes())
    return path


def fill_registration(page, data, contract):
    for name, value in data.items():
        page.locator(f'[name="{name}"]').fill(value)
    page.locator('input[name="contract_file"]').set_input_files(contract)
    page.locator("form[enctype] button[type=submit]").click()




def test_register_approve_and_first_login(new_page, factory, mailbox, contract_pdf):
    data = registration_form()
    staff_email = data["staff_email"]

    # A newcomer registers, in Indonesian.
    applicant = new_page()
    applicant.goto("/register")
    expect(applicant.locator("h1")).to_have_text(HEADING_ID)
    fill_registration(applicant, data, contract_pdf)
    expect(applicant.get_by_test_id("reference")).to_have_text(re.compile(r"^REG-\d{4}-\d{6}$"))
    reference = applicant.get_by_test_id("reference").inner_text()

    # A reviewer approves it from the queue.
    reviewer = new_page()
    log_in(reviewer, factory.user("DIST_SPV"))
    expect(reviewer.get_by_test_id("whoami")).to_be_attached()
    reviewer.goto("/review/registrations")
    reviewer.get_by_role("link", name=reference, exact=True).click()
    expect(reviewer.locator("h1")).to_contain_text(reference)
    reviewer.locator("#comment").fill("Data dan kontrak lengkap.")
    reviewer.once("dialog", lambda dialog: dialog.accept())  # approving asks for a confirmation first
    reviewer.get_by_role("button", name=APPROVE_ID).click()
    credential = reviewer.locator(f'td[data-credential="{staff_email}"]')
    expect(credential).to_have_text(re.compile(r"\S{8,}"))
    one_time = credential.inner_text().strip()

    # The STAFF contact was emailed the same password.
    mails = mailbox.to(staff_email)
    assert any(one_time in mailbox.body(m) for m in mails), [m["Subject"] for m in mails]

    # The STAFF contact logs in and must change the password before anything else.
    staff = new_page()
    log_in(staff, staff_email, one_time)
    expect(staff).to_have_url(re.compile(r"/password$"))
    staff.goto("/")
    expect(staff).to_have_url(re.compile(r"/password$"))
    staff.locator('[name="current_password"]').fill(one_time)
    staff.locator('[name="new_password"]').fill("Sandi-Baru-Staf-2026")
    staff.locator('[name="confirm_password"]').fill("Sandi-Baru-Staf-2026")
    staff.locator("main button[type=submit]").click()
    expect(staff).to_have_url(re.compile(r"/$"))
    expect(staff.locator("main")).to_contain_text(data["name"])
    expect(staff.get_by_test_id("quota-available")).to_have_text("0")


def test_form_error_beside_field_keeps_input_and_upload(page, contract_pdf):
    data = registration_form(npwp="01.300.066.7-091.000")  # wrong check digit
    page.goto("/register")
    fill_registration(page, data, contract_pdf)
    expect(page.locator('[data-field-error="npwp"]')).to_be_visible()
    expect(page.locator('[name="npwp"]')).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.locator('[name="name"]')).to_have_value(data["name"])
    expect(page.get_by_test_id("held-upload")).to_be_visible()
    expect(page.get_by_test_id("held-upload")).to_contain_text("kontrak.pdf")


def test_language_switch(page):
    page.goto("/register")
    expect(page.locator("h1")).to_have_text(HEADING_ID)
    page.get_by_role("button", name="EN", exact=True).click()
    expect(page.locator("h1")).to_have_text(HEADING_EN)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("button", name="ID", exact=True).click()
    expect(page.locator("h1")).to_have_text(HEADING_ID)
    expect(page).to_have_url(re.compile(r"/register\??$"))
