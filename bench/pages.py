"""Pages at a real distributor's size: every page of every role over a year of stamps.

    .venv/bin/python bench/pages.py [--stamps 2000000] [--wapus 400] [--runs 7]
                                    [--postgres | --database-url URL] [--explain]

Loads ``--stamps`` stamps over the last 12 months across ``--wapus`` WAPUs (each with a contract)
as the app writes them: batch reports (most), API reservations committed or released, failures and
a few open reservations, with their quota ledger entries, accounts and the usage summary (derived
from the stamps with the same GROUP BY as migration 0013_usage_summary). Then a year of billing through the real
services: ``run_billing`` for each of the last 12 months, ``issue_drafts`` for all but last month
(so last month has 400 drafts), older invoices paid.

For each page of each role (the Flask test client, in process, logged in as that role) it prints the
time of ``--runs`` runs after one warm-up (min / median / p95), the number of SQL statements and the
slowest statement with its time. Target: p95 <= 200 ms. ``--explain`` prints the query plans of the
history's filters (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``).

``--postgres`` starts a throwaway PostgreSQL (``tests.fixtures.database.PostgresCluster``, fsync off);
``--database-url`` uses an existing empty database. SQLite (a temp file) otherwise.
"""

import argparse
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.billing import bulk_load, derive_summary_and_analyze, migrate_and_add_wapus  # noqa: E402

TARGET_MS = 200
PASSWORD = "Bench-password-2026"
STAMP_COLUMNS = ("serial", "wapu_id", "state", "document_type", "document_number", "fingerprint", "source",
                 "reserved_at", "expires_at", "stamped_at", "released_at", "release_reason", "occurred_at",
                 "created_at")
ENTRY_COLUMNS = ("account_id", "wapu_id", "kind", "quantity", "idempotency_key", "reference", "available_after",
                 "created_at")


def make_app(url, folder):
    from scm import create_app

    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="bench", UPLOAD_FOLDER=str(folder),
                      MAIL_SEND_ON_COMMIT=False, DISTRIBUTOR_NPWP="012345678901234", DISTRIBUTOR_BANK_NAME="Bank Bench",
                      DISTRIBUTOR_BANK_ACCOUNT="1234567890", DISTRIBUTOR_BANK_HOLDER="PT Distributor Bench")


def serial_of(n: int) -> str:
    """Serials that look random (as real ones do), so that a prefix matches a few of them."""
    return format((n * 0x9E3779B97F4A7C15) % (1 << 64), "016X")


def stamp_plan(ids, stamps, now, seed=13):
    """``(stamp row, ledger entries)`` per stamp over the 365 days before ``now``, oldest first."""
    from flask import current_app

    types = current_app.config["DOCUMENT_TYPES"]
    rng = random.Random(seed)
    start = now - timedelta(days=365)
    span = (now - timedelta(minutes=30) - start).total_seconds()
    naive = lambda moment: moment.replace(tzinfo=None)  # noqa: E731  (stored as naive UTC)
    for n in range(stamps):
        wapu_id = ids[rng.randrange(len(ids))]
        moment = start + timedelta(seconds=span * n / stamps)
        serial, kind = serial_of(n), rng.random()
        document_type = types[n % len(types)]
        if kind < 0.88:  # reported in a batch after the fact
            row = (serial, wapu_id, "stamped", document_type, f"DOC/{n}", "f" * 64, "batch", None, None,
                   naive(moment), None, None, naive(moment), naive(moment + timedelta(hours=3)))
            entries = [("consume", 1, serial, serial, moment + timedelta(hours=3))]
        elif kind < 0.96:  # reserved then committed through the API
            stamped = moment + timedelta(seconds=20)
            row = (serial, wapu_id, "stamped", document_type, f"DOC/{n}", "f" * 64, "api", naive(moment),
                   naive(moment + timedelta(minutes=15)), naive(stamped), None, None, naive(stamped), naive(moment))
            entries = [("reserve", 1, serial, serial, moment), ("commit", 1, serial, serial, stamped)]
        elif kind < 0.98:  # reserved then released (the stamping failed)
            row = (serial, wapu_id, "released", document_type, f"DOC/{n}", "f" * 64, "api", naive(moment),
                   naive(moment + timedelta(minutes=15)), None, naive(moment + timedelta(seconds=30)), "timeout",
                   naive(moment), naive(moment))
            entries = [("reserve", 1, serial, serial, moment),
                       ("release", 1, serial, f"{serial}: timeout", moment + timedelta(seconds=30))]
        else:  # a failure reported in a batch
            row = (serial, wapu_id, "failed", document_type, f"DOC/{n}", "f" * 64, "batch", None, None,
                   naive(moment), None, None, naive(moment), naive(moment + timedelta(hours=3)))
            entries = []
        yield row, entries


