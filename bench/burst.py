"""Stamping over HTTP at a peak: the app against a bare Flask app running the same SQL, in the same run.

    .venv/bin/python bench/burst.py [--seconds 30] [--clients 32] [--workers 2] [--threads 4]
                                    [--classes sync,gthread] [--rounds 2] [--postgres | --no-postgres]
                                    [--profile]

``--clients`` clients (spread over two client processes, threads in each) reserve and then commit one
stamp after another for ``--seconds`` against a gunicorn server on 127.0.0.1, with ``--workers``
workers of each class in ``--classes`` (``gthread`` with ``--threads`` threads each). Each client
opens a new connection per request (gunicorn's sync workers close it anyway).

* **app**: the product as it runs in production (``SCM_ENV=production``: JSON access log, metrics in
  ``PROMETHEUS_MULTIPROC_DIR``, the API's rate limit raised out of the way but still counted), on a
  database migrated by Alembic, with a WAPU registered through the services, quota and an API token.
* **bare**: a Flask app of a dozen lines per route on one raw DB-API connection per worker thread
  (sqlite3 with the app's pragmas, or psycopg), on a copy of the same database, running the SQL the
  app's success path needs: the token by its hash; then in one transaction the stamp's INSERT, the
  guarded account UPDATE, the ledger entry and the usage summary's upsert (reserve), or the guarded
  stamp UPDATE, the account, the entry and the summary (commit); the answer is the same JSON.

The two run one after the other, ``--rounds`` times each (the order rotating), so that the
machine's load hits both alike; the figures are their totals. For each it prints stamps/s (one
stamp = reserve + commit), the latency of a request (p50/p95/p99), errors, the server's CPU per
stamp (the workers' user + system time from /proc), and ``verify_books()`` (``flask quota verify``:
ledger, accounts, usage summary) on its database afterwards, plus a check that every stamp a client
saw committed is stamped and no reservation is left. Target: app >= 0.7 x bare on each database
and worker class, zero errors, the books clean.

``--profile`` records one app worker with py-spy (when installed: ``pip install py-spy``) during
the first app run and prints its hottest functions. ``--breakdown`` (alone) runs the app's and the
bare app's WSGI callables in process on SQLite, prints the CPU per stamp of each, and splits the
app's time per request by what spends it (a cProfile scaled to the unprofiled time): the token, the
view and service, the unit of work, the rate limit, the access log, metrics, headers, contexts.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stamps import request  # noqa: E402

TARGET = 0.7
QUOTA = 5_000_000
DOC_TYPE = "surat_perjanjian"
DOC_DATE = "2026-11-20T00:00:00+07:00"
TTL = timedelta(minutes=15)
CLIENT_PROCESSES = 2
TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ the two servers


def app_server():
    """gunicorn entry point for the app (settings from the environment, as in production)."""
    from scm import create_app

    return create_app("production")


def bare_server():
    """gunicorn entry point for the bare Flask app on ``BENCH_DATABASE_URL``."""
    from flask import Flask, jsonify, request

    url = os.environ["BENCH_DATABASE_URL"]
    pg = url.startswith("postgresql")
    q = Bare(pg)
    local = threading.local()
    app = Flask("bare")

    def connection():
        conn = getattr(local, "conn", None)
        if conn is None:
            if pg:
                import psycopg

                conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            else:
                conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None,
                                       check_same_thread=False)
                for pragma in ("foreign_keys=ON", "busy_timeout=30000", "journal_mode=WAL", "synchronous=NORMAL"):
                    conn.execute(f"PRAGMA {pragma}")
            local.conn = conn
        return conn

    def token(cur):
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        digest = hashlib.sha256(credentials.strip().encode()).hexdigest()
        return cur.execute(q.token, (digest,)).fetchone()

    def in_transaction(work):
        conn = connection()
        cur = conn.cursor()
        if not pg:
            cur.execute("BEGIN IMMEDIATE")
        try:
            found = token(cur)
            if found is None:
                conn.rollback()
                return jsonify({"code": "invalid_token"}), 401
            answer = work(cur, *found)
        except Exception:
            conn.rollback()
            raise
        conn.commit()
        return answer

    @app.post("/api/v1/stamps")
    def reserve():
        body = request.get_json()
        serial, number, date = body["serial"], body.get("document_number"), body.get("document_date")

        def work(cur, token_id, wapu_id):
            now = naive_now()
            stamp = cur.execute(q.insert_stamp, (
                serial, wapu_id, "reserved", body["document_type"], number, date,
                fingerprint(serial, body["document_type"], number, date), "api", token_id, q.ts(now),
                q.ts(now + TTL), None, None, None, q.ts(now), q.ts(now))).fetchone()
            today = q.day(now)
            account = cur.execute(q.reserve_account, (q.ts(now), wapu_id, today, today, today)).fetchone()
            cur.execute(q.insert_entry, (account[0], wapu_id, "reserve", 1, serial, serial, None, account[1],
                                         q.ts(now)))
            cur.execute(q.usage, (wapu_id, q.day(now), "reserved", 1))
            return jsonify(q.stamp_json(stamp)), 201

        return in_transaction(work)

    @app.post("/api/v1/stamps/<serial>/commit")
    def commit(serial):
        def work(cur, token_id, wapu_id):
            now = naive_now()
            stamp = cur.execute(q.commit_stamp, (q.ts(now), q.ts(now), serial, wapu_id, q.ts(now))).fetchone()
            account = cur.execute(q.commit_account, (q.ts(now), wapu_id)).fetchone()
            cur.execute(q.insert_entry, (account[0], wapu_id, "commit", 1, serial, serial, None, account[1],
                                         q.ts(now)))
            reserved_day = q.day(stamp[COLUMNS.index("reserved_at")])
            cur.execute(q.usage_moved, (wapu_id, reserved_day, "reserved", -1, wapu_id, q.day(now), "stamped", 1))
            return jsonify(q.stamp_json(stamp)), 200

        return in_transaction(work)

    @app.get("/api/v1/openapi.json")
    def ready():
        return jsonify({"bare": True})

    return app


COLUMNS = ("id", "serial", "wapu_id", "state", "document_type", "document_number", "document_date", "fingerprint",
           "source", "token_id", "reserved_at", "expires_at", "stamped_at", "released_at", "release_reason",
           "occurred_at", "created_at")
_RETURNING = ", ".join(COLUMNS)
_USAGE = ("INSERT INTO usage_daily (wapu_id, day, state, count) VALUES {values} ON CONFLICT (wapu_id, day, state) "
          "DO UPDATE SET count = usage_daily.count + excluded.count")


class Bare:
    """The bare app's SQL for one DB-API paramstyle (qmark for sqlite3, format for psycopg)."""

    STATEMENTS = {
        "token": "SELECT id, wapu_id FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        "insert_stamp": (
            "INSERT INTO stamps (serial, wapu_id, state, document_type, document_number, document_date, "
            "fingerprint, source, token_id, reserved_at, expires_at, stamped_at, released_at, release_reason, "
            "occurred_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (serial) DO NOTHING RETURNING {_RETURNING}"),
        "reserve_account": (
            "UPDATE quota_accounts SET available = available - 1, reserved = reserved + 1, updated_at = ? "
            "WHERE wapu_id = ? AND available >= 1 AND EXISTS (SELECT 1 FROM wapus WHERE wapus.id = "
            "quota_accounts.wapu_id AND wapus.status = 'active' AND EXISTS (SELECT 1 FROM contracts WHERE "
            "contracts.wapu_id = wapus.id AND contracts.start_date <= ? AND contracts.end_date >= ? AND "
            "(contracts.ended_from IS NULL OR contracts.ended_from > ?))) RETURNING id, available"),
        "commit_stamp": ("UPDATE stamps SET state = 'stamped', stamped_at = ?, occurred_at = ? WHERE serial = ? "
                         f"AND wapu_id = ? AND state = 'reserved' AND expires_at > ? RETURNING {_RETURNING}"),
        "commit_account": ("UPDATE quota_accounts SET reserved = reserved - 1, consumed = consumed + 1, "
                           "updated_at = ? WHERE wapu_id = ? RETURNING id, available"),
        "insert_entry": ("INSERT INTO quota_entries (account_id, wapu_id, kind, quantity, idempotency_key, reference, "
                         "actor_id, available_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        "usage": _USAGE.format(values="(?, ?, ?, ?)"),
        "usage_moved": _USAGE.format(values="(?, ?, ?, ?), (?, ?, ?, ?)"),
    }

    def __init__(self, pg):
        self.pg = pg
        for name, text in self.STATEMENTS.items():
            setattr(self, name, text.replace("?", "%s") if pg else text)

    def ts(self, moment):
        """Naive UTC as the app stores it (text on SQLite)."""
        if moment is None or self.pg:
            return moment
        return moment if isinstance(moment, str) else moment.isoformat(" ", "microseconds")

    def day(self, moment):
        """The WIB day of a naive UTC moment (a row's text on SQLite)."""
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        day = (moment + timedelta(hours=7)).date()
        return day if self.pg else day.isoformat()

    def stamp_json(self, row):
        stamp = dict(zip(COLUMNS, row, strict=True))

        def at(value):
            if value is None:
                return None
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            return value.replace(tzinfo=None).isoformat() + "Z"

        return {"serial": stamp["serial"], "state": stamp["state"], "document_type": stamp["document_type"],
                "document_number": stamp["document_number"], "document_date": stamp["document_date"],
                "reserved_at": at(stamp["reserved_at"]), "expires_at": at(stamp["expires_at"]),
                "stamped_at": at(stamp["stamped_at"]), "released_at": at(stamp["released_at"]),
                "release_reason": stamp["release_reason"], "source": stamp["source"]}


