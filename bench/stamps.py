"""Stamping benchmark: the app's stamping paths against the raw database limit, in the same run.

    .venv/bin/python bench/stamps.py [--n 2000] [--batches 20] [--postgres | --no-postgres]
                                     [--server auto|gunicorn|werkzeug]

(a) reserve + commit, one stamp at a time, through the service layer exactly as the API views call
    it (one app context per call; in it ``run_once_more_on_conflict`` = one unit of work whose first
    statement authenticates the bearer token, then the service; then ``stamp_json``), without HTTP;
    against a raw DB-API loop of the equivalent two single-row transactions per stamp (each
    starting with the token's lookup by its hash, each adding to the usage summary) on tables of the
    same shape, with the same durability settings.
    Also shown, for information: the "floor", the same raw statements run the app's way (app
    context + unit_of_work per transaction), i.e. the best ratio the service could reach.
(b) ``POST /api/v1/stamps/batch`` with 1,000-event batches to a real server on 127.0.0.1
    (gunicorn in its own process when installed in the venv, else werkzeug in a thread); against
    raw ``executemany`` of the same rows (stamps + ledger entries + one account update per batch).
(c) (a) and (b) again on a throwaway PostgreSQL cluster (tests.fixtures.database.PostgresCluster), raw side
    with psycopg. Runs with ``--postgres`` or automatically when initdb/pg_ctl are installed.

Each ratio is app / raw, the contenders measured interleaved in the same run; when a target is
missed a cProfile (top 15 by cumulative time) of the app side follows. See bench/README.md.
"""

import argparse
import cProfile
import hashlib
import http.client
import io
import json
import logging
import os
import pstats
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from contextlib import redirect_stderr
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_SINGLE = 0.5  # (a): service / raw
TARGET_BATCH = 0.10  # (b): HTTP / raw
BATCH_SIZE = 1000
WARMUP_STAMPS = 50
PROFILE_STAMPS = 200
PROFILE_BATCHES = 2
ROUNDS = 10  # (a) is measured in rounds, the contenders interleaved
DOC_TYPE = "surat_perjanjian"
DOC_DATE = "2026-11-20T00:00:00+07:00"
STAMPED_AT = "2026-11-23T09:30:00+07:00"
TTL = timedelta(minutes=15)


# ------------------------------------------------------------------------------------ the app side


def make_app(url, upload_folder):
    from scm import create_app

    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="bench",
                      UPLOAD_FOLDER=str(upload_folder), MAIL_SEND_ON_COMMIT=False)


def server_app():
    """gunicorn entry point: ``bench.stamps:server_app()`` (settings from the environment)."""
    return make_app(os.environ["BENCH_DATABASE_URL"], os.environ["BENCH_UPLOAD_FOLDER"])


def migrate(url, upload_folder):
    """Create the schema with flask_migrate.upgrade(), keeping Alembic's INFO lines off the output."""
    from flask_migrate import upgrade

    from scm.extensions import db

    app = make_app(url, upload_folder)
    with app.app_context():
        with open(os.devnull, "w") as devnull, redirect_stderr(devnull):
            upgrade()  # env.py's fileConfig() builds a stderr handler: it got devnull, point it back
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is devnull:
                    handler.setStream(sys.__stderr__)
        db.engine.dispose()


def prepare(url, upload_folder, quota):
    """A WAPU registered and approved through the real services, ``quota`` issued, an API token."""
    from scm.api.services import create_token
    from scm.core.database import unit_of_work
    from scm.extensions import db
    from scm.quota.services import issue_quota
    from tests.fixtures.factories import Factory

    app = make_app(url, upload_folder)
    wapu_id = Factory(app).wapu(1)["id"]
    with app.app_context(), unit_of_work():
        issue_quota(wapu_id, quantity=quota, key="bench", reference="bench")
        token, plaintext = create_token(wapu_id, None, name="bench")
        token_id = token.id
    with app.app_context():
        db.session.remove()
    return app, wapu_id, token_id, plaintext


