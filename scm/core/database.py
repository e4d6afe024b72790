"""Database seam: column types, SQLite settings, the unit of work and gapless counters.

This is the one place that knows SQLite from PostgreSQL (ARCHITECTURE.md rule 9).
"""

from contextlib import contextmanager
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import BigInteger, DateTime, Enum, Integer, bindparam, event, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from scm.extensions import db

IMMEDIATE = "scm_begin_immediate"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as naive UTC and always returned timezone-aware (UTC).

    SQLite keeps no offset, so every value is normalised to UTC on the way in.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


# The key of a table that grows for years (stamps, quota entries, the audit log, job runs, the outbox):
# BIGINT on PostgreSQL, where INTEGER ends at 2^31 - 1. SQLite keeps INTEGER: its INTEGER PRIMARY KEY
# is the 64-bit rowid already, and only a column declared exactly INTEGER is that alias (a BIGINT
# primary key would lose its autoincrement there).
BigKey = BigInteger().with_variant(Integer(), "sqlite")


def enum_type(enum_cls, length=20):
    """A portable enum column: VARCHAR holding the member's value (no native PG enum)."""
    return Enum(
        enum_cls,
        native_enum=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def is_sqlite(engine=None) -> bool:
    return (engine or db.engine).dialect.name == "sqlite"


def configure_engine_events(engine):
    """SQLite: WAL, a busy timeout, foreign keys, and explicit BEGIN (IMMEDIATE for writes)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy emit BEGIN itself so that writes can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if not str(engine.url.database or "").startswith(":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get(IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


_after_commit_key = "scm_after_commit"


def after_commit(callback):
    """Run ``callback()`` once the current unit of work has committed (e.g. send queued mail)."""
    db.session.info.setdefault(_after_commit_key, []).append(callback)


def _run_callbacks(session, key):
    for callback in session.info.pop(key, []):
        try:
            callback()
        except Exception:  # a follow-up step must never hide the outcome of the action
            current_app.logger.exception("%s step failed", key)


IN_UNIT_OF_WORK = "scm.unit_of_work"


@contextmanager
def unit_of_work():
    """One transaction per user action: commit on success, roll back on any error.

    Views, CLI commands, API calls and jobs wrap a service call in it; services only flush.
    On SQLite the transaction starts with BEGIN IMMEDIATE so that a read-then-write can never
    fail half-way on a lock upgrade; objects loaded before are re-read inside the transaction.
    """
    session = db.session()  # the request's (or command's) own Session behind the scoped proxy
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("unit_of_work() started with unflushed changes in the session")
    if session.in_transaction():
        session.rollback()
    session.info.pop(_after_commit_key, None)
    if is_sqlite():
        session.connection(execution_options={IMMEDIATE: True})
    session.info[IN_UNIT_OF_WORK] = True
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        session.info.pop(_after_commit_key, None)
        raise
    finally:
        session.info.pop(IN_UNIT_OF_WORK, None)
    _run_callbacks(session, _after_commit_key)


def in_unit_of_work() -> bool:
    """Whether the session is inside ``unit_of_work()`` (a write transaction on SQLite)."""
    return bool(db.session.info.get(IN_UNIT_OF_WORK))


@contextmanager
def own_transaction():
    """A short transaction of its own on another connection, beside the session's: committed when
    the block ends whatever becomes of the caller's unit of work (e.g. a file held for the next try
    of a form). Yields a Connection. Never write there what the caller's open transaction has
    locked (PostgreSQL would wait for it forever)."""
    with db.engine.connect() as conn:
        if is_sqlite(conn.engine):
            conn = conn.execution_options(**{IMMEDIATE: True})
        with conn.begin():
            yield conn


def _upsert(table, values: dict, dialect=None):
    """The dialect's INSERT of ``values`` (SQLite and PostgreSQL both speak ON CONFLICT); ``dialect``
    names it when there is no app (a statement built once, at import)."""
    if (dialect or db.engine.dialect.name) == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(table).values(**values)


def insert_or_touch(table, values: dict, key: str, touch: dict):
    """An INSERT of ``values`` into ``table`` that, when a row with the same ``key`` exists already,
    only sets ``touch`` on it (``INSERT ... ON CONFLICT (key) DO UPDATE``, SQLite and PostgreSQL)."""
    return _upsert(table, values).on_conflict_do_update(index_elements=[key], set_=touch)


def insert_or_ignore(table, values: dict, keys, dialect=None):
    """An INSERT of ``values`` into ``table`` that does nothing when a row with the same unique
    ``keys`` exists already (``INSERT ... ON CONFLICT DO NOTHING``). Add ``.returning(...)`` to learn
    whether it inserted: the rowcount is not reliable on every driver."""
    return _upsert(table, values, dialect).on_conflict_do_nothing(index_elements=list(keys))


def count_rows(stmt, limit=None) -> int:
    """How many rows ``stmt`` gives; with ``limit``, counted no further than ``limit`` + 1 (a bounded
    COUNT, enough to tell "more than ``limit``")."""
    stmt = stmt.order_by(None)
    if limit is not None:
        stmt = stmt.limit(limit + 1)
    return db.session.execute(select(func.count()).select_from(stmt.subquery())).scalar()


def run_once_more_on_conflict(operation):
    """Run ``operation()`` in a unit of work; if a concurrent writer inserted the same unique key
    first (IntegrityError, e.g. the same stamp serial), run it once more in a new unit of work:
    the operation then finds that row and answers as for a retry. Operations must be idempotent."""
    try:
        with unit_of_work():
            return operation()
    except IntegrityError:
        with unit_of_work():
            return operation()


def in_batches(statement, key, *conditions, batch=1000) -> int:
    """Apply ``statement`` (an UPDATE or DELETE) to every row that meets ``conditions``, ``batch`` rows
    per unit of work, walking the table's integer primary key ``key`` upwards; returns the rows changed.

    A big table is never held in one long transaction (nor, on SQLite, the write lock for long).
    Each batch is a range of keys with the conditions repeated, so no list of ids is sent.
    """
    changed, after = 0, None
    while True:
        with unit_of_work():
            stmt = select(key).where(*conditions).order_by(key).limit(batch)
            if after is not None:
                stmt = stmt.where(key > after)
            ids = db.session.execute(stmt).scalars().all()
            if ids:
                changed += db.session.execute(
                    statement.where(key >= ids[0], key <= ids[-1], *conditions)
                    .execution_options(synchronize_session=False)).rowcount
        if len(ids) < batch:
            return changed
        after = ids[-1]


def next_number(key: str) -> int:
    """Next value of the gapless counter ``key`` within the current transaction.

    The counter row is bumped with one UPDATE ... RETURNING, which holds its row lock until the
    transaction ends, so two concurrent transactions can never get the same number and a
    rolled-back transaction gives its number back.
    """
    from scm.core.models import Counter

    stmt = (
        update(Counter)
        .where(Counter.key == key)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    )
    value = db.session.execute(stmt).scalar_one_or_none()
    if value is not None:
        return value
    try:
        with db.session.begin_nested():
            db.session.add(Counter(key=key, value=1))
        return 1
    except IntegrityError:  # somebody created it at the same time: bump theirs
        return db.session.execute(stmt).scalar_one()


def current_counter(key: str) -> int:
    from scm.core.models import Counter

    return db.session.execute(select(Counter.value).where(Counter.key == key)).scalar() or 0


def wib_month(column):
    """SQL for the WIB calendar month ('YYYY-MM') of a UTC timestamp column.

    Jakarta has been UTC+7 all year since 1964 (no daylight saving), so a fixed offset is exact.
    SQLite's date functions round to milliseconds (23:59:59.9996 would become the next month), so
    the fraction is cut off first: the stored text starts with ``YYYY-MM-DD HH:MM:SS``.
    """
    from sqlalchemy import func, literal_column

    if is_sqlite():
        return func.strftime("%Y-%m", func.substr(column, 1, 19), "+7 hours")
    return func.to_char(column + literal_column("interval '7 hours'"), "YYYY-MM")


_COUNTER_STATEMENTS = {}


def _counter_statement(table, keys: tuple[str, ...], column: str, rows: int):
    """The upsert of ``rows`` counters, with bind parameters ``k{i}_{key}`` and ``n{i}``, built once per
    shape. Written as text (the same SQL on SQLite and PostgreSQL): SQLAlchemy compiles its own
    ``on_conflict_do_update`` construct again on every execution, which cost more than running it."""
    shape = (table.name, keys, column, rows)
    stmt = _COUNTER_STATEMENTS.get(shape)
    if stmt is None:
        names = [*keys, column]
        values = ", ".join("(" + ", ".join([*(f":k{i}_{key}" for key in keys), f":n{i}"]) + ")" for i in range(rows))
        stmt = text(
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {values} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {column} = {table.name}.{column} + excluded.{column}"
        ).bindparams(*(bindparam(f"k{i}_{key}", type_=table.c[key].type) for i in range(rows) for key in keys),
                     *(bindparam(f"n{i}", type_=table.c[column].type) for i in range(rows)))
        if rows <= 4:  # the shapes of single movements; a batch's shape is built each time
            _COUNTER_STATEMENTS[shape] = stmt
    return stmt


def add_counts(table, keys: tuple[str, ...], column: str, rows: dict) -> None:
    """Add to the counters of ``table``: ``rows`` maps a key tuple (the values of ``keys``, the
    table's primary key) to the number to add to ``column``. One ``INSERT ... ON CONFLICT (keys) DO
    UPDATE SET column = column + excluded.column`` for all of them (SQLite and PostgreSQL).

    The rows go in key order, so that two transactions adding to the same counters lock them in
    the same order on PostgreSQL (no deadlock); a zero is not written."""
    items = [(key, n) for key, n in sorted(rows.items()) if n]
    if not items:
        return
    params = {}
    for i, (key, n) in enumerate(items):
        params.update({f"k{i}_{name}": value for name, value in zip(keys, key, strict=True)})
        params[f"n{i}"] = n
    db.session.connection().execute(_counter_statement(table, keys, column, len(items)), params)


def wib_day(column, dialect_name=None):
    """SQL for the WIB calendar day (a DATE; 'YYYY-MM-DD' text on SQLite) of a UTC timestamp column,
    the same day as ``to_wib(moment).date()`` in Python (a fixed +7 hours: see ``wib_month``)."""
    from sqlalchemy import Date, cast, func, literal_column

    if (dialect_name or db.engine.dialect.name) == "sqlite":
        return func.date(func.substr(column, 1, 19), "+7 hours")
    return cast(column + literal_column("interval '7 hours'"), Date)


def month_of_day(column):
    """SQL for the calendar month ('YYYY-MM') of a DATE column."""
    from sqlalchemy import func

    if is_sqlite():
        return func.substr(column, 1, 7)
    return func.to_char(column, "YYYY-MM")


def prefix_range(column, prefix: str) -> list:
    """WHERE clauses keeping the strings of ``column`` that start with ``prefix``, as one range
    ``column >= prefix AND column < next`` that a plain index on ``column`` serves (``LIKE`` cannot).

    Exact when the column compares code point by code point: SQLite's default (BINARY) collation,
    and collation "C" on PostgreSQL. ``next`` is the prefix with its last character raised by one
    (a last character that cannot be raised is dropped first); none is needed when nothing is left."""
    if not prefix:
        return []
    clauses = [column >= prefix]
    head = prefix
    while head:
        code = ord(head[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are no characters: the next one is U+E000
            code = 0xE000
        if code <= 0x10FFFF:
            clauses.append(column < head[:-1] + chr(code))
            break
        head = head[:-1]
    return clauses