def fingerprint(*parts):
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


def naive_now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------------------------ running a server


class Gunicorn:
    def __init__(self, entry, env, log_path, worker_class, workers, threads):
        self.entry, self.env, self.log_path = entry, env, log_path
        self.worker_class, self.workers, self.threads = worker_class, workers, threads

    def start(self):
        from tests.fixtures import free_port

        self.port = free_port()
        self.log = open(self.log_path, "ab")
        command = [str(Path(sys.executable).parent / "gunicorn"), "--workers", str(self.workers),
                   "--worker-class", self.worker_class, "--bind", f"127.0.0.1:{self.port}", "--timeout", "120",
                   "--backlog", "2048", "--log-level", "warning", "--chdir", str(ROOT), self.entry]
        if self.worker_class == "gthread":
            command[1:1] = ["--threads", str(self.threads)]
        self.proc = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(self.port, "GET", "/api/v1/openapi.json")[0] == 200 and len(self.worker_pids()) == self.workers:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not start; see {self.log_path}:\n"
                                   + Path(self.log_path).read_text(errors="replace")[-3000:])
            time.sleep(0.1)

    def worker_pids(self):
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def cpu_seconds(self):
        """User + system time of the workers so far (ticks from /proc/PID/stat)."""
        total = 0
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / TICKS

    def stop(self):
        from bench.stamps import terminate

        terminate(self.proc, 30)
        self.log.close()