def service_stamps(app, plaintext, serials):
    """Reserve then commit each serial, as the API views do: one app context per call, and in it one
    unit of work whose first statement authenticates the bearer token (``token_and_unit_of_work``)."""
    from scm.api.services import authenticate_token
    from scm.api.views import stamp_json
    from scm.core.database import run_once_more_on_conflict
    from scm.stamping.services import StampInput, commit_stamp, reserve_stamp

    def reserve(data):
        token = authenticate_token(plaintext)
        return reserve_stamp(token.wapu_id, token.id, data=data)

    def commit(serial):
        token = authenticate_token(plaintext)
        return commit_stamp(token.wapu_id, serial)

    for serial in serials:
        data = StampInput(serial=serial, document_type=DOC_TYPE, document_number=f"INV-{serial}",
                          document_date=DOC_DATE)
        with app.app_context():
            stamp, created = run_once_more_on_conflict(lambda d=data: reserve(d))
            body = stamp_json(stamp)
        assert created and body["state"] == "reserved", body
        with app.app_context():
            stamp, outcome = run_once_more_on_conflict(lambda s=serial: commit(s))
            body = stamp_json(stamp)
        assert outcome == "committed" and body["state"] == "stamped", body


def batch_body(prefix, batch):
    events = [{"serial": f"{prefix}{batch:04d}x{i:05d}", "status": "stamped", "stamped_at": STAMPED_AT,
               "document_type": DOC_TYPE, "document_number": f"INV-{batch}-{i}", "document_date": DOC_DATE}
              for i in range(BATCH_SIZE)]
    return json.dumps({"events": events}).encode()


def check_batch_answer(status, data):
    answer = json.loads(data) if data else {}
    if status != 200 or answer.get("counts") != {"applied": BATCH_SIZE}:
        raise RuntimeError(f"batch refused: HTTP {status} {str(answer)[:300]}")


class Server:
    """The app on 127.0.0.1: gunicorn (1 sync worker) in its own process, else werkzeug in a thread."""

    def __init__(self, url, upload_folder, log_path, kind="auto"):
        self.url, self.upload_folder, self.log_path = url, str(upload_folder), log_path
        self.gunicorn = Path(sys.executable).parent / "gunicorn"
        if kind == "gunicorn" and not self.gunicorn.exists():
            raise RuntimeError(f"--server gunicorn: {self.gunicorn} not found")
        self.use_gunicorn = kind == "gunicorn" or kind == "auto" and self.gunicorn.exists()
        self.proc = self.httpd = None

    @property
    def kind(self):
        return "gunicorn, 1 sync worker" if self.proc else "werkzeug make_server(threaded=True)"

    def start(self):
        from tests.fixtures import free_port

        self.port = free_port()
        if self.use_gunicorn:
            env = dict(os.environ, BENCH_DATABASE_URL=self.url, BENCH_UPLOAD_FOLDER=self.upload_folder,
                       PYTHONPATH=str(ROOT))
            self.log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [str(self.gunicorn), "--workers", "1", "--bind", f"127.0.0.1:{self.port}", "--timeout", "300",
                 "--log-level", "warning", "--chdir", str(ROOT), "bench.stamps:server_app()"],
                env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        else:
            from werkzeug.serving import make_server

            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
            self.httpd = make_server("127.0.0.1", self.port, make_app(self.url, self.upload_folder), threaded=True)
            threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = self.request("GET", "/api/v1/openapi.json")
                if status == 200:
                    return self
            except OSError:
                pass
            if self.proc and self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start; see {self.log_path}:\n"
                                   + Path(self.log_path).read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def request(self, method, path, body=None, token=None):
        return request(self.port, method, path, body, token)

    def stop(self):
        if self.proc:
            terminate(self.proc)
            self.log.close()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()