def load(app, wapus: int, stamps: int):
    """WAPUs, a year of stamps with their ledger and summary, a year of billing; returns the people."""
    from sqlalchemy import insert, select, update

    from scm.core.database import unit_of_work, utcnow
    from scm.extensions import db
    from scm.quota.models import QuotaAccount

    ids = migrate_and_add_wapus(app, wapus)
    now = utcnow().replace(microsecond=0)
    with app.app_context():
        with unit_of_work():
            db.session.execute(insert(QuotaAccount), [dict(wapu_id=i, updated_at=now) for i in ids])
            accounts = dict(db.session.execute(select(QuotaAccount.wapu_id, QuotaAccount.id)).all())
        db.session.remove()
        balance = dict.fromkeys(ids, 0)  # available, as the entries run
        consumed = dict.fromkeys(ids, 0)
        issued = dict.fromkeys(ids, 0)

        def entry_rows():  # the same plan again (same seed): its ledger entries, POs of 5.000 when needed
            for row, entries in stamp_plan(ids, stamps, now):
                wapu_id = row[1]
                for kind, quantity, key, reference, moment in entries:
                    if kind in ("reserve", "consume") and balance[wapu_id] < 1:
                        balance[wapu_id] += 5000
                        issued[wapu_id] += 5000
                        yield (accounts[wapu_id], wapu_id, "issue", 5000, f"po-{wapu_id}-{issued[wapu_id]}",
                               "PO bench", balance[wapu_id], moment.replace(tzinfo=None))
                    balance[wapu_id] += {"reserve": -1, "consume": -1, "release": 1, "commit": 0}[kind]
                    consumed[wapu_id] += kind in ("consume", "commit")
                    yield (accounts[wapu_id], wapu_id, kind, quantity, key, reference[:200], balance[wapu_id],
                           moment.replace(tzinfo=None))

        bulk_load(app, "stamps", STAMP_COLUMNS, (row for row, _ in stamp_plan(ids, stamps, now)))
        bulk_load(app, "quota_entries", ENTRY_COLUMNS, entry_rows())
        with unit_of_work():
            for wapu_id in ids:
                db.session.execute(update(QuotaAccount).where(QuotaAccount.wapu_id == wapu_id).values(
                    available=balance[wapu_id], consumed=consumed[wapu_id], issued=issued[wapu_id]))
        db.session.remove()
    derive_summary_and_analyze(app)
    people = add_people(app, ids[0])
    bill_a_year(app, people["DIST_FIN"])
    derive_summary_and_analyze(app)  # statistics of the invoices too
    return people


def add_people(app, wapu_id):
    """One user per role (WAPU roles in ``wapu_id``) and an API token; returns {role: email, 'token': ...}."""
    from scm.api.services import create_token
    from scm.auth.models import Role
    from scm.auth.services import create_user
    from scm.core.database import unit_of_work
    from scm.extensions import db
    from scm.registration.models import Wapu

    people = {}
    with app.app_context():
        for role in Role:
            with unit_of_work():
                wapu = db.session.get(Wapu, wapu_id) if role.is_wapu else None
                email = f"{role.value.lower()}@bench.example.com"
                user, _ = create_user(wapu, None, email=email, name=f"Bench {role.value}", role=role, password=PASSWORD)
                user.must_change_password = False
            people[role.value] = email
        with unit_of_work():
            _, people["token"] = create_token(wapu_id, None, name="bench")
        db.session.remove()
    return people


def known_people(app):
    """The people of a database loaded before (``--loaded``), with a new API token."""
    from scm.api.services import create_token
    from scm.auth.models import Role
    from scm.core.database import unit_of_work
    from scm.extensions import db
    from scm.registration.models import Wapu

    people = {role.value: f"{role.value.lower()}@bench.example.com" for role in Role}
    with app.app_context():
        with unit_of_work():
            wapu_id = db.session.execute(db.select(Wapu.id).order_by(Wapu.id).limit(1)).scalar()
            _, people["token"] = create_token(wapu_id, None, name="bench again")
        db.session.remove()
    return people


def bill_a_year(app, finance_email):
    """``run_billing`` for each of the last 12 months; every month but the last issued, older ones paid."""
    from sqlalchemy import select, update

    from scm.auth.models import User
    from scm.billing.models import Invoice, InvoiceState
    from scm.billing.services import issue_drafts, run_billing
    from scm.billing.usage import add_months, month_of
    from scm.core.database import unit_of_work
    from scm.core.formatting import today_wib
    from scm.extensions import db

    today = today_wib()
    last = add_months(month_of(today), -1)
    with app.app_context():
        actor = db.session.execute(select(User).where(User.email == finance_email)).scalar_one()
        for back in range(11, -1, -1):
            period = add_months(last, -back)
            with unit_of_work():
                run_billing(period, actor, source="cli", today=today)
            if back:
                issue_day = add_months(period, 1)
                with unit_of_work():
                    issue_drafts(period, actor, today=issue_day.replace(day=2) if issue_day < today else today)
            if back > 1:
                with unit_of_work():
                    db.session.execute(update(Invoice).where(Invoice.period == period, Invoice.state != InvoiceState.DRAFT)
                                       .values(state=InvoiceState.PAID, paid_amount=Invoice.total_due))
        db.session.remove()