# ------------------------------------------------------------------------------ the clients


def client_process(port, token, prefix, threads, start_at, seconds, results):
    """``threads`` clients, each reserving then committing stamps until the time is up."""
    out = []

    def client(number):
        latencies, stamps, errors, samples, committed = [], 0, 0, [], []
        i = 0
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            serial = f"{prefix}-{number:03d}-{i:07d}"
            i += 1
            body = json.dumps({"serial": serial, "document_type": DOC_TYPE, "document_number": f"INV-{serial}",
                               "document_date": DOC_DATE}).encode()
            ok = True
            for method, path, data, expected in (("POST", "/api/v1/stamps", body, 201),
                                                 ("POST", f"/api/v1/stamps/{serial}/commit", b"{}", 200)):
                started = time.perf_counter()
                try:
                    status, answer = request(port, method, path, data, token, timeout=60)
                except OSError as error:
                    status, answer = 0, str(error).encode()
                latencies.append(time.perf_counter() - started)
                if status != expected:
                    errors += 1
                    if len(samples) < 3:
                        samples.append(f"{method} {path}: {status} {answer[:200]!r}")
                    ok = False
                    break
            if ok:
                stamps += 1
                committed.append(serial)
        out.append((latencies, stamps, errors, samples, committed))

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    latencies = [x for o in out for x in o[0]]
    results.put((latencies, sum(o[1] for o in out), sum(o[2] for o in out), [s for o in out for s in o[3]],
                 [s for o in out for s in o[4]]))