def request(port, method, path, body=None, token=None, timeout=300):
    """One JSON request to 127.0.0.1:``port`` on a new connection; returns ``(status, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def terminate(proc, seconds=15):
    """Stop a server process: SIGTERM, and SIGKILL when it has not exited after ``seconds``."""
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------ the raw side


def create_raw_schema(url, quota):
    """quota_accounts, quota_entries and stamps copied from the app's models (same columns, types,
    constraints, unique keys and indexes), with minimal parents for their foreign keys."""
    import sqlalchemy as sa

    import scm.api.models  # noqa: F401  (registers the tables)
    import scm.quota.models  # noqa: F401
    import scm.stamping.models  # noqa: F401
    from scm.extensions import db

    meta = sa.MetaData()
    sa.Table("wapus", meta, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("users", meta, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("api_tokens", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("wapu_id", sa.ForeignKey("wapus.id"), nullable=False),
             sa.Column("token_hash", sa.String(64), unique=True, nullable=False))
    for name in ("quota_accounts", "quota_entries", "stamps", "usage_daily"):
        db.metadata.tables[name].to_metadata(meta)
    engine = sa.create_engine(url)
    meta.create_all(engine)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO wapus (id) VALUES (1)"))
        conn.execute(sa.text("INSERT INTO api_tokens (id, wapu_id, token_hash) VALUES (1, 1, :h)"),
                     {"h": RAW_TOKEN_HASH})
        conn.execute(sa.text("INSERT INTO quota_accounts (wapu_id, available, reserved, consumed, issued, adjusted, "
                             "updated_at) VALUES (1, :q, 0, 0, :q, 0, :now)"), {"q": quota, "now": now})
    engine.dispose()
    return 1, 1  # wapu_id, token_id


class Sql:
    """The raw statements for one DB-API paramstyle (qmark for sqlite3, format for psycopg)."""

    def __init__(self, pg):
        self.pg = pg
        for name in ("INSERT_STAMP", "INSERT_ENTRY", "RESERVE_ACCOUNT", "COMMIT_STAMP", "COMMIT_ACCOUNT",
                     "CONSUME_ACCOUNT", "TOKEN", "USAGE", "USAGE_MOVED"):
            text = globals()[name]
            setattr(self, name.lower(), text.replace("?", "%s") if pg else text)

    def ts(self, moment):
        """Naive UTC, as the app binds it (a string for SQLite, as SQLAlchemy stores it)."""
        return moment if self.pg else moment.isoformat(" ", "microseconds")

    def day(self, moment):
        """The WIB day of a naive UTC moment, as the usage summary keys it."""
        day = (moment + timedelta(hours=7)).date()
        return day if self.pg else day.isoformat()


class Raw:
    """A plain DB-API connection: sqlite3 with the app's pragmas, or psycopg."""

    def __init__(self, url):
        self.pg = url.startswith("postgresql")
        if self.pg:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            for pragma in ("foreign_keys=ON", "busy_timeout=30000", "journal_mode=WAL", "synchronous=NORMAL"):
                self.conn.execute(f"PRAGMA {pragma}")
        self.cur = self.conn.cursor()
        self.q = Sql(self.pg)

    def transaction(self, work):
        """``work(cursor)`` in one transaction: BEGIN IMMEDIATE ... COMMIT on SQLite; psycopg begins
        implicitly at the first statement."""
        if not self.pg:
            self.cur.execute("BEGIN IMMEDIATE")
        work(self.cur)
        if self.pg:
            self.conn.commit()
        else:
            self.cur.execute("COMMIT")

    def close(self):
        self.conn.close()


INSERT_STAMP = (
    "INSERT INTO stamps (serial, wapu_id, state, document_type, document_number, document_date, fingerprint, "
    "source, token_id, reserved_at, expires_at, stamped_at, released_at, release_reason, occurred_at, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_ENTRY = (
    "INSERT INTO quota_entries (account_id, wapu_id, kind, quantity, idempotency_key, reference, actor_id, "
    "available_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RESERVE_ACCOUNT = ("UPDATE quota_accounts SET available = available - 1, reserved = reserved + 1, updated_at = ? "
                   "WHERE wapu_id = ? AND available >= 1 RETURNING id, available")
COMMIT_STAMP = ("UPDATE stamps SET state = 'stamped', stamped_at = ?, occurred_at = ? "
                "WHERE serial = ? AND wapu_id = ? AND state = 'reserved' AND expires_at > ?")
