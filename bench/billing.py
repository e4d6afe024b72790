"""Billing aggregation benchmark: a month's billing run against a raw GROUP BY of the same rows.

    .venv/bin/python bench/billing.py [--stamps 2000000] [--wapus 400] [--postgres | --no-postgres]

Loads ``--stamps`` stamped e-Meterai of one month spread over ``--wapus`` WAPUs (each with a
contract), then measures, interleaved over a few rounds (best of each):
  app  ``run_billing(month)`` in a unit of work: counts the month per WAPU, late usage, terms and
       contracts, and writes a draft invoice with its lines for every WAPU (rolled back after each
       round so every round does the same work);
  raw  ``SELECT wapu_id, count(*) FROM stamps WHERE state = 'stamped' AND stamped_at in the month
       GROUP BY wapu_id`` on a plain DB-API connection.
Targets (issue #13, goal 3): app <= 1.5x raw on PostgreSQL, <= 1.2x on SQLite. The export benchmarks (workbook, PDF) are in bench/billing_exports.py.
"""

import argparse
import logging
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"SQLite": 1.2, "PostgreSQL": 1.5}
ROUNDS = 3
MONTH = date(2026, 10, 1)
MONTH_START = datetime(2026, 9, 30, 17, tzinfo=timezone.utc)  # 1 October 00:00 WIB
MONTH_END = datetime(2026, 10, 31, 17, tzinfo=timezone.utc)
TODAY = date(2026, 11, 2)


class Rollback(Exception):
    """Raised at the end of a measured run so that the next round starts from the same data."""


def make_app(url, folder):
    from scm import create_app

    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="bench", UPLOAD_FOLDER=str(folder),
                      MAIL_SEND_ON_COMMIT=False)


def migrate_and_add_wapus(app, wapus: int) -> list[int]:
    """Migrate the database, then add ``wapus`` WAPUs, each with a contract (bulk, through Core)."""
    from flask_migrate import upgrade
    from sqlalchemy import insert

    from scm.core.database import unit_of_work
    from scm.core.models import StoredFile
    from scm.extensions import db
    from scm.registration.models import Contract, Wapu

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        with unit_of_work():
            file = StoredFile(original_name="k.pdf", stored_name="k.pdf", content_type="application/pdf",
                              size=1, sha256="0" * 64)
            db.session.add(file)
            db.session.flush()
            db.session.execute(insert(Wapu), [
                dict(code=f"W{i:04d}", name=f"PT Bench {i}", address="Jl. Bench", npwp=f"{i:015d}", nib=f"{i:013d}",
                     created_at=datetime(2025, 1, 1, 2, tzinfo=timezone.utc))
                for i in range(1, wapus + 1)])
            ids = db.session.execute(db.select(Wapu.id).order_by(Wapu.id)).scalars().all()
            db.session.execute(insert(Contract), [
                dict(wapu_id=wapu_id, number=f"K/{wapu_id}", start_date=date(2025, 1, 1), end_date=date(2027, 12, 31),
                     file_id=file.id) for wapu_id in ids])
        db.session.remove()
    return ids


def bulk_load(app, table: str, columns: tuple[str, ...], rows) -> None:
    """Write ``rows`` (tuples of ``columns``, datetimes as naive UTC) straight to ``table``: COPY on
    PostgreSQL, one executemany in one transaction on SQLite."""
    from scm.extensions import db

    with app.app_context():
        raw = db.engine.raw_connection()
        if db.engine.dialect.name == "postgresql":
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        else:
            raw.execute("BEGIN")
            raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            rows)
            raw.execute("COMMIT")
        raw.close()


def derive_summary_and_analyze(app) -> None:
    """The usage summary from the stamps (as migration 0013_usage_summary fills it), then fresh planner statistics."""
    from scm.core.database import unit_of_work
    from scm.extensions import db
    from scm.stamping.summary import rebuild_usage

    with app.app_context():
        with unit_of_work():
            rebuild_usage()
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")


def load(app, wapus: int, stamps: int, start=MONTH_START, end=MONTH_END):
    """Schema, WAPUs with contracts, the stamps of the month [start, end) (bulk: the rows
    ``insert_stamps`` and the batch path write) and their usage summary."""
    ids = migrate_and_add_wapus(app, wapus)
    bulk_load(app, "stamps", ("serial", "wapu_id", "state", "document_type", "fingerprint", "source", "occurred_at",
                              "stamped_at", "created_at"), stamp_rows(ids, stamps, start, end))
    derive_summary_and_analyze(app)


