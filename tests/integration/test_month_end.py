"""The month end in the task queue: billing run, issue all, the workbook, the ZIP and the combined PDF
start from the month page and finish in a worker, with a progress page and a file to download;
issued PDFs are rendered once and never change; a task is never done twice, even when its worker
is killed half-way."""

import hashlib
import io
import os
import signal
import subprocess
import time
import zipfile
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, text, update

from scm.auth.models import Role, User
from scm.billing.models import BillingDocument, BillingRun, DocumentKind, Invoice, InvoiceState
from scm.billing.usage import add_months, month_key, month_of
from scm.core.background import (
    MAX_ATTEMPTS,
    TaskContext,
    TaskLost,
    make_queue,
    requeue_tasks_job,
    run_task,
    start_task,
)
from scm.core.database import unit_of_work, utcnow
from scm.core.formatting import today_wib
from scm.core.models import AuditLog, BackgroundTask, OutboxEmail, StoredFile, TaskState
from scm.core.tasks import prune_records_job
from scm.extensions import db
from tests.fixtures.client import file_from_task
from tests.fixtures.factories import insert_stamps
from tests.integration.test_scheduler import FLASK, ROOT, cli_env

LAST = add_months(month_of(today_wib()), -1)
KEY = month_key(LAST)
STAMPS = {0: 40, 1: 25, 2: 7}


@pytest.fixture
def month(app, factory):
    """Three WAPUs with stamps last month (40, 25 and 7)."""
    wapus = [factory.wapu() for _ in STAMPS]
    start = datetime(LAST.year, LAST.month, 2, 3, tzinfo=timezone.utc)
    with app.app_context():
        for index, count in STAMPS.items():
            insert_stamps(wapus[index]["id"], [start + timedelta(minutes=7 * i) for i in range(count)])
    return wapus


@pytest.fixture
def queued(app, tmp_path):
    """The app's tasks go to a real embedded Huey queue (SQLite file) that only a worker empties."""
    app.config["QUEUE_URL"] = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    return make_queue(app)


def user_of(app, client) -> User:
    return db.session.execute(select(User).where(User.email == client.email)).scalar_one()


def month_invoices(app):
    return db.session.execute(select(Invoice).where(Invoice.period == LAST).order_by(Invoice.number)).scalars().all()


def stored(app, kind=DocumentKind.INVOICE):
    return {doc.object_id: doc for doc in db.session.execute(
        select(BillingDocument).where(BillingDocument.kind == kind)).scalars()}


def test_the_month_end_runs_in_the_queue_and_its_files_download_from_the_task_page(app, month, login_as, read_pdf):
    fin = login_as(Role.DIST_FIN)
    status, _ = file_from_task(fin, f"/billing/months/{KEY}/run")
    assert status["state"] == "done" and status["summary"].startswith("3 ")  # 3 new drafts
    status, _ = file_from_task(fin, f"/billing/months/{KEY}/issue")
    assert status["state"] == "done" and status["percent"] == 100 and "3 faktur" in status["summary"]
    with app.app_context():
        invoices = month_invoices(app)
        assert [i.state for i in invoices] == [InvoiceState.ISSUED] * 3
        documents = stored(app)
        assert set(documents) == {i.id for i in invoices}  # every issued invoice's PDF is stored
        numbers = {i.id: i.number for i in invoices}
        in_wapu_order = [i.id for i in sorted(invoices, key=lambda i: i.wapu.code)]

    status, workbook = file_from_task(fin, f"/billing/months/{KEY}/workbook")
    assert status["summary"] == f"{sum(STAMPS.values())} meterai dalam buku kerja."
    assert status["done"] == status["total"] == sum(STAMPS.values()) and status["step"] == ""  # done shows it all
    assert workbook.mimetype.endswith("spreadsheetml.sheet") and "no-store" in workbook.headers["Cache-Control"]
    book = load_workbook(io.BytesIO(workbook.data), read_only=True)
    stamp_rows = [row for sheet in book.worksheets[1:] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert len(stamp_rows) == sum(STAMPS.values())
    assert sorted(Counter(row[0] for row in stamp_rows).values()) == sorted(STAMPS.values())

    _status, bundle = file_from_task(fin, f"/billing/months/{KEY}/invoices-zip")
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        assert sorted(archive.namelist()) == sorted(n.replace("/", "-") + ".pdf" for n in numbers.values())
        for invoice_id, number in numbers.items():
            pdf = archive.read(number.replace("/", "-") + ".pdf")
            assert hashlib.sha256(pdf).hexdigest() == documents[invoice_id].sha256  # the stored bytes
            assert fin.get(f"/billing/invoices/{invoice_id}.pdf").data == pdf  # the same as the download

    _status, combined = file_from_task(fin, f"/billing/months/{KEY}/invoices-pdf")
    _text, layout, pages = read_pdf(combined.data)
    assert pages == 3  # one page per invoice, in WAPU order, each its own "page 1 of 1"
    for page, invoice_id in zip(layout.split("\f")[:3], in_wapu_order, strict=True):
        assert numbers[invoice_id] in page and "Halaman 1 dari 1" in page

    listing = fin.get("/tasks").get_data(as_text=True)
    assert listing.count('data-state="done"') == 5 and f"Buku kerja {KEY}" in listing


def test_an_issued_pdf_is_rendered_once_audited_and_never_changes(app, month, login_as):
    fin = login_as(Role.DIST_FIN)
    file_from_task(fin, f"/billing/months/{KEY}/run")
    with app.app_context():
        invoice_id = db.session.execute(select(Invoice.id).where(Invoice.wapu_id == month[0]["id"])).scalar_one()
    assert fin.post(f"/billing/invoices/{invoice_id}/issue").status_code == 302
    first, second = (fin.get(f"/billing/invoices/{invoice_id}.pdf").data for _ in range(2))
    assert first == second and first.startswith(b"%PDF")
    with app.app_context():
        (document,) = stored(app).values()
        assert document.object_id == invoice_id and document.sha256 == hashlib.sha256(first).hexdigest()
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "invoice.pdf_stored")).scalars().all()
        assert len(audit) == 1 and document.sha256 in audit[0].summary
        for statement in ("UPDATE billing_documents SET sha256 = 'x'", "DELETE FROM billing_documents"):
            with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
                conn.execute(text(statement))
    fin.post(f"/billing/invoices/{invoice_id}/credit-notes", data={"credit_amount": "10.000", "reason": "Koreksi"})
    with app.app_context():
        (note,) = stored(app, DocumentKind.CREDIT_NOTE).values()
    pdf = fin.get(f"/billing/credit-notes/{note.object_id}.pdf").data
    assert hashlib.sha256(pdf).hexdigest() == note.sha256