COMMIT_ACCOUNT = ("UPDATE quota_accounts SET reserved = reserved - 1, consumed = consumed + 1, updated_at = ? "
                  "WHERE wapu_id = ? RETURNING id, available")
TOKEN = "SELECT id, wapu_id FROM api_tokens WHERE token_hash = ?"
_USAGE = ("INSERT INTO usage_daily (wapu_id, day, state, count) VALUES {} ON CONFLICT (wapu_id, day, state) "
          "DO UPDATE SET count = usage_daily.count + excluded.count")
USAGE = _USAGE.format("(?, ?, ?, ?)")
USAGE_MOVED = _USAGE.format("(?, ?, ?, ?), (?, ?, ?, ?)")
CONSUME_ACCOUNT = ("UPDATE quota_accounts SET available = available - ?, consumed = consumed + ?, updated_at = ? "
                   "WHERE wapu_id = ? AND available >= ? RETURNING id, available")


def fp(*parts):
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


def naive_now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


RAW_TOKEN_HASH = hashlib.sha256(b"raw-bench-token").hexdigest()


def lookup_token(cur, q):
    """The token's row by the hash of the bearer string, as every API call begins."""
    return cur.execute(q.token, (RAW_TOKEN_HASH,)).fetchall()[0]


def tx_reserve(cur, q, serial, wapu_id, token_id):
    """Transaction 1: insert the stamp, guarded account update (available -> reserved), ledger entry."""
    now = naive_now()
    t, expires, number = q.ts(now), q.ts(now + TTL), f"INV-{serial}"
    cur.execute(q.insert_stamp, (serial, wapu_id, "reserved", DOC_TYPE, number, DOC_DATE,
                                 fp(serial, DOC_TYPE, number, DOC_DATE), "api", token_id, t, expires, None, None,
                                 None, t, t))
    account_id, available = cur.execute(q.reserve_account, (t, wapu_id)).fetchall()[0]
    cur.execute(q.insert_entry, (account_id, wapu_id, "reserve", 1, serial, serial, None, available, t))
    cur.execute(q.usage, (wapu_id, q.day(now), "reserved", 1))


def tx_commit(cur, q, serial, wapu_id):
    """Transaction 2: guarded stamp update (reserved -> stamped), account update, ledger entry."""
    now = naive_now()
    t = q.ts(now)
    cur.execute(q.commit_stamp, (t, t, serial, wapu_id, t))
    if cur.rowcount != 1:
        raise RuntimeError(f"{serial} was not committed")
    account_id, available = cur.execute(q.commit_account, (t, wapu_id)).fetchall()[0]
    cur.execute(q.insert_entry, (account_id, wapu_id, "commit", 1, serial, serial, None, available, t))
    day = q.day(now)  # reserved a moment ago: the same day, but for a stamp across midnight
    cur.execute(q.usage_moved, (wapu_id, day, "reserved", -1, wapu_id, day, "stamped", 1))


def raw_stamps(raw, wapu_id, token_id, serials):
    """The raw limit of (a): two single-row transactions per stamp on one DB-API connection, each
    after the token's lookup."""
    for serial in serials:
        lookup_token(raw.cur, raw.q)
        raw.transaction(lambda cur, s=serial: tx_reserve(cur, raw.q, s, wapu_id, token_id))
        lookup_token(raw.cur, raw.q)
        raw.transaction(lambda cur, s=serial: tx_commit(cur, raw.q, s, wapu_id))


def floor_stamps(app, q, wapu_id, token_id, serials):
    """The same raw statements, but each transaction run the app's way: one app context and one
    ``run_once_more_on_conflict`` unit of work, on the session's DB-API cursor. What the framework
    around the service costs, with no SQLAlchemy statement at all (informational)."""
    from scm.core.database import run_once_more_on_conflict
    from scm.extensions import db

    def cursor():
        return db.session.connection().connection.driver_connection.cursor()

    for serial in serials:
        with app.app_context():
            run_once_more_on_conflict(lambda s=serial: tx_reserve(cursor(), q, s, wapu_id, token_id))
        with app.app_context():
            run_once_more_on_conflict(lambda s=serial: tx_commit(cursor(), q, s, wapu_id))


