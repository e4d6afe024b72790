"""Month-end benchmark: the whole month end of a distributor's size, through HTTP, on the real processes.

    .venv/bin/python bench/monthend.py [--wapus 400] [--stamps 200000] [--postgres]

Loads ``--wapus`` WAPUs (each with a contract, an SPV and a FIN user) and ``--stamps`` stamped
e-Meterai of last month (bulk rows equal to what the app writes: ``bench/billing.py``'s ``load``),
then starts the system as production runs it: gunicorn with its default timeout (30 s), 2 sync
workers, serving ``wsgi:app``, and ``flask queue worker``. SQLite by default (the queue on
``sqlite:///``), or ``--postgres``: a throwaway PostgreSQL cluster and redis-server in temp folders,
two gunicorn nodes (requests alternate between them) and two queue workers.

As a DIST_FIN user (``requests.Session``, logged in through the /login form) it runs billing, issues
all, and downloads the month ZIP, the combined PDF and the workbook; each click loads the month page
for its CSRF token, posts, polls ``/tasks/N.json`` and downloads the file. For each step it prints
the wall time from click to file, the slowest single request (target: every request < 2 s) and the
peak RSS of the web and worker processes (sampled VmRSS during the step; VmHWM at the end).

Then, in process on the same database, the PDF figures with their naive limit in the same run:
  worker render+store per invoice (the issue task's PDF phase / invoices) against a naive
  one-document ``HTML(string=...).write_pdf()`` (stylesheet linked, parsed every time:
  ``bench/billing_exports.py``'s ``naive_pdfs``) and against ``render_invoice_pdf`` (cached setup);
  the month ZIP from the stored PDFs (``documents.month_zip``) against rendering every invoice
  again with ``render_invoice_pdf`` and zipping.
"""

import argparse
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.billing import load, make_app  # noqa: E402
from bench.billing_exports import naive_pdfs  # noqa: E402

MAX_REQUEST = 2.0  # seconds: no request may take longer
POLL = 0.25  # seconds between two polls of a task's state, as the progress page does (more or less)
TASK_TIMEOUT = 3600
PDF_SAMPLE = 20  # invoices rendered in process by each of render_invoice_pdf and the naive way
FLASK = Path(sys.executable).with_name("flask")


# ---------------------------------------------------------------------------------- data


def last_month():
    from scm.billing.usage import add_months, month_bounds, month_of
    from scm.core.formatting import today_wib

    period = add_months(month_of(today_wib()), -1)
    return period, *month_bounds(period)


def load_month(app, wapus, stamps):
    """bench/billing.py's WAPUs, contracts and stamps (of last month), plus an SPV and a FIN user per WAPU
    (who get the issue mail), customers since 1 January, and the DIST_FIN user who clicks."""
    from sqlalchemy import insert, update

    from scm.auth.models import Role, User
    from scm.auth.services import hash_password
    from scm.core.database import unit_of_work
    from scm.extensions import db
    from scm.registration.models import Wapu
    from tests.fixtures.factories import PASSWORD, Factory

    period, start, end = last_month()
    load(app, wapus, stamps, start, end)
    with app.app_context(), unit_of_work():
        ids = db.session.execute(db.select(Wapu.id).order_by(Wapu.id)).scalars().all()
        db.session.execute(update(Wapu).values(created_at=datetime(period.year, 1, 1, 2, tzinfo=timezone.utc)))
        password = hash_password(PASSWORD)
        db.session.execute(insert(User), [
            dict(email=f"{role.value.lower()}.{wapu_id}@wapu.example.com", name=f"{role.value} {wapu_id}", role=role,
                 wapu_id=wapu_id, password_hash=password, must_change_password=False, active=True)
            for wapu_id in ids for role in (Role.WAPU_SPV, Role.WAPU_FIN)])
    return period, Factory(app).user(Role.DIST_FIN), PASSWORD


# ---------------------------------------------------------------------------------- processes


