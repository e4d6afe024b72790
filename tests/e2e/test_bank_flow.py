"""In the browser: the distributor's finance user uploads a bank statement, reviews the proposed
matches (one by invoice number, one by WAPU code) and applies them; both invoices become paid."""

from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.integration.test_bank_statements import _csv, _invoice

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)


def test_finance_uploads_reviews_and_applies_a_statement(app, factory, new_page, tmp_path):
    from scm.core.database import unit_of_work
    from scm.core.formatting import today_wib
    from scm.extensions import db

    one, two = factory.wapu(), factory.wapu()
    fin = factory.user("DIST_FIN")
    today = today_wib()
    day = today - timedelta(days=2)
    with app.app_context(), unit_of_work():
        first = _invoice(one, "INV/2026/10/00101", 1_250_000, issue_date=day - timedelta(days=20),
                         due_date=today + timedelta(days=7), period=date(2026, 10, 1))
        second = _invoice(two, "INV/2026/10/00102", 3_000_000, issue_date=day - timedelta(days=20),
                          due_date=today + timedelta(days=7), period=date(2026, 10, 1))
        db.session.flush()
    statement = tmp_path / "mutasi.csv"
    statement.write_bytes(_csv([(day, "TRF INV 2026 10 00101 PT SATU", 1_250_000),
                                (day, f"PEMBAYARAN {two['code']} OKTOBER", 3_000_000),
                                (day, "BIAYA ADM", -10_000)]))

    page = new_page()
    log_in(page, fin)
    page.goto("/billing")
    page.get_by_test_id("nav-bank").click()
    upload = page.get_by_test_id("bank-upload")
    upload.locator('[name="bank_format"]').select_option("generic")
    upload.locator('[name="account"]').fill("5550001")
    upload.locator('[name="statement"]').set_input_files(str(statement))
    upload.locator("button[type=submit]").click()  # read in the queue: its task's page says what was read
    expect(page.get_by_test_id("task-summary")).to_contain_text("3 baris dibaca, 3 baru")
    page.get_by_role("link", name="Mutasi bank").last.click()
    lines = page.get_by_test_id("bank-line")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text("INV/2026/10/00101")
    expect(lines.nth(1)).to_contain_text("INV/2026/10/00102")
    expect(page.locator('[data-kind="matched"]')).to_have_count(2)
    page.get_by_test_id("bank-apply").click()
    expect(page.locator(".alert-success")).to_contain_text("2 baris dicocokkan (2 pembayaran dicatat)")
    expect(page.get_by_test_id("nothing-to-review")).to_be_visible()
    for invoice_id in (first, second):
        page.goto(f"/billing/invoices/{invoice_id}")
        expect(page.get_by_test_id("balance")).to_have_text("Rp0")
        expect(page.locator("h1 [data-state]")).to_have_attribute("data-state", "paid")