def test_a_double_click_starts_one_task_and_a_second_delivery_does_nothing(app, month, login_as, queued):
    fin = login_as(Role.DIST_FIN)
    first = fin.post(f"/billing/months/{KEY}/run").headers["Location"]
    assert fin.post(f"/billing/months/{KEY}/run").headers["Location"] == first  # waiting: the same task
    task_id = int(first.rsplit("/", 1)[1])
    assert fin.get(f"/tasks/{task_id}.json").get_json()["state"] == "queued"
    assert queued.pending_count() >= 1
    with app.app_context():
        assert run_task(task_id) is True
        assert run_task(task_id) is False  # delivered again: a finished task never runs again
        task = db.session.get(BackgroundTask, task_id)
        assert (task.state, task.attempts) == (TaskState.DONE, 1)
        assert db.session.execute(select(func.count()).select_from(BillingRun)).scalar() == 1
        assert db.session.execute(select(func.count()).select_from(Invoice)).scalar() == 3


def test_a_dead_workers_task_is_taken_over_and_its_late_work_refused(app, month, login_as, queued):
    fin = login_as(Role.DIST_FIN)
    file_from_task(fin, f"/billing/months/{KEY}/run")
    with app.app_context():
        run_task(db.session.execute(select(BackgroundTask.id)).scalar_one())
        with unit_of_work():
            task_id = start_task("billing.issue", user_of(app, fin), key=KEY, params={"month": KEY}).id
        # Worker A claims it, then dies: its lease runs out.
        with unit_of_work():
            db.session.execute(update(BackgroundTask).where(BackgroundTask.id == task_id).values(
                state=TaskState.RUNNING, holder="A", attempts=1, locked_until=utcnow() - timedelta(seconds=1)))
        assert requeue_tasks_job() == {"requeued": 1, "given_up": 0}
        assert db.session.get(BackgroundTask, task_id).state == TaskState.QUEUED
        assert run_task(task_id, holder="B") is True
        task = db.session.get(BackgroundTask, task_id)
        assert (task.state, task.attempts, task.holder) == (TaskState.DONE, 2, "B")
        numbers = sorted(i.number for i in month_invoices(app))
        assert len(numbers) == len(set(numbers)) == 3 and all(numbers)
        assert len(db.session.execute(select(AuditLog).where(AuditLog.action == "invoice.issued")).all()) == 3
        # A comes back from the dead and tries to finish: refused, nothing of its work commits.
        late = TaskContext(task, "A")
        with pytest.raises(TaskLost), unit_of_work():
            late.finish({"issued": 99})
        assert db.session.get(BackgroundTask, task_id).result["issued"] == 3

        # A task whose workers keep dying is given up, with the reason.
        with unit_of_work():
            stuck = start_task("billing.workbook", None, key=KEY, params={"month": KEY})
            stuck.state, stuck.attempts, stuck.locked_until = TaskState.RUNNING, MAX_ATTEMPTS, utcnow() - timedelta(1)
        assert requeue_tasks_job()["given_up"] == 1
        assert "3 times" in db.session.get(BackgroundTask, stuck.id).error