def burst(server, token, prefix, clients, seconds):
    """Run the clients against ``server``; returns their figures and the workers' CPU time."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 1.0
    per = [clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)]
    processes = [context.Process(target=client_process,
                                 args=(server.port, token, f"{prefix}{i}", n, start_at, seconds, results))
                 for i, n in enumerate(per) if n]
    for process in processes:
        process.start()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu_before = server.cpu_seconds()
    collected = [results.get() for _ in processes]
    cpu = server.cpu_seconds() - cpu_before
    for process in processes:
        process.join()
    return {"latencies": [x for c in collected for x in c[0]], "stamps": sum(c[1] for c in collected),
            "errors": sum(c[2] for c in collected), "samples": [s for c in collected for s in c[3]],
            "committed": [s for c in collected for s in c[4]], "cpu": cpu, "seconds": seconds}


# ------------------------------------------------------------------------------ the databases


def prepare(url, folder):
    """Migrate, register a WAPU through the services, issue quota, make a token; returns the token."""
    from bench.stamps import dispose, migrate
    from bench.stamps import prepare as prepare_wapu

    migrate(url, folder)
    app, _, _, plaintext = prepare_wapu(url, folder, QUOTA)
    dispose(app)
    return plaintext


def check_books(url, folder, committed):
    """``verify_books()`` on the database, and every committed serial stamped, no reservation left."""
    from sqlalchemy import func, select

    from bench.stamps import dispose, make_app
    from scm.extensions import db
    from scm.quota.services import verify_books
    from scm.stamping.models import Stamp, StampState

    app = make_app(url, folder)
    with app.app_context():
        problems = [str(m) for m in verify_books()]
        stamped = set()
        for start in range(0, len(committed), 500):
            chunk = committed[start:start + 500]
            stamped.update(db.session.execute(select(Stamp.serial).where(
                Stamp.serial.in_(chunk), Stamp.state == StampState.STAMPED)).scalars())
        missing = len(committed) - len(stamped)
        if missing:
            problems.append(f"{missing} committed stamps are not stamped")
        left = db.session.execute(select(func.count()).select_from(Stamp).where(
            Stamp.state == StampState.RESERVED)).scalar()
        if left:
            problems.append(f"{left} reservations left open")
    dispose(app)
    return problems


# ------------------------------------------------------------------------------ reporting


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def merge(runs):
    return {"latencies": [x for r in runs for x in r["latencies"]], "stamps": sum(r["stamps"] for r in runs),
            "errors": sum(r["errors"] for r in runs), "samples": [s for r in runs for s in r["samples"]],
            "committed": [s for r in runs for s in r["committed"]], "cpu": sum(r["cpu"] for r in runs),
            "seconds": sum(r["seconds"] for r in runs)}


def line(name, figures, books):
    rate = figures["stamps"] / figures["seconds"]
    lat = figures["latencies"]
    cpu_ms = 1000 * figures["cpu"] / figures["stamps"] if figures["stamps"] else float("nan")
    print(f"    {name:<5} {rate:>8.1f} stamps/s   p50 {1000 * percentile(lat, 50):6.1f} ms  "
          f"p95 {1000 * percentile(lat, 95):6.1f} ms  p99 {1000 * percentile(lat, 99):6.1f} ms   "
          f"errors {figures['errors']}   server CPU {cpu_ms:5.2f} ms/stamp   "
          f"verify {'clean' if not books else 'FAILED: ' + '; '.join(books[:3])}")
    for sample in figures["samples"][:3]:
        print(f"          error: {sample}")
    return rate


def profile_worker(server, seconds, folder):
    """py-spy on one app worker for ``seconds``; prints the hottest functions (own and total)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("    (--profile: py-spy is not installed; pip install py-spy)")
        return None
    pid = server.worker_pids()[0]
    out = folder / f"profile-{pid}.txt"
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format", "raw", "--gil",
                             "--output", str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL), out


