"""``flask backup create`` / ``flask backup restore``: a backup of the database alone, restored into an
empty database, balances its books, has the same rows, prints the same invoice PDFs byte for byte and
gives the same uploaded contracts byte for byte; a damaged backup or a database that is not empty is
refused and left alone; a backup made before the files moved into the database (with uploads.tar)
still restores, and ``flask db upgrade`` moves its files in."""

import json
import shutil
import tarfile
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import func, inspect, select, text

from scm.auth.models import Role, User
from scm.billing import payments, services
from scm.billing.models import CreditNote, Invoice
from scm.core.database import unit_of_work
from scm.extensions import db
from scm.quota.services import issue_quota, verify_ledger
from scm.registration.models import Contract, Wapu
from scm.stamping.services import StampEvent, ingest_events
from tests.fixtures.client import Client

OCT = date(2026, 10, 1)



def _head(app):
    """The revision the code's migrations end at (the one a fresh backup is made at)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(app.extensions["migrate"].directory).get_current_head()

def _books(app, factory):
    """Two WAPUs with quota, stamps (October) and an issued invoice each; a credit note; a payment."""
    fin = factory.user(Role.DIST_FIN)
    wapus = [factory.wapu(), factory.wapu()]
    with app.app_context():
        actor = db.session.execute(select(User).where(User.email == fin)).scalar_one()
        for n, wapu in enumerate(wapus):
            with unit_of_work():
                issue_quota(wapu["id"], quantity=2000, key=f"po-backup-{n}", reference=f"PO/BACKUP/{n}")
            events = [StampEvent(f"BK{n}-{i:05d}", "stamped" if i % 50 else "failed",
                                 datetime(2026, 10, 1 + i % 28, 3, i % 60, tzinfo=timezone.utc), "surat_perjanjian")
                      for i in range(1200 + 300 * n)]
            with unit_of_work():
                ingest_events(wapu["id"], None, events=events)
        with unit_of_work():
            services.run_billing(OCT, source="cli", today=date(2026, 11, 3))
        invoices = db.session.execute(select(Invoice.id).order_by(Invoice.id)).scalars().all()
        for invoice_id in invoices:
            with unit_of_work():
                services.issue_invoice(invoice_id, db.session.get(User, actor.id), today=date(2026, 11, 3))
        with unit_of_work():
            payments.issue_credit_note(invoices[0], db.session.get(User, actor.id), amount=250_000,
                                       reason="Koreksi", today=date(2026, 11, 20))
        with unit_of_work():
            payments.record_payment(invoices[1], db.session.get(User, actor.id), paid_on=date(2026, 11, 25),
                                    amount=1_000_000, reference="TRF-1", today=date(2026, 11, 25))
    return fin


def _every_row_count(app):
    with app.app_context(), db.engine.connect() as conn:
        return {table: conn.execute(select(func.count()).select_from(text(table))).scalar()
                for table in sorted(inspect(conn).get_table_names())}


def _downloads(app, fin):
    """Every invoice, credit note and contract PDF as the download routes give them, by URL."""
    client = Client(app.test_client())
    assert client.login(fin).status_code == 302
    with app.app_context():
        urls = [f"/billing/invoices/{i}.pdf" for i in db.session.execute(select(Invoice.id)).scalars()]
        urls += [f"/billing/credit-notes/{i}.pdf" for i in db.session.execute(select(CreditNote.id)).scalars()]
        urls += [f"/contracts/{i}/file" for i in db.session.execute(select(Contract.id)).scalars()]
    pdfs = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and response.data.startswith(b"%PDF"), url
        pdfs[url] = response.data
    return pdfs


def _tree(folder):
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_a_backup_restores_into_an_empty_database_with_the_same_books_pdfs_and_uploads(
        app, empty_app, factory, tmp_path):
    fin = _books(app, factory)
    before = _every_row_count(app)
    assert before["stamps"] == 2700 and before["invoices"] == 2 and before["stored_files"] == 2
    assert before["file_blobs"] == 1  # the two contracts are the same PDF, kept once
    backup = tmp_path / "backup"

    made = app.test_cli_runner().invoke(args=["backup", "create", "--out", str(backup)])
    assert made.exit_code == 0, made.output
    manifest = json.loads((backup / "manifest.json").read_text())
    kind = empty_app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0].split("+")[0]
    database = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}[kind]
    assert sorted(p.name for p in backup.iterdir()) == sorted([database, "manifest.json"])  # no uploads.tar
    assert manifest["database"]["kind"] == kind and manifest["alembic_revision"] == _head(app)
    assert list(manifest["parts"]) == [database] and manifest["app_version"]
    assert (backup.stat().st_mode & 0o777) == 0o700

    restored = empty_app.test_cli_runner().invoke(args=["backup", "restore", str(backup)])
    assert restored.exit_code == 0, restored.output
    assert "stamps 2700" in restored.output and "2 uploaded files" in restored.output
    assert "Next: flask quota verify" in restored.output

    assert _every_row_count(empty_app) == before
    with empty_app.app_context():
        assert verify_ledger() == []
    verify = empty_app.test_cli_runner().invoke(args=["quota", "verify"])
    assert verify.exit_code == 0 and "OK" in verify.output
    # Neither app has (nor needs) an upload folder: the contracts come from the database.
    assert not Path(empty_app.config["UPLOAD_FOLDER"]).exists() and not Path(app.config["UPLOAD_FOLDER"]).exists()
    # Invoices are rendered from the database on each download; WeasyPrint writes no creation date
    # (no dcterms.created in the HTML), so the same rows give the same bytes.
    original, copy = _downloads(app, fin), _downloads(empty_app, fin)
    assert len(original) == 2 + 1 + 2 and original == copy

    # The sequences came back too: new rows follow the old ones.
    with empty_app.app_context(), unit_of_work():
        wapu_id = db.session.execute(select(Wapu.id).order_by(Wapu.id)).scalars().first()
        assert issue_quota(wapu_id, quantity=5, key="after-restore", reference="x").id == before["quota_entries"] + 1


def test_a_damaged_backup_or_a_database_in_use_is_refused_and_nothing_changes(app, empty_app, factory, tmp_path):
    factory.wapu()
    runner, backup = app.test_cli_runner(), tmp_path / "backup"
    assert runner.invoke(args=["backup", "create", "--out", str(backup)]).exit_code == 0
    again = runner.invoke(args=["backup", "create", "--out", str(backup)])
    assert again.exit_code != 0 and "not an empty folder" in again.output

    into_itself = runner.invoke(args=["backup", "restore", str(backup)])
    assert into_itself.exit_code != 0 and "is not empty" in into_itself.output and "createdb" in into_itself.output

    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    database = next(p.name for p in backup.iterdir() if p.name.startswith("database."))
    with open(damaged / database, "r+b") as part:
        part.seek(600)
        part.write(b"X")
    refused = empty_app.test_cli_runner().invoke(args=["backup", "restore", str(damaged)])
    assert refused.exit_code != 0 and f"{database} does not match its SHA-256" in refused.output
    shutil.copy(backup / database, damaged / database)
    manifest = json.loads((damaged / "manifest.json").read_text())
    (damaged / "manifest.json").write_text(json.dumps({**manifest, "alembic_revision": "0099_from_the_future"}))
    future = empty_app.test_cli_runner().invoke(args=["backup", "restore", str(damaged)])
    assert future.exit_code != 0 and "'0099_from_the_future' is unknown to this version" in future.output
    (damaged / "manifest.json").unlink()
    incomplete = empty_app.test_cli_runner().invoke(args=["backup", "restore", str(damaged)])
    assert incomplete.exit_code != 0 and "no manifest.json" in incomplete.output
    with empty_app.app_context():
        assert inspect(db.engine).get_table_names() == []  # refused before touching anything
    assert not Path(empty_app.config["UPLOAD_FOLDER"]).exists()


def test_a_backup_made_before_the_files_moved_into_the_database_still_restores(app, empty_app, factory, tmp_path):
    """A backup of schema 0005 with its uploads.tar: restored into an empty database and an empty upload
    folder (a folder that is not empty is refused), then ``flask db upgrade`` moves its files in."""
    from flask_migrate import downgrade, upgrade

    from scm.core.backup import sha256_of

    fin = factory.user(Role.DIST_FIN)
    factory.wapu()
    downloads = _downloads(app, fin)
    with app.app_context():
        db.session.remove()
        downgrade(revision="0007_contracts")  # the files are back in the upload folder, as before 0008
    try:
        folder = Path(app.config["UPLOAD_FOLDER"])
        backup = tmp_path / "old-backup"
        made = app.test_cli_runner().invoke(args=["backup", "create", "--out", str(backup)])
        assert made.exit_code == 0, made.output
    finally:  # on PostgreSQL the tests share the database of `app`: leave it at the head
        with app.app_context():
            upgrade()
            db.session.remove()
    with tarfile.open(backup / "uploads.tar", "w") as tar:  # what the backups of that version held too
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name, recursive=False)
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["alembic_revision"] == "0007_contracts"
    manifest["parts"]["uploads.tar"] = {"bytes": (backup / "uploads.tar").stat().st_size,
                                        "sha256": sha256_of(backup / "uploads.tar"), "files": 1}
    (backup / "manifest.json").write_text(json.dumps(manifest))

    uploads = Path(empty_app.config["UPLOAD_FOLDER"])
    uploads.mkdir()
    (uploads / "stray.pdf").write_bytes(b"%PDF-")
    busy = empty_app.test_cli_runner().invoke(args=["backup", "restore", str(backup)])
    assert busy.exit_code != 0 and "upload folder" in busy.output and "not empty" in busy.output
    (uploads / "stray.pdf").unlink()

    restored = empty_app.test_cli_runner().invoke(args=["backup", "restore", str(backup)])
    assert restored.exit_code == 0, restored.output
    assert "1 uploaded files" in restored.output and "Next: flask db upgrade" in restored.output
    assert _tree(uploads) == _tree(folder)
    with empty_app.app_context():
        upgrade()
        db.session.remove()
    shutil.rmtree(uploads)  # no longer needed
    assert _downloads(empty_app, fin) == downloads