def raw_batch_rows(q, prefix, batch, wapu_id, token_id):
    """The stamp rows the batch endpoint writes for one batch (built before the clock starts)."""
    stamped_at = q.ts(datetime.fromisoformat(STAMPED_AT).astimezone(timezone.utc).replace(tzinfo=None))
    created = q.ts(naive_now())
    rows = []
    for i in range(BATCH_SIZE):
        serial, number = f"{prefix}{batch:04d}x{i:05d}", f"INV-{batch}-{i}"
        rows.append((serial, wapu_id, "stamped", DOC_TYPE, number, DOC_DATE,
                     fp(serial, "stamped", STAMPED_AT, DOC_TYPE, number, DOC_DATE), "batch", token_id, None, None,
                     stamped_at, None, None, stamped_at, created))
    return rows


def raw_batch(raw, wapu_id, rows):
    """The raw limit of (b), one batch in one transaction: one guarded account update, executemany
    of the stamp rows, executemany of the ledger entries."""

    def work(cur):
        q, n = raw.q, len(rows)
        t = q.ts(naive_now())
        account_id, available = cur.execute(q.consume_account, (n, n, t, wapu_id, n)).fetchall()[0]
        cur.executemany(q.insert_stamp, rows)
        after = available + n
        entries = []
        for row in rows:
            after -= 1
            entries.append((account_id, wapu_id, "consume", 1, row[0], row[0], None, after, t))
        cur.executemany(q.insert_entry, entries)
        cur.execute(q.usage, (wapu_id, q.day(datetime.fromisoformat(STAMPED_AT).astimezone(timezone.utc)
                                            .replace(tzinfo=None)), "stamped", n))

    raw.transaction(work)


# ------------------------------------------------------------------------------------ measuring


PURELIB = sysconfig.get_paths()["purelib"] + "/"
STDLIB = sysconfig.get_paths()["stdlib"] + "/"


def print_profile(title, fn, top=15):
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    print(f"    profile: {title}")
    for order, count in (("cumulative", top), ("tottime", 10)):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(count)
        text = out.getvalue().replace(PURELIB, "").replace(STDLIB, "").replace(str(ROOT) + "/", "")
        print(f"    top {count} by {'cumulative' if order == 'cumulative' else 'internal (own)'} time:")
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced")) and not (
                    order == "tottime" and "function calls" in line):
                print("      " + line.rstrip())
    sys.stdout.flush()


def interleaved(contenders, rounds):
    """Run ``contenders`` (name -> fn(round)) round after round, rotating the order, and return the
    wall time each took in total: a load change on the machine hits every contender alike."""
    totals = dict.fromkeys(contenders, 0.0)
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            contenders[name](r)
            totals[name] += time.perf_counter() - start
    return totals


def report(db, label, what, app_rate, raw_rate, unit, target, extra=()):
    ratio = app_rate / raw_rate if raw_rate else float("nan")
    met = ratio >= target
    print(f"  ({label}) {what}")
    print(f"      app: {app_rate:>10,.0f} {unit}")
    print(f"      raw: {raw_rate:>10,.0f} {unit}")
    print(f"      ratio app/raw = {ratio:.3f}   target >= {target:.2f}: {'met' if met else 'NOT MET'}")
    for name, rate in extra:
        print(f"      {name}: {rate:,.0f} {unit} (ratio to raw {rate / raw_rate:.3f}; informational)")
    sys.stdout.flush()
    return {"db": db, "case": label, "app": app_rate, "raw": raw_rate, "unit": unit, "ratio": ratio,
            "target": target, "met": met}


def chunks(prefix, n, rounds):
    """``rounds`` lists of serials, ``n`` in all."""
    size, rest = divmod(n, rounds)
    out, start = [], 0
    for r in range(rounds):
        count = size + (r < rest)
        out.append([f"{prefix}{i:07d}" for i in range(start, start + count)])
        start += count
    return out