def print_profile(out, top=25):
    """Collapsed stacks → the functions with the most samples (own) and on the stack (total)."""
    own, total, samples = {}, {}, 0
    for text in Path(out).read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        count = int(count)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    trim = lambda frame: frame.replace(str(ROOT) + "/", "").replace(str(Path(sys.prefix)) + "/", "")  # noqa: E731
    print(f"    py-spy profile of one app worker: {samples} samples")
    for title, table in (("on the stack", total), ("own time", own)):
        print(f"    top {top} by {title}:")
        for frame, count in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"      {100 * count / samples:5.1f} %  {trim(frame)[:150]}")


# ------------------------------------------------------------------------------ one database


def run_database(kind, app_url, bare_url, folder, args):
    print(f"\n== {kind}: {args.clients} clients, {args.seconds} s per server and class "
          f"({args.rounds} rounds, interleaved) ==", flush=True)
    token = prepare(app_url, folder / "uploads")
    copy_database(app_url, bare_url)
    metrics = folder / "metrics"
    instance = folder / "instance"
    instance.mkdir(exist_ok=True)
    app_env = dict(os.environ, SCM_ENV="production", SECRET_KEY="b" * 40, SCM_DATABASE_URL=app_url,
                   SCM_INSTANCE_PATH=str(instance), SCM_UPLOAD_FOLDER=str(folder / "uploads"),
                   SCM_API_RATE_LIMIT="10000000 per minute", PROMETHEUS_MULTIPROC_DIR=str(metrics),
                   SCM_SESSION_COOKIE_SECURE="false", PYTHONPATH=str(ROOT))
    bare_env = dict(os.environ, BENCH_DATABASE_URL=bare_url, PYTHONPATH=str(ROOT))
    summary = []
    for worker_class in args.classes:
        figures = {"app": [], "bare": []}
        profiled = None
        for round_ in range(args.rounds):
            order = ["app", "bare"] if round_ % 2 == 0 else ["bare", "app"]
            for name in order:
                entry, env = ("bench.burst:app_server()", app_env) if name == "app" else (
                    "bench.burst:bare_server()", bare_env)
                server = Gunicorn(entry, env, folder / f"{name}.log", worker_class, args.workers, args.threads).start()
                try:
                    spy = None
                    if args.profile and name == "app" and profiled is None:
                        spy = profile_worker(server, args.seconds / args.rounds, folder)
                    figures[name].append(burst(server, token, f"{kind[0]}{worker_class[0]}{round_}{name[0]}",
                                               args.clients, args.seconds / args.rounds))
                    if spy:
                        spy[0].wait(60)
                        profiled = spy[1]
                finally:
                    server.stop()
        shape = f"gunicorn {worker_class}, {args.workers} workers" + (
            f" x {args.threads} threads" if worker_class == "gthread" else "")
        print(f"  {shape}:")
        app_figures, bare_figures = merge(figures["app"]), merge(figures["bare"])
        app_books = check_books(app_url, folder / "uploads", app_figures["committed"])
        bare_books = check_books(bare_url, folder / "uploads", bare_figures["committed"])
        app_rate = line("app", app_figures, app_books)
        bare_rate = line("bare", bare_figures, bare_books)
        ratio = app_rate / bare_rate if bare_rate else float("nan")
        clean = not app_books and not bare_books and not app_figures["errors"] and not bare_figures["errors"]
        met = ratio >= TARGET and clean
        print(f"    ratio app/bare = {ratio:.3f}   target >= {TARGET} with zero errors and clean books: "
              f"{'met' if met else 'NOT MET'}", flush=True)
        if profiled and profiled.exists():
            print_profile(profiled)
        summary.append((kind, shape, app_rate, bare_rate, ratio, met))
    return summary


def copy_database(source, target):
    if source.startswith("sqlite"):
        shutil.copyfile(source.removeprefix("sqlite:///"), target.removeprefix("sqlite:///"))
        return
    import psycopg

    base, name = target.rsplit("/", 1)
    template = source.rsplit("/", 1)[1]
    admin = f"{base}/postgres".replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")


