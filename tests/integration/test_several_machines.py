"""More than one machine: two gunicorn web nodes on different ports, two queue workers and one
scheduler, sharing one throwaway PostgreSQL and one Redis (Debian's redis-server in a temp folder).

A person's requests go to either node (a load balancer may pick any): a usage file uploaded on A is
checked by a worker, previewed on B and applied through A, a workbook started on A downloads from B, a contract uploaded on A downloads from B;
stamps sent alternately to A and B reconcile exactly; a worker SIGKILLed mid-task leaves its task
to the other worker, which completes it once. Runs in the PostgreSQL pass of the suite.
"""

import csv
import io
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from openpyxl import load_workbook
from sqlalchemy import select

from scm.auth.models import Role
from scm.billing.models import Invoice, InvoiceState
from scm.billing.usage import add_months, month_bounds, month_key, month_of
from scm.core.formatting import WIB, today_wib
from scm.core.models import AuditLog, BackgroundTask, TaskState
from scm.extensions import db
from scm.stamping.models import Stamp, StampState
from tests.fixtures import free_port, stop_process_groups
from tests.fixtures.factories import PASSWORD, insert_stamps, pdf_bytes
from tests.integration.api_helpers import give_quota, new_token, wait_for_port

pytestmark = [pytest.mark.postgresql_only, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).with_name("flask")
LAST = add_months(month_of(today_wib()), -1)
KEY = month_key(LAST)


class System:
    """The processes of the two machines, their logs, and a browser-like session per person."""

    def __init__(self, app, redis_url, tmp_path):
        self.tmp_path, self.processes, self.logs = tmp_path, {}, {}
        self.env = {**os.environ, "SCM_ENV": "testing", "SECRET_KEY": "one-secret-for-every-node",
                    "SCM_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SCM_QUEUE_URL": redis_url,
                    "SCM_RATELIMIT_STORAGE_URL": redis_url, "SCM_TASK_LEASE_SECONDS": "3",
                    "SCM_TASK_SWEEP_SECONDS": "1", "SCM_TASK_STEP_DELAY": "0.4", "SCM_MAIL_SEND_ON_COMMIT": "0",
                    "SCM_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1"}
        self.ports = {}

    def start(self, name, *args):
        log = open(self.tmp_path / f"{name}.log", "w")
        self.logs[name] = self.tmp_path / f"{name}.log"
        self.processes[name] = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def web(self, name):
        port = self.ports[name] = free_port()
        self.start(name, sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app")
        assert wait_for_port(port, timeout=60, alive=lambda: self.processes[name].poll() is None), self.log(name)

    def url(self, node, path):
        return f"http://127.0.0.1:{self.ports[node]}{path}"

    def log(self, name):
        return self.logs[name].read_text()

    def stop(self):
        stop_process_groups(self.processes.values())


@pytest.fixture
def system(app, redis_url, tmp_path):
    machines = System(app, redis_url, tmp_path)
    try:
        machines.web("A")
        machines.web("B")
        for name in ("worker1", "worker2"):
            machines.start(name, str(FLASK), "--app", "wsgi", "queue", "worker", "--threads", "1")
        machines.start("scheduler", str(FLASK), "--app", "wsgi", "scheduler", "run")
        yield machines
    finally:
        machines.stop()


class Person:
    """A logged-in person whose requests go to node A or B (one cookie jar, as in one browser)."""

    def __init__(self, system, email):
        self.system, self.http = system, requests.Session()
        form = self.form("A", "/login")
        answer = self.http.post(system.url("A", "/login"), allow_redirects=False,
                                data={"csrf_token": form, "email": email, "password": PASSWORD})
        assert answer.status_code == 302, answer.text[:500]

    def form(self, node, path):
        """The CSRF token of the form on ``path`` as node ``node`` serves it."""
        page = self.http.get(self.system.url(node, path))
        assert page.status_code == 200, (path, page.status_code)
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)

    def get(self, node, path, **kwargs):
        return self.http.get(self.system.url(node, path), **kwargs)

    def post(self, node, path, **kwargs):
        return self.http.post(self.system.url(node, path), allow_redirects=False, **kwargs)