class RedisServer:
    """A throwaway redis-server in a temp folder, as tests/fixtures/redis.py starts it."""

    def start(self):
        import redis

        from tests.fixtures import free_port

        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.dir, port = tempfile.mkdtemp(prefix="scm-bench-redis-"), free_port()
        self.process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
                                         "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()
        return f"redis://127.0.0.1:{port}/0"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class System:
    """gunicorn web nodes and queue workers, as production starts them (tests/integration/test_several_machines.py)."""

    def __init__(self, folder, database_url, queue_url):
        self.folder, self.processes, self.ports = folder, {}, {}
        self.env = {**os.environ, "SCM_ENV": "production", "SECRET_KEY": secrets.token_hex(32),
                    "SCM_DATABASE_URL": database_url, "SCM_QUEUE_URL": queue_url,
                    "SCM_INSTANCE_PATH": str(folder / "instance"), "SCM_UPLOAD_FOLDER": str(folder / "uploads"),
                    "SCM_SESSION_COOKIE_SECURE": "0", "SCM_HSTS_SECONDS": "0", "SCM_LOG_FORMAT": "text",
                    "SCM_MAIL_BACKEND": "log",  # the ~800 issue mails are sent (to the log) after each commit
                    "SCM_DISTRIBUTOR_NPWP": "013000666091000", "SCM_DISTRIBUTOR_BANK_NAME": "Bank Mandiri",
                    "SCM_DISTRIBUTOR_BANK_ACCOUNT": "1230009876543",
                    "SCM_DISTRIBUTOR_BANK_HOLDER": "PT Distributor Meterai Nusantara", "PYTHONUNBUFFERED": "1"}
        if queue_url.startswith("redis://"):
            self.env["SCM_RATELIMIT_STORAGE_URL"] = queue_url

    def start(self, name, *args):
        log = open(self.folder / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def web(self, name):
        from tests.fixtures import free_port
        from tests.integration.api_helpers import wait_for_port

        port = self.ports[name] = free_port()
        self.start(name, sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app")
        if not wait_for_port(port, timeout=60, alive=lambda: self.processes[name].poll() is None):
            raise SystemExit(f"gunicorn {name} did not start:\n{self.log(name)[-3000:]}")

    def warm_up(self):
        """Until both gunicorn workers of every node answer /healthz (the port opens before they have
        imported the app): a booting worker is not part of the month end."""
        from concurrent.futures import ThreadPoolExecutor

        import requests

        urls = [f"http://127.0.0.1:{port}/healthz" for port in self.ports.values() for _ in range(4)]
        start = time.perf_counter()
        with ThreadPoolExecutor(len(urls)) as pool:
            answers = list(pool.map(lambda url: requests.get(url, timeout=120).status_code, urls))
        return time.perf_counter() - start, answers

    def worker(self, name):
        self.start(name, str(FLASK), "--app", "wsgi", "queue", "worker")

    def log(self, name):
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def pids(self, kind):
        """The gunicorn workers of every web node (children of each master), or the queue workers."""
        found = []
        for name, process in self.processes.items():
            if name.startswith(kind):
                if kind == "web":
                    try:
                        found += [int(p) for p in Path(f"/proc/{process.pid}/task/{process.pid}/children")
                                  .read_text().split()]
                    except OSError:
                        pass
                else:
                    found.append(process.pid)
        return found

    def stop(self):
        from tests.fixtures import stop_process_groups

        stop_process_groups(self.processes.values())


def status_kb(pid, field):
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


class MemorySampler(threading.Thread):
    """Samples VmRSS of the web and worker processes 10 times a second; ``peaks()`` since the last reset."""

    def __init__(self, system):
        super().__init__(daemon=True)
        self.system, self.stopped = system, threading.Event()
        self.lock, self.peak, self.hwm = threading.Lock(), {}, {}

    def run(self):
        while not self.stopped.wait(0.1):
            for kind in ("web", "worker"):
                for pid in self.system.pids(kind):
                    rss, hwm = status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM")
                    with self.lock:
                        self.peak[kind] = max(self.peak.get(kind, 0), rss)
                        self.hwm[(kind, pid)] = max(self.hwm.get((kind, pid), 0), hwm)

    def reset(self):
        with self.lock:
            self.peak = {}

    def peaks(self):
        with self.lock:
            return dict(self.peak)

    def high_water(self, kind):
        with self.lock:
            return max((kb for (k, _), kb in self.hwm.items() if k == kind), default=0)


# ---------------------------------------------------------------------------------- the person


class Person:
    """DIST_FIN in a browser: one cookie jar; each request goes to the next node (a round-robin balancer)
    and is timed from send to the last byte of the answer."""

    def __init__(self, system, email, password):
        import requests

        self.system, self.http, self.turn, self.times = system, requests.Session(), 0, []
        token = self.csrf("/login")
        answer = self.request("post", "/login", data={"csrf_token": token, "email": email, "password": password})
        if answer.status_code != 302:
            raise SystemExit(f"login failed: {answer.status_code} {answer.text[:500]}")

    def request(self, method, path, **kwargs):
        nodes = sorted(self.system.ports)
        node = nodes[self.turn % len(nodes)]
        self.turn += 1
        start = time.perf_counter()
        answer = self.http.request(method, f"http://127.0.0.1:{self.system.ports[node]}{path}",
                                   allow_redirects=False, timeout=120, **kwargs)
        answer.content  # noqa: B018 (the body is read before the clock stops)
        self.times.append((time.perf_counter() - start, f"{method.upper()} {path} [{node}] {answer.status_code}"))
        return answer

    def csrf(self, path):
        page = self.request("get", path)
        if page.status_code != 200:
            raise SystemExit(f"GET {path}: {page.status_code}")
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)

    def click(self, month, action):
        """Load the month page, post ``action``; the id of the task it started."""
        token = self.csrf(f"/billing/months/{month}")
        answer = self.request("post", f"/billing/months/{month}/{action}", data={"csrf_token": token})
        found = re.search(r"/tasks/(\d+)$", answer.headers.get("Location", ""))
        if answer.status_code != 302 or not found:
            raise SystemExit(f"{action}: {answer.status_code} {answer.headers.get('Location')} {answer.text[:500]}")
        return int(found.group(1))

    def wait(self, task_id):
        """Poll until the task finishes; its last status and when each step was first seen."""
        steps, deadline = {}, time.monotonic() + TASK_TIMEOUT
        while time.monotonic() < deadline:
            status = self.request("get", f"/tasks/{task_id}.json").json()
            steps.setdefault(status.get("step") or "", time.perf_counter())
            if status["finished"]:
                return status, steps
            time.sleep(POLL)
        raise SystemExit(f"task {task_id} did not finish in {TASK_TIMEOUT} s")


# ---------------------------------------------------------------------------------- the month end


def check_file(action, data, invoices):
    if action == "invoices-zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return f"{len(archive.namelist())} PDFs" + ("" if len(archive.namelist()) == invoices else " WRONG COUNT")
    if action == "invoices-pdf":
        from pypdf import PdfReader

        pages = len(PdfReader(io.BytesIO(data)).pages)
        return f"{pages} pages" + ("" if pages >= invoices else " TOO FEW")
    return "xlsx" if data[:2] == b"PK" else "NOT A ZIP/XLSX"


def month_end(system, person, month, sampler, expected):
    """The five clicks; returns (per-step rows, issue task's PDF phase in seconds, invoices issued)."""
    rows, pdf_phase, invoices = [], None, expected
    for label, action in (("billing run", "run"), ("issue all", "issue"), ("month ZIP", "invoices-zip"),
                          ("combined PDF", "invoices-pdf"), ("workbook", "workbook")):
        sampler.reset()
        first = len(person.times)
        start = time.perf_counter()
        task_id = person.click(month, action)
        status, steps = person.wait(task_id)
        note = status["summary"] or status["error"]
        if status["state"] != "done":
            print(f"  !! {label}: task {task_id} {status['state']}: {status['error']}")
            for name in system.processes:
                if name.startswith("worker"):
                    print(system.log(name)[-3000:])
        elif status["download"]:
            data = person.request("get", status["download"]).content
            note = f"{len(data) / 1e6:.1f} MB, {check_file(action, data, invoices)}"
        wall = time.perf_counter() - start
        if action == "issue" and status["state"] == "done":
            invoices = int(re.search(r"\d+", status["summary"]).group(0)) if status["summary"] else expected
            seen = sorted(steps.items(), key=lambda item: item[1])
            if len(seen) >= 2:  # the last step seen is the PDF phase ("Storing the invoice PDFs")
                pdf_phase = (start + wall) - seen[-1][1]
        slowest = max(person.times[first:])
        peaks = sampler.peaks()
        rows.append((label, wall, slowest, len(person.times) - first, peaks.get("web", 0), peaks.get("worker", 0)))
        print(f"  {label:<13} {wall:7.1f} s click to file   slowest request {slowest[0]:5.2f} s "
              f"({len(person.times) - first} requests)   peak RSS web {peaks.get('web', 0) / 1024:5.0f} MB, "
              f"worker {peaks.get('worker', 0) / 1024:5.0f} MB   [{status['state']}: {note}]", flush=True)
    return rows, pdf_phase, invoices


def in_process_pdfs(app, period, pdf_phase, invoices_issued):
    """render_invoice_pdf and the naive render per invoice, and the ZIP from stored PDFs vs rendering all."""
    from flask import current_app

    from scm.billing import documents, exports
    from scm.billing.tasks import issued_invoices

    with app.app_context():
        invoices = issued_invoices(period)
        sample = invoices[:PDF_SAMPLE]
        exports.render_invoice_pdf(sample[0]), naive_pdfs(sample[:1], current_app.static_folder)  # warm up both
        cached = naive = 0.0
        for invoice in sample:  # alternated, so that a change in the machine's load hits both
            start = time.perf_counter()
            exports.render_invoice_pdf(invoice)
            cached += (time.perf_counter() - start) / len(sample)
            start = time.perf_counter()
            naive_pdfs([invoice], current_app.static_folder)
            naive += (time.perf_counter() - start) / len(sample)
        start = time.perf_counter()
        stored_zip = documents.month_zip(invoices)
        from_store = time.perf_counter() - start
        start = time.perf_counter()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for invoice in invoices:
                archive.writestr(exports.invoice_file_name(invoice), exports.render_invoice_pdf(invoice))
        rendered = time.perf_counter() - start
    print(f"\n== Invoice PDFs ({len(invoices)} issued; {len(sample)} rendered each way in process, alternated) ==")
    if pdf_phase:
        worker = pdf_phase / invoices_issued
        print(f"  worker render+store        {worker * 1000:7.1f} ms per invoice   naive {naive * 1000:7.1f} ms   "
              f"ratio {worker / naive:.3f}   (issue task's PDF phase {pdf_phase:.1f} s / {invoices_issued}, "
              f"poll resolution {POLL} s)")
    print(f"  render_invoice_pdf         {cached * 1000:7.1f} ms per invoice   naive {naive * 1000:7.1f} ms   "
          f"ratio {cached / naive:.3f}")
    print(f"  month ZIP from stored PDFs {from_store:7.2f} s   rendering again {rendered:7.1f} s   "
          f"ratio {from_store / rendered:.4f}   ({len(stored_zip) / 1e6:.1f} MB vs {len(buffer.getvalue()) / 1e6:.1f} MB)")


def run(folder, database_url, queue_url, nodes, args):
    app = make_app(database_url, folder / "uploads")
    start = time.perf_counter()
    period, email, password = load_month(app, args.wapus, args.stamps)
    from scm.billing.usage import month_key
    from scm.extensions import db

    with app.app_context():
        db.engine.dispose()
    print(f"loaded {args.wapus} WAPUs, {args.wapus * 2} WAPU users and {args.stamps:,} stamps of "
          f"{month_key(period)} in {time.perf_counter() - start:.1f} s", flush=True)
    system = System(folder, database_url, queue_url)
    sampler = MemorySampler(system)
    try:
        for n in range(nodes):
            system.web(f"web{'AB'[n]}")
        for n in range(nodes):
            system.worker(f"worker{n + 1}")
        sampler.start()
        warm, answers = system.warm_up()
        print(f"web nodes answered /healthz in {warm:.1f} s after their port opened ({answers})", flush=True)
        print(f"{nodes} gunicorn node(s) x 2 sync workers (default timeout 30 s), {nodes} queue worker(s) "
              f"(default threads), queue {queue_url.split(':')[0]}", flush=True)
        person = Person(system, email, password)
        rows, pdf_phase, invoices = month_end(system, person, month_key(period), sampler, args.wapus)
        total = sum(row[1] for row in rows)
        slowest = max(person.times)
        over = [(t, what) for t, what in person.times if t >= MAX_REQUEST]
        print(f"  {'month end':<13} {total:7.1f} s in all;  {len(person.times)} requests, slowest {slowest[0]:.2f} s "
              f"({slowest[1]}): {'every request < 2 s' if not over else f'{len(over)} OVER 2 s: {over[:5]}'}")
        print(f"  peak RSS over the run (VmHWM): web worker {sampler.high_water('web') / 1024:.0f} MB, "
              f"queue worker {sampler.high_water('worker') / 1024:.0f} MB")
        sampler.stopped.set()
        for name in system.processes:
            text = system.log(name)
            problems = [word for word in ("WORKER TIMEOUT", "Traceback", " ERROR ", "failed") if word in text]
            if problems:
                print(f"  !! {name}.log mentions {problems}")
    finally:
        sampler.stopped.set()
        system.stop()
    in_process_pdfs(app, period, pdf_phase, invoices)
    with app.app_context():
        db.engine.dispose()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wapus", type=int, default=400)
    parser.add_argument("--stamps", type=int, default=200_000, help="stamps of last month (the issue's size: 2000000)")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL + Redis, two web nodes and two workers (default: SQLite, one of each)")
    args = parser.parse_args()
    print(f"SCM Meterai month-end benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {'PostgreSQL + Redis' if args.postgres else 'SQLite'}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="scm-bench-monthend-"))
    try:
        if args.postgres:
            from tests.fixtures.database import PostgresCluster

            cluster, redis_server = PostgresCluster(), RedisServer()
            try:
                url = cluster.start("scm_bench")
                run(folder, url, redis_server.start(), 2, args)
            finally:
                cluster.stop()
                if hasattr(redis_server, "process"):
                    redis_server.stop()
        else:
            run(folder, f"sqlite:///{folder / 'scm.sqlite3'}", f"sqlite:///{folder / 'queue.sqlite3'}", 1, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