def bench_single(db_name, app_url, raw_url, work, n):
    """(a) reserve + commit one stamp at a time: service layer vs raw single-row transactions."""
    rounds = min(ROUNDS, n)
    quota = 2 * (n + WARMUP_STAMPS) + PROFILE_STAMPS  # service + floor share the app DB
    app, wapu_id, token_id, plaintext = prepare(app_url, work / "uploads-a", quota)
    raw_wapu, raw_token = create_raw_schema(raw_url, quota)
    raw = Raw(raw_url)
    try:
        floor_n = max(rounds, n // 4)  # informational: a quarter of the stamps is plenty
        service, floor, direct = chunks("S", n, rounds), chunks("F", floor_n, rounds), chunks("R", n, rounds)
        warm = [f"W{i:07d}" for i in range(WARMUP_STAMPS)]
        service_stamps(app, plaintext, warm)
        floor_stamps(app, raw.q, wapu_id, token_id, [f"V{i:07d}" for i in range(WARMUP_STAMPS)])
        raw_stamps(raw, raw_wapu, raw_token, warm)
        totals = interleaved({
            "service": lambda r: service_stamps(app, plaintext, service[r]),
            "floor": lambda r: floor_stamps(app, raw.q, wapu_id, token_id, floor[r]),
            "raw": lambda r: raw_stamps(raw, raw_wapu, raw_token, direct[r]),
        }, rounds)
    finally:
        raw.close()
    result = report(db_name, "a", f"reserve+commit, {n} stamps, 2 transactions each, {rounds} interleaved rounds",
                    n / totals["service"], n / totals["raw"], "stamps/s", TARGET_SINGLE,
                    [("floor (raw statements run in app context + unit_of_work)", floor_n / totals["floor"])])
    if not result["met"]:
        count = min(n, PROFILE_STAMPS)
        print_profile(f"service loop, {count} stamps (reserve+commit)",
                      lambda: service_stamps(app, plaintext, [f"P{i:07d}" for i in range(count)]))
    dispose(app)
    return result


def bench_batch(db_name, app_url, raw_url, work, batches, server_kind="auto"):
    """(b) 1,000-event batches over HTTP vs raw executemany of the same rows, interleaved batch by batch."""
    quota = (batches + 1 + PROFILE_BATCHES) * BATCH_SIZE
    app, wapu_id, token_id, plaintext = prepare(app_url, work / "uploads-b", quota)
    dispose(app)
    raw_wapu, raw_token = create_raw_schema(raw_url, quota)
    raw = Raw(raw_url)
    bodies = [batch_body("B", b) for b in range(batches)]
    rows = [raw_batch_rows(raw.q, "B", b, raw_wapu, raw_token) for b in range(batches)]
    server = Server(app_url, work / "uploads-b", work / f"server-{db_name}.log", server_kind).start()
    answers = []
    try:
        check_batch_answer(*server.request("POST", "/api/v1/stamps/batch", batch_body("W", 0), plaintext))
        raw_batch(raw, raw_wapu, raw_batch_rows(raw.q, "W", 0, raw_wapu, raw_token))
        totals = interleaved({
            "http": lambda r: answers.append(server.request("POST", "/api/v1/stamps/batch", bodies[r], plaintext)),
            "raw": lambda r: raw_batch(raw, raw_wapu, rows[r]),
        }, batches)
    finally:
        server.stop()
        raw.close()
    for answer in answers:
        check_batch_answer(*answer)
    events = batches * BATCH_SIZE
    result = report(db_name, "b", f"POST /api/v1/stamps/batch, {batches} x {BATCH_SIZE} events ({server.kind})",
                    events / totals["http"], events / totals["raw"], "events/s", TARGET_BATCH)
    if not result["met"]:
        client = app.test_client()
        profile_bodies = [batch_body("P", b) for b in range(PROFILE_BATCHES)]

        def in_process():
            for body in profile_bodies:
                response = client.post("/api/v1/stamps/batch", data=body, content_type="application/json",
                                       headers={"Authorization": f"Bearer {plaintext}"})
                check_batch_answer(response.status_code, response.get_data())

        print_profile(f"the same request in process (Flask test client), {PROFILE_BATCHES} batches", in_process)
        dispose(app)
    return result


def dispose(app):
    from scm.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def run_sqlite(args, work):
    import sqlalchemy

    print(f"\n== SQLite {sqlite3.sqlite_version} (file databases, WAL, synchronous=NORMAL, BEGIN IMMEDIATE; "
          f"SQLAlchemy {sqlalchemy.__version__}) ==")
    template = work / "template.sqlite3"
    migrate(f"sqlite:///{template}", work / "uploads-template")
    results = []
    for label, bench, size in (("a", bench_single, args.n), ("b", bench_batch, args.batches)):
        app_db = work / f"app-{label}.sqlite3"
        shutil.copyfile(template, app_db)
        results.append(bench("SQLite", f"sqlite:///{app_db}", f"sqlite:///{work / f'raw-{label}.sqlite3'}",
                             work, size, *([args.server] if label == "b" else [])))
    return results


def run_postgres(args, work):
    import psycopg

    from tests.fixtures.database import PostgresCluster

    cluster = PostgresCluster()
    try:
        url = cluster.start("scm_bench_stamps")
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"\n== PostgreSQL {version} (throwaway cluster: fsync=off, synchronous_commit=off; "
              f"psycopg {psycopg.__version__}) ==")
        migrate(url, work / "uploads-template")
        base = url.rsplit("/", 1)[0]
        admin = f"{base}/postgres".replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in ("bench_app_a", "bench_app_b"):
                conn.execute(f"CREATE DATABASE {name} TEMPLATE scm_test")
            for name in ("bench_raw_a", "bench_raw_b"):
                conn.execute(f"CREATE DATABASE {name}")
        return [
            bench_single("PostgreSQL", f"{base}/bench_app_a", f"{base}/bench_raw_a", work, args.n),
            bench_batch("PostgreSQL", f"{base}/bench_app_b", f"{base}/bench_raw_b", work, args.batches, args.server),
        ]
    finally:
        cluster.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="stamps for (a) (default 2000)")
    parser.add_argument("--batches", type=int, default=20, help="1,000-event batches for (b) (default 20)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--postgres", action="store_true", default=None,
                       help="also run on PostgreSQL (default: when initdb and pg_ctl are installed)")
    group.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--server", choices=("auto", "gunicorn", "werkzeug"), default="auto",
                        help="HTTP server for (b): gunicorn from the venv when installed (auto), or werkzeug")
    args = parser.parse_args(argv)
    if args.n < 1 or args.batches < 1:
        parser.error("--n and --batches must be at least 1")

    from tests.fixtures.database import _pg_bin

    have_pg = bool(_pg_bin("initdb") and _pg_bin("pg_ctl"))
    if args.postgres and not have_pg:
        parser.error("--postgres: initdb/pg_ctl not found (apt-get install postgresql)")
    postgres = have_pg if args.postgres is None else args.postgres

    started = time.perf_counter()
    print(f"SCM Meterai stamping benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"(a) {args.n} stamps, (b) {args.batches} x {BATCH_SIZE} events")
    results = []
    with tempfile.TemporaryDirectory(prefix="scm-bench-") as tmp:
        work = Path(tmp)
        (work / "sqlite").mkdir()
        results += run_sqlite(args, work / "sqlite")
        if postgres:
            (work / "pg").mkdir()
            results += run_postgres(args, work / "pg")
        else:
            print("\n== PostgreSQL skipped (initdb/pg_ctl not installed, or --no-postgres) ==")

    print("\n== Summary (ratio = app / raw, measured in this run) ==")
    for r in results:
        print(f"  {r['db']:<10} ({r['case']}) app {r['app']:>9,.0f}  raw {r['raw']:>9,.0f} {r['unit']:<9} "
              f"ratio {r['ratio']:.3f}  target >= {r['target']:.2f}  {'met' if r['met'] else 'NOT MET'}")
    print(f"  total time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