def test_a_failed_task_says_why_in_indonesian(app, month, login_as):
    fin = login_as(Role.DIST_FIN)
    with app.app_context(), unit_of_work():
        task_id = start_task("billing.zip", user_of(app, fin), key=KEY, params={"month": KEY}).id
    status = fin.get(f"/tasks/{task_id}.json").get_json()
    assert status["state"] == "failed" and status["download"] is None
    assert status["error"].startswith("Belum ada faktur")
    assert "Belum ada faktur" in fin.get(f"/tasks/{task_id}").get_data(as_text=True)


def test_a_task_and_its_file_are_seen_by_the_distributor_only(app, month, login_as):
    fin = login_as(Role.DIST_FIN)
    status, _ = file_from_task(fin, f"/billing/months/{KEY}/workbook")
    task_id = status["id"]
    spv = login_as(Role.DIST_SPV)
    assert spv.get(f"/tasks/{task_id}").status_code == 200 and spv.get(status["download"]).status_code == 200
    wapu_fin = login_as(Role.WAPU_FIN, wapu_id=month[0]["id"])
    for url in (f"/tasks/{task_id}", f"/tasks/{task_id}.json", status["download"]):
        assert wapu_fin.get(url).status_code == 404, url
    assert f"/tasks/{task_id}" not in wapu_fin.get("/tasks").get_data(as_text=True)
    assert wapu_fin.post(f"/billing/months/{KEY}/workbook").status_code == 403
    anonymous = app.test_client()
    assert anonymous.get(f"/tasks/{task_id}.json").status_code == 302


def test_an_expired_file_is_refused_then_pruned(app, month, login_as):
    fin = login_as(Role.DIST_FIN)
    status, _ = file_from_task(fin, f"/billing/months/{KEY}/workbook")
    with app.app_context(), unit_of_work():
        task = db.session.get(BackgroundTask, status["id"])
        file_id, task.expires_at = task.file_id, utcnow() - timedelta(minutes=1)
    answer = fin.get(status["download"], follow_redirects=True)
    assert answer.status_code == 200 and "tidak tersedia lagi" in answer.get_data(as_text=True)
    with app.app_context():
        assert prune_records_job()["task_files_deleted"] == 1
        assert db.session.get(StoredFile, file_id) is None
        assert db.session.get(BackgroundTask, status["id"]).file_id is None


