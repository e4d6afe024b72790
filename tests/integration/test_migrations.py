"""The migrations are the schema's truth: an upgraded empty database equals the models; the BIGINT keys
migrate a database holding data; the files of the upload folder move into the database."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError

from scm.core.database import unit_of_work
from scm.core.services import record_audit
from scm.extensions import db


def test_upgrade_on_an_empty_database_gives_exactly_the_models_schema(app):
    # The `app` database was built by `flask db upgrade` (see conftest), not by create_all().
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
        assert diff == [], diff
        tables = set(inspect(conn).get_table_names())
    assert set(db.metadata.tables) <= tables
    assert "alembic_version" in tables


BEFORE_BIGINT, BIGINT = "0004_history_audit", "0005_bigint_keys"
GROWING = ("stamps", "quota_entries", "audit_log", "job_runs", "outbox_emails")


def _id_types(conn):
    """PostgreSQL: {table: (type of its id column, type of the sequence behind it)}."""
    return {table: (conn.execute(text(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = :table AND column_name = 'id'"), {"table": table}).scalar_one(),
        conn.execute(text("SELECT data_type FROM information_schema.sequences "
                          "WHERE sequence_schema || '.' || sequence_name = pg_get_serial_sequence(:table, 'id')"),
                     {"table": table}).scalar_one()) for table in GROWING}


def _rows(conn):
    return {table: conn.execute(text(f"SELECT count(*), coalesce(max(id), 0) FROM {table}")).one() for table in GROWING}


def _append_only_holds(conn):
    """The database itself still refuses to change the audit log and the ledger."""
    for statement in ("UPDATE audit_log SET summary = 'rewritten'", "DELETE FROM audit_log",
                      "UPDATE quota_entries SET quantity = quantity + 1", "DELETE FROM quota_entries"):
        with pytest.raises(DBAPIError, match="append-only"), conn.begin_nested():
            conn.execute(text(statement))


@pytest.mark.timeout(900)
def test_bigint_keys_migrate_a_database_holding_the_demo_and_the_books_still_balance(empty_app):
    """0004 + the demo, then 0005: BIGINT keys on PostgreSQL (a documented no-op on SQLite), the data
    in place, `flask quota verify` clean, the append-only triggers kept; down and up again.

    The demo is loaded by today's code, so into today's schema (its contracts go to file_blobs), and
    the database then goes down to 0004 (0008_file_store writes the contracts back to the folder)."""
    app, runner = empty_app, empty_app.test_cli_runner()
    postgres = not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    with app.app_context():
        upgrade()
    loaded = runner.invoke(args=["demo", "load"])
    assert loaded.exit_code == 0, loaded.output
    ran = runner.invoke(args=["scheduler", "run-once", "expire-reservations"])  # a job run too
    assert ran.exit_code == 0, ran.output
    with app.app_context():
        downgrade(revision=BEFORE_BIGINT)
        with db.engine.connect() as conn:
            before = _rows(conn)
            assert before["stamps"][0] > 20_000 and all(count for count, _ in before.values()), before
            if postgres:
                assert set(_id_types(conn).values()) == {("integer", "integer")}
        upgrade()
        with db.engine.connect() as conn:
            assert _rows(conn) == before
            if postgres:
                assert set(_id_types(conn).values()) == {("bigint", "bigint")}
            else:
                assert {table: [c["type"].__class__.__name__ for c in inspect(conn).get_columns(table)
                                if c["name"] == "id"] for table in GROWING} == {t: ["INTEGER"] for t in GROWING}
            _append_only_holds(conn)
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
            assert diff == [], diff
    verify = runner.invoke(args=["quota", "verify"])
    assert verify.exit_code == 0 and "OK" in verify.output, verify.output
    with app.app_context(), db.engine.connect() as conn:
        before = _rows(conn)  # the check is recorded as a verify-quota run

    with app.app_context():
        downgrade(revision=BEFORE_BIGINT)
        with db.engine.connect() as conn:
            assert _rows(conn) == before
            if postgres:
                assert set(_id_types(conn).values()) == {("integer", "integer")}
            _append_only_holds(conn)
        upgrade()
        with db.engine.begin() as conn:  # the keys now go past 2^31 - 1
            if postgres:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('audit_log', 'id'), {2 ** 40})"))
            else:
                conn.execute(text(f"INSERT INTO audit_log (id, actor_label, action, object_type, object_id, summary, "
                                  f"object_ref, created_at) VALUES ({2 ** 40}, 'system', 'test.jump', '', '', '', '', "
                                  f"'2026-12-01 00:00:00')"))
        with unit_of_work():
            entry = record_audit(None, "test.after_jump", summary="a key past 2^31")
        assert entry.id == 2**40 + 1
    verify = runner.invoke(args=["quota", "verify"])
    assert verify.exit_code == 0, verify.output


BEFORE_FILES, FILES = "0007_contracts", "0008_file_store"


def _contract_downloads(app, email):
    """Every registration's and contract's PDF, as the download routes give them."""
    from scm.registration.models import Contract, Registration
    from tests.fixtures.client import Client

    client = Client(app.test_client())
    assert client.login(email).status_code == 302
    with app.app_context():
        urls = [f"/registrations/{i}/contract" for i in db.session.execute(select(Registration.id)).scalars()]
        urls += [f"/contracts/{i}/file" for i in db.session.execute(select(Contract.id)).scalars()]
        db.session.remove()
    pdfs = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and response.data.startswith(b"%PDF"), url
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["Cache-Control"] == "private, no-store"
        pdfs[url] = response.data
    return pdfs


def _stored(app):
    from scm.core.models import StoredFile
    from scm.core.uploads import stored_bytes

    with app.app_context():
        found = {s.stored_name: stored_bytes(s) for s in db.session.execute(select(StoredFile)).scalars()}
        db.session.remove()
    return found


def test_the_files_of_the_upload_folder_move_into_the_database(app, factory, tmp_path, caplog):
    """A database at 0005 whose files are in the upload folder: the upgrade moves them into the database
    (a missing file stops it and changes nothing); afterwards the folder is no longer needed and every
    contract downloads byte for byte. The downgrade writes the files back into the folder."""
    from scm.core.uploads import Upload, store_upload
    from tests.fixtures.factories import pdf_bytes

    spv = factory.user("DIST_SPV")
    factory.wapu()
    factory.wapu()  # the same PDF again: kept once
    factory.registration()
    with app.app_context(), unit_of_work():
        store_upload(Upload(pdf_bytes("lain"), "lain.pdf"))
    downloads, stored = _contract_downloads(app, spv), _stored(app)
    assert len(downloads) == 5 and len(stored) == 4 and len(set(stored.values())) == 2
    folder = tmp_path / "uploads"
    assert not folder.exists()

    with app.app_context():
        downgrade(revision=BEFORE_FILES)  # the files go back to the folder, as before 0008
        assert "file_blobs" not in inspect(db.engine).get_table_names()
    try:
        _the_upgrade_moves_the_folder_in(app, folder, stored, tmp_path, caplog)
    finally:  # on PostgreSQL the tests share the database of `app`: leave it at the head
        with app.app_context():
            upgrade()
            db.session.remove()
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()  # the folder is no longer needed
    assert _stored(app) == stored
    assert _contract_downloads(app, spv) == downloads


def _the_upgrade_moves_the_folder_in(app, folder, stored, tmp_path, caplog):
    on_disk = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert on_disk == stored

    missing = sorted(on_disk)[1]
    (folder / missing).rename(tmp_path / "aside.pdf")
    with app.app_context():
        with pytest.raises(SystemExit):
            upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == BEFORE_FILES
            assert "file_blobs" not in inspect(conn).get_table_names()  # nothing changed
    assert f"missing: {folder / missing}" in caplog.text and "SCM_UPLOAD_FOLDER" in caplog.text

    (tmp_path / "aside.pdf").rename(folder / missing)
    with app.app_context():
        upgrade(revision=FILES)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == FILES
            assert conn.execute(text("SELECT count(*) FROM file_blobs")).scalar() == 2
        upgrade()  # and on to the head
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata) == []
        db.session.remove()