def stamp_rows(ids, stamps, start=MONTH_START, end=MONTH_END):
    """The month's stamps spread evenly over the WAPUs and the month, as naive UTC (as stored)."""
    span = (end - start).total_seconds()
    start = start.replace(tzinfo=None)
    for n in range(stamps):
        moment = start + timedelta(seconds=n * span / stamps)
        yield (f"B{n:09d}", ids[n % len(ids)], "stamped", "surat_perjanjian", "f", "batch", moment, moment, moment)


def app_run(app):
    """One billing run, timed, then rolled back."""
    from scm.billing.services import run_billing
    from scm.core.database import unit_of_work
    from scm.extensions import db

    with app.app_context():
        start = time.perf_counter()
        try:
            with unit_of_work():
                run = run_billing(MONTH, source="cli", today=TODAY)
                db.session.flush()
                elapsed = time.perf_counter() - start
                created = run.created
                raise Rollback
        except Rollback:
            pass
        finally:
            db.session.remove()
    return elapsed, created


def raw_sqlite(path):
    import sqlite3

    def run():
        conn = sqlite3.connect(path)
        start = time.perf_counter()
        rows = conn.execute(
            "SELECT wapu_id, count(*) FROM stamps WHERE state = 'stamped' AND stamped_at >= ? AND stamped_at < ? "
            "GROUP BY wapu_id", (MONTH_START.strftime("%Y-%m-%d %H:%M:%S"), MONTH_END.strftime("%Y-%m-%d %H:%M:%S"))
        ).fetchall()
        elapsed = time.perf_counter() - start
        conn.close()
        return elapsed, sum(count for _, count in rows)

    return run


def raw_postgres(url):
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")

    def run():
        with psycopg.connect(dsn) as conn:
            start = time.perf_counter()
            rows = conn.execute(
                "SELECT wapu_id, count(*) FROM stamps WHERE state = 'stamped' AND stamped_at >= %s "
                "AND stamped_at < %s GROUP BY wapu_id",
                (MONTH_START.replace(tzinfo=None), MONTH_END.replace(tzinfo=None))).fetchall()
            elapsed = time.perf_counter() - start
        return elapsed, sum(count for _, count in rows)

    return run


def measure(label, app, raw, stamps, wapus):
    app_times, raw_times = [], []
    for _ in range(ROUNDS):
        raw_elapsed, counted = raw()
        app_elapsed, created = app_run(app)
        raw_times.append(raw_elapsed)
        app_times.append(app_elapsed)
    assert counted == stamps and created == wapus, (counted, created)
    best_app, best_raw = min(app_times), min(raw_times)
    ratio, target = best_app / best_raw, TARGETS[label]
    print(f"{label:<10} billing run {best_app:7.3f} s   raw GROUP BY {best_raw:7.3f} s   "
          f"ratio {ratio:4.2f}x  target <= {target:.1f}x  {'met' if ratio <= target else 'NOT MET'}"
          f"   ({stamps:,} stamps, {wapus} WAPUs, {created} drafts)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stamps", type=int, default=2_000_000)
    parser.add_argument("--wapus", type=int, default=400)
    parser.add_argument("--postgres", dest="postgres", action="store_true", default=None)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="scm-bench-billing-"))
    try:
        path = folder / "bench.db"
        app = make_app(f"sqlite:///{path}", folder)
        start = time.perf_counter()
        load(app, args.wapus, args.stamps)
        print(f"SQLite: loaded {args.stamps:,} stamps in {time.perf_counter() - start:.1f} s")
        measure("SQLite", app, raw_sqlite(str(path)), args.stamps, args.wapus)
        from tests.fixtures.database import PostgresCluster, _pg_bin

        postgres = args.postgres if args.postgres is not None else bool(_pg_bin("initdb"))
        if postgres:
            cluster = PostgresCluster()
            url = cluster.start("scm_bench")
            try:
                app = make_app(url, folder)
                start = time.perf_counter()
                load(app, args.wapus, args.stamps)
                print(f"PostgreSQL: loaded {args.stamps:,} stamps in {time.perf_counter() - start:.1f} s")
                measure("PostgreSQL", app, raw_postgres(url), args.stamps, args.wapus)
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