def worker(app, tmp_path, **settings):
    env = {**cli_env(app, tmp_path), "SCM_QUEUE_URL": app.config["QUEUE_URL"], "PYTHONUNBUFFERED": "1",
           **{f"SCM_{key}": str(value) for key, value in settings.items()}}
    log = open(tmp_path / f"worker-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen([str(FLASK), "--app", "wsgi", "queue", "worker", "--threads", "1"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(app, task_id, condition, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            task = db.session.get(BackgroundTask, task_id)
            if condition(task):
                return task
            db.session.remove()
        time.sleep(0.1)
    pytest.fail(f"task {task_id} never got there")


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_a_worker_process_runs_the_queued_work(app, month, login_as, queued, tmp_path):
    fin = login_as(Role.DIST_FIN)
    task_id = int(fin.post(f"/billing/months/{KEY}/workbook").headers["Location"].rsplit("/", 1)[1])
    process = worker(app, tmp_path)
    try:
        wait_for(app, task_id, lambda task: task.finished)
    finally:
        stop(process)
    status = fin.get(f"/tasks/{task_id}.json").get_json()
    assert status["state"] == "done", status
    book = load_workbook(io.BytesIO(fin.get(status["download"]).data), read_only=True)
    assert sum(1 for sheet in book.worksheets[1:] for _ in sheet.iter_rows(min_row=2)) == sum(STAMPS.values())


@pytest.mark.timeout(240)
def test_a_killed_workers_task_completes_once_on_another_worker(app, month, login_as, queued, tmp_path):
    fin = login_as(Role.DIST_FIN)
    file_from_task(fin, f"/billing/months/{KEY}/run")
    with app.app_context():
        run_task(db.session.execute(select(BackgroundTask.id)).scalar_one())
    task_id = int(fin.post(f"/billing/months/{KEY}/issue").headers["Location"].rsplit("/", 1)[1])
    slow = {"TASK_STEP_DELAY": 1.5, "TASK_LEASE_SECONDS": 3}
    first = worker(app, tmp_path, **slow)
    try:
        wait_for(app, task_id, lambda task: task.state == TaskState.RUNNING and task.done >= 1)
        first.kill()  # SIGKILL: no goodbye, its lease stays until it runs out
        first.wait(timeout=10)
    finally:
        stop(first)
    with app.app_context():
        assert db.session.get(BackgroundTask, task_id).state == TaskState.RUNNING
        issued_before = sum(1 for i in month_invoices(app) if not i.is_draft)
    assert 1 <= issued_before < 3
    second = worker(app, tmp_path, **slow)
    try:
        time.sleep(3.5)  # the dead worker's lease runs out
        with app.app_context():
            app.config["TASK_LEASE_SECONDS"] = 3
            assert requeue_tasks_job()["requeued"] == 1
        task = wait_for(app, task_id, lambda task: task.finished)
    finally:
        stop(second)
    assert (task.state, task.attempts, task.result["issued"]) == (TaskState.DONE, 2, 3)
    with app.app_context():
        invoices = month_invoices(app)
        numbers = [i.number for i in invoices]
        assert all(numbers) and len(set(numbers)) == 3
        assert sorted(int(n.rsplit("/", 1)[1]) for n in numbers) == [1, 2, 3]  # gapless: nothing issued twice
        assert len(db.session.execute(select(AuditLog).where(AuditLog.action == "invoice.issued")).all()) == 3
        assert set(stored(app)) == {i.id for i in invoices}
        mail = Counter(db.session.execute(select(OutboxEmail.to_address, OutboxEmail.body)).all())
        assert mail and max(mail.values()) == 1  # each invoice's mail once to each recipient


def test_readiness_and_metrics_tell_of_the_queue(app, month, login_as, queued):
    from tests.fixtures import free_port

    login_as(Role.DIST_FIN).post(f"/billing/months/{KEY}/workbook")  # no worker runs: it waits
    probe = app.test_client()
    ready = probe.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["queue"] == "ok"
    scrape = probe.get("/metrics").get_data(as_text=True)
    assert 'scm_background_tasks{state="queued"} 1.0' in scrape and 'scm_background_tasks{state="running"} 0.0' in scrape
    assert "scm_oldest_waiting_task_age_seconds" in scrape
    app.config["QUEUE_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # a Redis that does not answer
    make_queue(app)
    down = probe.get("/readyz")
    assert down.status_code == 503 and down.get_json()["checks"]["queue"].startswith("unavailable")


def test_a_large_export_is_prepared_in_the_queue_with_the_same_filters(app, month, login_as):
    from tests.integration.api_helpers import give_quota

    for i, wapu in enumerate(month):
        give_quota(app, wapu["id"], 10 + i, key=f"po-{i}")
    admin = login_as(Role.DIST_ADMIN)
    small = admin.get("/admin/audit/export.csv?action=quota.")
    assert small.mimetype == "text/csv"  # a few rows: at once
    app.config["EXPORT_INLINE_ROWS"] = 2
    ask = admin.get("/admin/audit/export.xlsx?action=quota.")
    assert ask.status_code == 200 and 'data-testid="export-confirm"' in ask.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(BackgroundTask)).scalar() == 0  # a GET starts nothing
    status, workbook = file_from_task(admin, "/admin/audit/export.xlsx?action=quota.")
    assert status["state"] == "done" and status["summary"] == "3 baris."
    rows = list(load_workbook(io.BytesIO(workbook.data), read_only=True).active.iter_rows(values_only=True))
    assert rows[0][0] == "Waktu (WIB)" and len(rows) == 4  # the header in Indonesian, and the 3 filtered rows
    assert {row[3] for row in rows[1:]} == {"quota.issue"}


def test_a_wapus_large_history_export_holds_its_own_stamps_only(app, month, login_as):
    app.config["EXPORT_INLINE_ROWS"] = 5
    own = login_as(Role.WAPU_FIN, wapu_id=month[1]["id"])
    assert 'data-testid="export-confirm"' in own.get("/usage/export.xlsx?state=stamped").get_data(as_text=True)
    status, workbook = file_from_task(own, "/usage/export.xlsx?state=stamped")
    assert status["state"] == "done" and status["summary"] == f"{STAMPS[1]} baris."
    rows = list(load_workbook(io.BytesIO(workbook.data), read_only=True).active.iter_rows(min_row=2, values_only=True))
    assert len(rows) == STAMPS[1] and {row[1] for row in rows} == {month[1]["code"]}  # its own WAPU, nobody else's
    other = login_as(Role.WAPU_FIN, wapu_id=month[0]["id"])
    assert other.get(f"/tasks/{status['id']}").status_code == 404 and other.get(status["download"]).status_code == 404