def wait_for_task(person, node, task_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = person.get(node, f"/tasks/{task_id}.json").json()
        if status["finished"]:
            return status
        time.sleep(0.2)
    pytest.fail(f"task {task_id} did not finish; workers: "
                f"{person.system.log('worker1')[-3000:]} {person.system.log('worker2')[-3000:]}")


def task_id_of(answer):
    assert answer.status_code == 302, answer.status_code
    return int(re.search(r"/tasks/(\d+)$", answer.headers["Location"]).group(1))


def test_two_nodes_two_workers_and_a_scheduler_share_the_work(app, factory, system, tmp_path):
    admin = Person(system, factory.user(Role.DIST_ADMIN))
    fin = Person(system, factory.user(Role.DIST_FIN))
    wapus = [factory.wapu() for _ in range(3)]
    start = datetime(LAST.year, LAST.month, 2, 3, tzinfo=timezone.utc)
    with app.app_context():
        for wapu in wapus:
            insert_stamps(wapu["id"], [start + timedelta(minutes=5 * i) for i in range(30)])

    # A usage file previewed on A is applied on B.
    stamped = (datetime.now(WIB) - timedelta(days=1)).replace(microsecond=0).isoformat()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["serial", "wapu_code", "stamped_at", "document_type", "status", "document_number"])
    give_quota(app, wapus[0]["id"], 100, key="po-usage")
    writer.writerows([[f"USG{i:04d}", wapus[0]["code"], stamped, "surat_perjanjian", "stamped", f"D/{i}"]
                      for i in range(8)])
    token = admin.form("A", "/usage/import")
    check = task_id_of(admin.post("A", "/usage/import", data={"csrf_token": token},
                                  files={"file": ("usage.csv", out.getvalue().encode(), "text/csv")}))
    assert wait_for_task(admin, "B", check)["state"] == "done"  # checked by a worker
    preview = admin.get("B", f"/usage/import/{check}")  # the preview, from the other node
    assert preview.status_code == 200 and 'data-testid="import-preview"' in preview.text, preview.text[:2000]
    held = re.search(r'name="token" type="hidden" value="([0-9a-f]{32})"', preview.text).group(1)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', preview.text).group(1)
    apply = task_id_of(admin.post("A", "/usage/import/apply", data={"csrf_token": csrf, "token": held}))
    assert wait_for_task(admin, "B", apply)["state"] == "done"
    applied = admin.get("A", f"/usage/import/{apply}")
    assert re.search(r'data-wapu="total">.*?data-result="applied">8<', applied.text, re.S), applied.text[:2000]
    with app.app_context():
        assert len(db.session.execute(select(Stamp.id).where(Stamp.serial.like("USG%"))).all()) == 8

    # A contract uploaded on A downloads from B, byte for byte.
    contract = pdf_bytes("Perpanjangan dua node")
    token = admin.form("A", f"/wapus/{wapus[1]['id']}/contracts/new")
    answer = admin.post("A", f"/wapus/{wapus[1]['id']}/contracts/new", files={
        "contract_file": ("perpanjangan.pdf", contract, "application/pdf")}, data={
        "csrf_token": token, "number": "KTR/2NODE/2030", "kind": "renewal", "start_date": "2030-01-01",
        "end_date": "2030-12-31"})
    assert answer.status_code == 302, answer.text[:2000]
    with app.app_context():
        from scm.registration.models import Contract

        contract_id = db.session.execute(select(Contract.id).where(Contract.number == "KTR/2NODE/2030")).scalar_one()
    assert admin.get("B", f"/contracts/{contract_id}/file").content == contract

    # Stamps sent alternately to A and B reconcile exactly.
    give_quota(app, wapus[2]["id"], 40, key="po-api")
    headers = {"Authorization": f"Bearer {new_token(app, wapus[2]['id'])}"}
    for i in range(20):
        node = "AB"[i % 2]
        serial = f"API{i:04d}"
        reserved = requests.post(system.url(node, "/api/v1/stamps"), headers=headers,
                                 json={"serial": serial, "document_type": "surat_perjanjian"})
        assert reserved.status_code == 201, reserved.text
        committed = requests.post(system.url("BA"[i % 2], f"/api/v1/stamps/{serial}/commit"), headers=headers)
        assert committed.status_code == 200, committed.text
    verify = subprocess.run([str(FLASK), "--app", "wsgi", "quota", "verify"], cwd=ROOT, env=system.env,
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    with app.app_context():
        assert len(db.session.execute(select(Stamp.id).where(Stamp.serial.like("API%"),
                                                             Stamp.state == StampState.STAMPED)).all()) == 20

    # The month's billing, then a workbook started on A downloads from B.
    billing = task_id_of(fin.post("A", f"/billing/months/{KEY}/run",
                                  data={"csrf_token": fin.form("A", f"/billing/months/{KEY}")}))
    assert wait_for_task(fin, "B", billing)["state"] == "done"
    workbook = task_id_of(fin.post("A", f"/billing/months/{KEY}/workbook",
                                   data={"csrf_token": fin.form("A", f"/billing/months/{KEY}")}))
    status = wait_for_task(fin, "B", workbook)
    assert status["state"] == "done", status
    book = load_workbook(io.BytesIO(fin.get("B", status["download"]).content), read_only=True)
    first, end = month_bounds(LAST)
    with app.app_context():  # 90, and the usage file's 8 when yesterday (WIB) was last month
        expected = len(db.session.execute(select(Stamp.id).where(
            Stamp.state == StampState.STAMPED, Stamp.stamped_at >= first, Stamp.stamped_at < end)).all())
    assert expected >= 90
    assert sum(1 for sheet in book.worksheets[1:] for _ in sheet.iter_rows(min_row=2)) == expected

    # Issue all: the worker that takes it is SIGKILLed half-way; the other completes it, once.
    issue = task_id_of(fin.post("B", f"/billing/months/{KEY}/issue",
                                data={"csrf_token": fin.form("B", f"/billing/months/{KEY}")}))
    deadline = time.monotonic() + 60
    holder = None
    while time.monotonic() < deadline:
        with app.app_context():
            task = db.session.get(BackgroundTask, issue)
            if task.state == TaskState.RUNNING and task.done >= 1:
                holder = task.holder
                break
            db.session.remove()
        time.sleep(0.1)
    assert holder, "no worker took the issue task"
    victim = next(name for name in ("worker1", "worker2") if f":{system.processes[name].pid}:" in holder)
    os.killpg(system.processes[victim].pid, signal.SIGKILL)
    status = wait_for_task(fin, "A", issue)
    assert status["state"] == "done", status
    with app.app_context():
        task = db.session.get(BackgroundTask, issue)
        assert task.attempts == 2 and victim not in task.holder and f":{system.processes[victim].pid}:" not in task.holder
        invoices = db.session.execute(select(Invoice).where(Invoice.period == LAST)).scalars().all()
        assert [i.state for i in invoices] == [InvoiceState.ISSUED] * 3
        assert sorted(int(i.number.rsplit("/", 1)[1]) for i in invoices) == [1, 2, 3]
        assert len(db.session.execute(select(AuditLog.id).where(AuditLog.action == "invoice.issued")).all()) == 3
    assert "requeue-tasks" in system.log("scheduler")