# ------------------------------------------------------------------------------ --breakdown


CATEGORIES = (  # (label, functions whose cumulative time counts there; first match wins)
    ("the token's lookup (in the transaction)", ("scm/api/views.py:_authenticate",)),
    ("the view and the service (four statements through SQLAlchemy Core)",
     ("scm/api/views.py:reserve", "scm/api/views.py:commit")),
    ("rate limit (Flask-Limiter: check, headers)",
     ("flask_limiter/_extension.py:_check_request_limit", "flask_limiter/_extension.py:__inject_headers")),
    ("access log (JSON line)", ("scm/core/logs.py:log_request",)),
    ("metrics (Prometheus counters)", ("scm/core/metrics.py:count_request",)),
    ("security headers", ("scm/core/__init__.py:security_headers",)),
    ("request id", ("scm/core/logs.py:assign_request_id",)),
    ("session and login cookies", ("flask/sessions.py:save_session", "flask_login/login_manager.py:_update_remember_cookie")),
    ("request and app contexts, teardown (Flask-SQLAlchemy session removed)",
     ("flask/ctx.py:push", "flask/ctx.py:pop")),
)


def _environs(token, prefix, n):
    from werkzeug.test import EnvironBuilder

    def environ(path, body):
        return EnvironBuilder(path=path, method="POST", data=body, content_type="application/json",
                              headers={"Authorization": f"Bearer {token}"}).get_environ()

    pairs = []
    for i in range(n):
        serial = f"{prefix}{i:06d}"
        body = json.dumps({"serial": serial, "document_type": DOC_TYPE, "document_number": f"INV-{serial}",
                           "document_date": DOC_DATE}).encode()
        pairs.append((environ("/api/v1/stamps", body), environ(f"/api/v1/stamps/{serial}/commit", b"{}")))
    return pairs


def _run_wsgi(app, pairs):
    """Reserve and commit through the WSGI callable (no HTTP); returns the CPU seconds it took."""
    answers = []

    def start_response(status, headers, exc_info=None):
        answers.append(status)

    started = time.process_time()
    for reserve_env, commit_env in pairs:
        b"".join(app(reserve_env, start_response))
        b"".join(app(commit_env, start_response))
    spent = time.process_time() - started
    if any(not status.startswith(("200", "201")) for status in answers):
        raise RuntimeError(f"refused: {[s for s in answers if not s.startswith(('200', '201'))][:3]}")
    return spent


