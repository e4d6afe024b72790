"""In the browser: a task's progress page updates itself (a small poll, no reload, no inline code)
while a worker runs the task, then offers its file."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from scm.auth.models import Role
from scm.billing.usage import add_months, month_key, month_of
from scm.core.background import make_queue, run_task
from scm.core.formatting import today_wib
from tests.e2e.conftest import log_in
from tests.fixtures.factories import insert_stamps

pytestmark = pytest.mark.e2e


def test_the_progress_page_follows_the_worker_and_offers_the_file(app, factory, new_page, tmp_path):
    app.config["QUEUE_URL"] = f"sqlite:///{tmp_path / 'queue.sqlite3'}"  # a real queue: nothing runs by itself
    make_queue(app)
    last = add_months(month_of(today_wib()), -1)
    wapu = factory.wapu()
    with app.app_context():
        start = datetime(last.year, last.month, 3, 2, tzinfo=timezone.utc)
        insert_stamps(wapu["id"], [start + timedelta(minutes=i) for i in range(12)])
    page = new_page()
    log_in(page, factory.user(Role.DIST_FIN))
    page.goto(f"/billing/months/{month_key(last)}")
    page.get_by_test_id("download-workbook").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    task = page.get_by_test_id("task")
    expect(task.locator('[data-state="queued"]')).to_have_text("menunggu")
    expect(page.get_by_test_id("task-download")).to_be_hidden()
    url_before = page.url

    with app.app_context():  # a worker takes the task now
        assert run_task(int(page.url.rsplit("/", 1)[1]))

    expect(task.locator('[data-state="done"]')).to_have_text("selesai", timeout=10_000)  # the poll saw it
    expect(task.locator("progress")).to_have_attribute("value", "100")
    expect(page.get_by_test_id("task-summary")).to_have_text("12 meterai dalam buku kerja.")
    assert page.url == url_before
    with page.expect_download() as info:
        page.get_by_test_id("task-download").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert info.value.suggested_filename == f"tagihan-{month_key(last)}.xlsx"
    book = load_workbook(path, read_only=True)
    assert sum(1 for sheet in book.worksheets[1:] for _ in sheet.iter_rows(min_row=2)) == 12