# ----------------------------------------------------------------------------------------- measuring


class StatementLog:
    """Counts the statements of the engine and times each one (cursor execute to its end)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.items = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.items.append((time.perf_counter() - conn.info.pop("bench_started", time.perf_counter()), statement))


def middle_wapu(db) -> str:
    """The code of the WAPU in the middle of the list (W0200 of 400)."""
    from sqlalchemy import func, select

    from scm.registration.models import Wapu

    count = db.session.execute(select(func.count()).select_from(Wapu)).scalar()
    return db.session.execute(select(Wapu.code).order_by(Wapu.id).offset(count // 2).limit(1)).scalar()


def pages(people, app):
    """(role, label, url) of every page measured."""
    from sqlalchemy import select

    from scm.billing.usage import add_months, month_key, month_of
    from scm.core.formatting import today_wib
    from scm.extensions import db
    from scm.stamping.models import Stamp

    today = today_wib()
    last = month_key(add_months(month_of(today), -1))
    with app.app_context():
        sample = db.session.execute(select(Stamp.serial, Stamp.document_type).where(Stamp.state == "stamped")
                                    .order_by(Stamp.id.desc()).limit(1)).one()
        code = middle_wapu(db)
        db.session.remove()
    day = (today - timedelta(days=3)).isoformat()
    serial4 = sample.serial[:4]
    return [
        ("DIST_FIN", "distributor dashboard", "/"),
        ("DIST_FIN", "billing month (last month: drafts)", f"/billing/months/{last}"),
        ("DIST_FIN", "billing month (this month)", f"/billing/months/{month_key(month_of(today))}"),
        ("DIST_FIN", "invoices", "/billing/invoices"),
        ("DIST_FIN", "shortfall report", "/billing/shortfall"),
        ("DIST_FIN", "history, first page", "/usage"),
        ("DIST_FIN", "history, second page", None),  # the keyset link of the first page
        ("DIST_FIN", "history by WAPU", f"/usage?wapu={code}"),
        ("DIST_FIN", "history by serial prefix (4)", f"/usage?serial={serial4}"),
        ("DIST_FIN", "history, one day + type + state",
         f"/usage?date_from={day}&date_to={day}&document_type={sample.document_type}&state=stamped"),
        ("DIST_FIN", "history, one day", f"/usage?date_from={day}&date_to={day}"),
        ("DIST_ADMIN", "distributor dashboard (admin)", "/"),
        ("DIST_SPV", "distributor dashboard (SPV)", "/"),
        ("WAPU_FIN", "WAPU dashboard (FIN)", "/"),
        ("WAPU_STAFF", "WAPU dashboard (STAFF)", "/"),
        ("WAPU_FIN", "WAPU history", "/usage"),
        ("WAPU_FIN", "WAPU history, stamped", "/usage?state=stamped"),
        ("WAPU_FIN", "WAPU invoices", "/billing/invoices"),
        ("API", "API history (100)", "/api/v1/stamps"),
        ("API", "API quota", "/api/v1/quota"),
    ]


def measure(app, people, runs):
    import re

    from scm.extensions import db
    from tests.fixtures.client import Client

    with app.app_context():
        log = StatementLog(db.engine)
    clients = {}
    results = []
    second_page = None
    for role, label, url in pages(people, app):
        if url is None:
            url = second_page
        if role not in clients:
            client = Client(app.test_client())
            if role != "API":
                response = client.login(people[role], PASSWORD)
                assert response.status_code == 302, (role, response.status_code)
            clients[role] = client
        headers = {"Authorization": f"Bearer {people['token']}"} if role == "API" else {}
        times, counts, slowest = [], [], (0.0, "")
        for attempt in range(runs + 1):
            log.items.clear()
            start = time.perf_counter()
            response = clients[role].get(url, headers=headers)
            elapsed = time.perf_counter() - start
            assert response.status_code == 200, (label, url, response.status_code)
            if attempt == 0:  # warm-up
                if label == "history, first page":
                    found = re.search(r'href="([^"]*before=\d+[^"]*)"', response.get_data(as_text=True))
                    second_page = found.group(1).replace("&amp;", "&") if found else "/usage"
                continue
            times.append(elapsed * 1000)
            counts.append(len(log.items))
            top = max(log.items, default=(0.0, ""))
            if top[0] > slowest[0]:
                slowest = top
        times.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        results.append((role, label, url, times[0], statistics.median(times), p95, max(counts), slowest))
    return results


def report(results, title):
    print(f"\n{title}")
    print(f"{'role':<11} {'page':<36} {'min':>7} {'median':>7} {'p95':>7}  stmts  slowest statement")
    missed = 0
    for role, label, _url, low, median, p95, count, (top, statement) in results:
        flag = "" if p95 <= TARGET_MS else "  << over 200 ms"
        missed += p95 > TARGET_MS
        text = " ".join(statement.split())[:90]
        print(f"{role:<11} {label:<36} {low:7.1f} {median:7.1f} {p95:7.1f}  {count:5d}  {top * 1000:6.1f} ms  "
              f"{text}{flag}")
    print(f"{len(results) - missed}/{len(results)} pages at p95 <= {TARGET_MS} ms")


def explain(app):
    """The plans of the history's statements (the ones the issue found growing with history)."""
    from sqlalchemy import text

    from scm.core.formatting import today_wib
    from scm.extensions import db

    day = today_wib() - timedelta(days=3)
    start = datetime.combine(day, datetime.min.time()) - timedelta(hours=7)
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        wapu_id = db.session.execute(text("SELECT id FROM wapus WHERE code = :code"), {"code": middle_wapu(db)}).scalar()
        statements = {
            "history by WAPU": f"SELECT * FROM stamps WHERE stamps.wapu_id = {wapu_id} "
                               "ORDER BY occurred_at DESC, id DESC LIMIT 51",
            "history by serial prefix": "SELECT * FROM stamps WHERE serial >= '1A2B' AND serial < '1A2C' "
                                        "ORDER BY occurred_at DESC, id DESC LIMIT 51",
            "counts by serial prefix": "SELECT state, count(*) FROM stamps WHERE serial >= '1A2B' AND serial < '1A2C' "
                                       "GROUP BY state",
            "history, one day + type + state": f"SELECT * FROM stamps WHERE occurred_at >= '{start:%Y-%m-%d %H:%M:%S}' "
                                               f"AND occurred_at < '{start + timedelta(days=1):%Y-%m-%d %H:%M:%S}' "
                                               "AND document_type = 'cek' AND state = 'stamped' "
                                               "ORDER BY occurred_at DESC, id DESC LIMIT 51",
            "counts of the whole history": "SELECT state, sum(count) FROM usage_daily GROUP BY state",
            "consumed per month (12 months)": f"SELECT wapu_id, {'substr(day, 1, 7)' if sqlite else 'to_char(day, ' + chr(39) + 'YYYY-MM' + chr(39) + ')'}"
                                              f", sum(count) FROM usage_daily WHERE state = 'stamped' AND day >= "
                                              f"'{day - timedelta(days=365)}' GROUP BY 1, 2",
        }
        for label, statement in statements.items():
            print(f"\n-- {label}\n{statement}")
            for row in db.session.execute(text(prefix + statement)).all():
                print("   ", row[-1] if sqlite else row[0])
        db.session.remove()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stamps", type=int, default=2_000_000)
    parser.add_argument("--wapus", type=int, default=400)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster")
    parser.add_argument("--database-url", help="an existing empty database (PostgreSQL)")
    parser.add_argument("--explain", action="store_true", help="print the history's query plans")
    parser.add_argument("--keep", metavar="FILE", help="SQLite: load into FILE and keep it (for --loaded)")
    parser.add_argument("--loaded", action="store_true",
                        help="the database (--database-url or --keep FILE) is loaded already: only measure")
    args = parser.parse_args()
    logging.getLogger("scm.access").setLevel(logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="scm-bench-pages-"))
    cluster = None
    try:
        if args.postgres:
            from tests.fixtures.database import PostgresCluster

            cluster = PostgresCluster()
            url = cluster.start("scm_bench_pages")
        elif args.keep:
            url = f"sqlite:///{Path(args.keep).resolve()}"
        else:
            url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
        app = make_app(url, folder)
        kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        start = time.perf_counter()
        if args.loaded:
            people = known_people(app)
        else:
            people = load(app, args.wapus, args.stamps)
            print(f"{kind}: loaded {args.stamps:,} stamps over {args.wapus} WAPUs and a year of billing "
                  f"in {time.perf_counter() - start:.0f} s", flush=True)
        if args.explain:
            explain(app)
        with app.app_context():
            from scm.extensions import db

            stamps = db.session.execute(db.text("SELECT count(*) FROM stamps")).scalar()
            db.session.remove()
        report(measure(app, people, args.runs), f"{kind}, {stamps:,} stamps, {args.runs} runs per page (ms)")
    finally:
        if cluster:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