def breakdown(folder, n=300):
    """The app's WSGI callable against the bare app's, in process (CPU per stamp), and where the app's
    time goes by cProfile, scaled to the unprofiled CPU time."""
    import cProfile
    import logging
    import pstats

    url, bare_url = f"sqlite:///{folder / 'app.sqlite3'}", f"sqlite:///{folder / 'bare.sqlite3'}"
    token = prepare(url, folder / "uploads")
    copy_database(url, bare_url)
    from scm import create_app

    app = create_app("production", SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="b" * 40, SESSION_COOKIE_SECURE=False,
                     API_RATE_LIMIT="10000000 per minute", UPLOAD_FOLDER=str(folder / "uploads"))
    access = logging.getLogger("scm.access")
    access.handlers[:] = [logging.FileHandler(folder / "access.log")]  # a file, as under gunicorn
    access.propagate = False
    os.environ["BENCH_DATABASE_URL"] = bare_url
    bare = bare_server()
    _run_wsgi(app, _environs(token, "WA", 50))
    _run_wsgi(bare, _environs(token, "WB", 50))
    cpu = {"app": [], "bare": []}
    for r in range(3):
        cpu["app"].append(_run_wsgi(app, _environs(token, f"A{r}", n)) / n)
        cpu["bare"].append(_run_wsgi(bare, _environs(token, f"B{r}", n)) / n)
    app_ms, bare_ms = 1000 * min(cpu["app"]), 1000 * min(cpu["bare"])
    print(f"\n== In process (the WSGI callable, no HTTP), SQLite: CPU per stamp, best of 3 x {n} ==")
    print(f"  app {app_ms:.2f} ms   bare {bare_ms:.2f} ms   ratio {bare_ms / app_ms:.3f}")
    pairs = _environs(token, "P", n)
    profiler = cProfile.Profile()
    profiler.enable()
    _run_wsgi(app, pairs)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    cumulative = {}
    for (file, _, function), (_, _, _, total, _) in stats.items():
        key = f"{file.split('site-packages/')[-1].replace(str(ROOT) + '/', '')}:{function}"
        cumulative[key] = max(cumulative.get(key, 0), total)  # a nested namesake is inside the outer one
    whole = cumulative["flask/app.py:__call__"]
    attempt = cumulative.get("scm/api/views.py:attempt", 0)
    unit_of_work = cumulative.get("scm/core/database.py:run_once_more_on_conflict", 0) - attempt
    rows = [(label, sum(cumulative.get(f, 0) for f in functions)) for label, functions in CATEGORIES]
    rows.insert(2, ("the unit of work around them (session, BEGIN IMMEDIATE, COMMIT, pool)", unit_of_work))
    rows.append(("Flask itself (routing, dispatch, response) and the rest", whole - sum(t for _, t in rows)))
    per_request = app_ms / 2
    print(f"  where the app's {per_request:.2f} ms of CPU per request go (cProfile shares, scaled):")
    for label, seconds in rows:
        print(f"    {100 * seconds / whole:5.1f} %  {per_request * seconds / whole:5.2f} ms  {label}")
    print(f"  the bare app: {bare_ms / 2:.2f} ms per request")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="per server and worker class (default 30)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    parser.add_argument("--classes", default="sync,gthread", help="gunicorn worker classes (default sync,gthread)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of app and bare (default 2)")
    parser.add_argument("--profile", action="store_true", help="py-spy one app worker during its first run")
    parser.add_argument("--breakdown", action="store_true",
                        help="only: the app's and the bare app's WSGI callables in process (CPU per stamp) and "
                             "where the app's time goes (cProfile), on SQLite")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--postgres", action="store_true", default=None)
    group.add_argument("--no-postgres", dest="postgres", action="store_false")
    args = parser.parse_args(argv)
    args.classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if not set(args.classes) <= {"sync", "gthread"} or args.clients < 1 or args.rounds < 1:
        parser.error("--classes: sync and/or gthread; --clients and --rounds at least 1")

    from tests.fixtures.database import PostgresCluster, _pg_bin

    have_pg = bool(_pg_bin("initdb") and _pg_bin("pg_ctl"))
    postgres = have_pg if args.postgres is None else args.postgres
    if postgres and not have_pg:
        parser.error("--postgres: initdb/pg_ctl not found (apt-get install postgresql)")
    if args.breakdown:
        with tempfile.TemporaryDirectory(prefix="scm-bench-burst-") as tmp:
            breakdown(Path(tmp))
        return 0
    print(f"SCM Meterai HTTP burst: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{args.clients} clients in {CLIENT_PROCESSES} processes, reserve + commit per stamp")
    summary = []
    with tempfile.TemporaryDirectory(prefix="scm-bench-burst-") as tmp:
        work = Path(tmp)
        (work / "sqlite").mkdir()
        summary += run_database("SQLite", f"sqlite:///{work / 'sqlite' / 'app.sqlite3'}",
                                f"sqlite:///{work / 'sqlite' / 'bare.sqlite3'}", work / "sqlite", args)
        if postgres:
            (work / "pg").mkdir()
            cluster = PostgresCluster()
            try:
                url = cluster.start("scm_burst_app")
                summary += run_database("PostgreSQL", url, url.rsplit("/", 1)[0] + "/scm_burst_bare",
                                        work / "pg", args)
            finally:
                cluster.stop()
    print("\n== Summary (stamps/s; ratio = app / bare, measured in this run) ==")
    for kind, shape, app_rate, bare_rate, ratio, met in summary:
        print(f"  {kind:<10} {shape:<36} app {app_rate:7.1f}  bare {bare_rate:7.1f}  ratio {ratio:.3f}  "
              f"{'met' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
