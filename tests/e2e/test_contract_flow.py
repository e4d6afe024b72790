"""In the browser: the distributor admin opens a WAPU's page, adds the renewal with its signed PDF
(an overlapping try first, refused beside the field, the PDF kept), and sees it in the contract
history as coming, the current one still in force."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.fixtures.factories import pdf_bytes

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)


def test_the_admin_renews_a_contract_and_sees_it_in_the_history(page, factory, tmp_path):
    admin = factory.user("DIST_ADMIN")
    wapu = factory.wapu()  # its contract runs 2026-01-01 … 2027-12-31
    contract = tmp_path / "perpanjangan.pdf"
    contract.write_bytes(pdf_bytes("Perpanjangan kontrak"))
    log_in(page, admin)
    page.goto(f"/wapus/{wapu['id']}")
    rows = page.get_by_test_id("contract-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-standing", "in_force")
    page.get_by_test_id("add-contract").click()
    expect(page.locator("h1")).to_have_text("Tambah perpanjangan atau amandemen")
    # the form proposes the day after the current contract
    expect(page.locator('[name="start_date"]')).to_have_value("2028-01-01")

    page.locator('[name="number"]').fill("KTR/PERPANJANGAN/2028")
    page.locator('[name="start_date"]').fill("2027-12-01")  # overlaps the current contract
    page.locator('[name="end_date"]').fill("2028-12-31")
    page.locator('[name="unit_price"]').fill("11.500")
    page.locator('input[name="contract_file"]').set_input_files(contract)
    page.locator("form[data-testid=contract-form] button[type=submit]").click()
    expect(page.locator('[data-field-error="start_date"]')).to_contain_text("tumpang tindih")
    expect(page.get_by_test_id("held-upload")).to_contain_text("perpanjangan.pdf")

    page.locator('[name="start_date"]').fill("2028-01-01")
    page.locator("form[data-testid=contract-form] button[type=submit]").click()
    expect(page.locator(".alert-success")).to_contain_text("KTR/PERPANJANGAN/2028")
    expect(rows).to_have_count(2)
    renewal = rows.filter(has_text="KTR/PERPANJANGAN/2028")
    expect(renewal).to_have_attribute("data-standing", "upcoming")
    expect(renewal).to_contain_text("perpanjangan")
    expect(renewal).to_contain_text("Rp11.500")
    expect(page.locator('[data-standing="in_force"]')).to_have_count(1)
    with page.expect_download() as download:
        renewal.get_by_role("link", name="PDF").click()
    assert download.value.suggested_filename == "perpanjangan.pdf"
