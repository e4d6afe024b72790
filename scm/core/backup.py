"""Backups of a whole installation: the database, which holds the uploaded files too, with a manifest.

A backup is one folder (``flask backup create --out DIR``)::

    manifest.json       what the backup is: app version, Alembic revision, database kind, time, and
                        the size and SHA-256 of each part
    database.sqlite3    SQLite: a consistent copy made with SQLite's online backup API, or
    database.pgdump     PostgreSQL: ``pg_dump --format=custom`` by the pg_dump of the server's version

The uploaded files (contracts, held uploads) are rows of the database (``file_blobs``), so the one
consistent copy of the database holds every file its rows name. The manifest is written last; a
folder without one is an interrupted backup and is never restored.

``flask backup restore DIR`` checks every part against the manifest, then restores into an empty
database only, and checks every stored file against its recorded SHA-256. A backup made before
the files moved into the database (schema older than ``0008_file_store``) has an ``uploads.tar``
too: it is restored into an empty upload folder, and ``flask db upgrade`` then moves its files into
the database. Beside ``scm.core.database`` this is the one module that knows SQLite from PostgreSQL:
a backup is in each database's own format.
"""

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import func, inspect, select, text

from scm.core.database import utcnow
from scm.core.models import FileBlob, StoredFile
from scm.core.uploads import upload_folder
from scm.extensions import db

FORMAT = 1
MANIFEST = "manifest.json"
UPLOADS = "uploads.tar"  # only in backups made before 0008_file_store: the files of the upload folder
DATABASE_FILE = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
# Rows counted after a restore, so the operator sees at once what came back.
COUNTED = ("wapus", "users", "stamps", "quota_entries", "invoices", "audit_log", "stored_files")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass
class Restored:
    manifest: dict
    rows: dict
    files: int
    head: str
    file_problems: list = field(default_factory=list)


# ------------------------------------------------------------------------------------ helpers


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def app_version() -> str:
    try:
        return version("scm-meterai")
    except PackageNotFoundError:
        return "unknown"


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(current_app.extensions["migrate"].directory)


def _revision(conn) -> str | None:
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _kind() -> str:
    name = db.engine.dialect.name
    if name not in DATABASE_FILE:
        raise BackupError(f"cannot back up a {name} database (SQLite and PostgreSQL only)")
    return name


def _sqlite_path() -> Path:
    database = db.engine.url.database
    if not database or database.startswith(":memory:") or database.startswith("file:"):
        raise BackupError(f"not a SQLite database file: {database!r}")
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy a live SQLite database with its online backup API: one consistent snapshot."""
    src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(target, timeout=30)
    try:
        dst.execute("PRAGMA journal_mode=DELETE")
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file (the app turns WAL on again)
    finally:
        src.close()
        dst.close()


def _libpq():
    """The database URL as a libpq connection string, and an environment carrying its password
    (never on a command line, where ``ps`` would show it)."""
    from psycopg.conninfo import make_conninfo

    url = db.engine.url
    params = {"host": url.host, "port": url.port, "user": url.username, "dbname": url.database}
    params.update({key: value for key, value in url.query.items() if isinstance(value, str)})
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    return make_conninfo(**{key: str(value) for key, value in params.items() if value is not None}), env


def _server_major() -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar()) // 10000


def _tool_major(path) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    found = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(found.group(1)) if found else None


def pg_tool(name: str, major: int) -> str:
    """``pg_dump``/``pg_restore`` of the server's major version: from PATH, else /usr/lib/postgresql/N/bin."""
    for candidate in (shutil.which(name), f"/usr/lib/postgresql/{major}/bin/{name}"):
        if candidate and Path(candidate).exists() and _tool_major(candidate) == major:
            return candidate
    raise BackupError(f"no {name} of PostgreSQL {major} (the server's version) on PATH or in "
                      f"/usr/lib/postgresql/{major}/bin: install postgresql-client-{major}")


def _run_tool(args, env):
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {done.stderr.strip() or done.returncode}")


# ------------------------------------------------------------------------------------- create


def create_backup(out: Path) -> dict:
    """Write a backup of the database (the uploaded files are in it) into the new (or empty) folder
    ``out``; returns its manifest. Nothing is left behind when it fails."""
    out = Path(out)
    kind = _kind()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists and is not an empty folder: give a new folder for each backup")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)  # it holds password hashes and the contracts
    try:
        return _write_backup(out, kind)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                child.unlink()
        raise


def _write_backup(out: Path, kind: str) -> dict:
    started = utcnow()
    with db.engine.connect() as conn:
        revision = _revision(conn)
    database = out / DATABASE_FILE[kind]
    if kind == "sqlite":
        _sqlite_copy(_sqlite_path(), database)
        copy = sqlite3.connect(database)
        try:  # the revision of the copy itself
            revision = copy.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        finally:
            copy.close()
        server = sqlite3.sqlite_version
    else:
        major = _server_major()
        conninfo, env = _libpq()
        _run_tool([pg_tool("pg_dump", major), "--format=custom", "--file", str(database), "--dbname", conninfo], env)
        server = str(major)
    manifest = {
        "format": FORMAT, "app": "scm-meterai", "app_version": app_version(), "alembic_revision": revision,
        "created_at": started.isoformat(timespec="seconds"),
        "database": {"kind": kind, "server_version": server},
        "parts": {
            database.name: {"bytes": database.stat().st_size, "sha256": sha256_of(database)},
        },
    }
    partial = out / f".{MANIFEST}.tmp"
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out / MANIFEST)
    return manifest


# ------------------------------------------------------------------------------------ restore


def read_manifest(folder: Path) -> dict:
    """The backup's manifest, once every part it names matches its size and SHA-256."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a complete backup: it has no {MANIFEST}") from None
    except ValueError as error:
        raise BackupError(f"{folder / MANIFEST} is not valid JSON: {error}") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("parts"), dict):
        raise BackupError(f"{folder / MANIFEST} is not a manifest of format {FORMAT}")
    for name, part in manifest["parts"].items():
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise BackupError(f"the backup's part {name} is missing")
        if path.stat().st_size != part["bytes"] or sha256_of(path) != part["sha256"]:
            raise BackupError(f"the backup's part {name} does not match its SHA-256 in the manifest: "
                              "it was damaged or changed; restore another backup")
    return manifest


def restore_backup(folder: Path) -> Restored:
    """Restore the backup in ``folder`` into this app's database, which must be empty (and, for a
    backup made before 0008_file_store, its files into the empty upload folder)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    kind = _kind()
    backup_kind = manifest["database"]["kind"]
    if backup_kind != kind:
        raise BackupError(f"this is a backup of a {backup_kind} database; SCM_DATABASE_URL names a {kind} one")
    database = folder / DATABASE_FILE[kind]
    if database.name not in manifest["parts"]:
        raise BackupError(f"the manifest does not list {database.name}")
    old_files = UPLOADS in manifest["parts"]  # a backup made before the files moved into the database
    scripts, revision = _scripts(), manifest["alembic_revision"]
    try:
        known = revision is not None and scripts.get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for an unknown revision
        known = False
    if not known:
        raise BackupError(f"the backup's schema revision {revision!r} is unknown to this version of SCM Meterai "
                          f"({app_version()}): restore it with the version that made it "
                          f"({manifest.get('app_version')}) or a newer one")
    tables = sorted(inspect(db.engine).get_table_names())
    if tables:
        raise BackupError(
            f"the database {db.engine.url.render_as_string(hide_password=True)} is not empty (it has {len(tables)} "
            f"tables: {', '.join(tables[:5])}{', …' if len(tables) > 5 else ''}). A backup is restored only into "
            "an empty database: create a new one (createdb, or a new SQLite file), point SCM_DATABASE_URL at it "
            "and run the restore again.")
    uploads = upload_folder()
    if old_files and uploads.exists() and any(uploads.iterdir()):
        raise BackupError(f"this backup keeps its files in {UPLOADS}, and the upload folder {uploads} is not "
                          "empty: point SCM_UPLOAD_FOLDER at an empty folder")

    db.session.remove()
    db.engine.dispose()
    if kind == "sqlite":
        _sqlite_copy(database, _sqlite_path())
    else:
        conninfo, env = _libpq()
        # One transaction: a failure leaves the database empty. --no-owner: the restoring role owns it all.
        _run_tool([pg_tool("pg_restore", _server_major()), "--no-owner", "--no-privileges", "--exit-on-error",
                   "--single-transaction", "--dbname", conninfo, str(database)], env)
    db.engine.dispose()
    if old_files:
        uploads.mkdir(parents=True, exist_ok=True)
        with tarfile.open(folder / UPLOADS) as tar:
            tar.extractall(uploads, filter="data")  # plain files inside the folder only
    rows = _count_rows()
    return Restored(manifest=manifest, rows=rows, files=rows.get("stored_files", 0),
                    head=scripts.get_current_head(), file_problems=check_stored_files())


def _count_rows() -> dict:
    present = set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        return {table: conn.execute(select(func.count()).select_from(text(table))).scalar()
                for table in COUNTED if table in present}


def check_stored_files() -> list[str]:
    """Every stored file the database names, checked against its SHA-256 (its blob in the database,
    one file in memory at a time; on disk for a schema older than 0008_file_store); the problems found."""
    problems = []
    in_database = "file_blobs" in inspect(db.engine).get_table_names()
    for stored in db.session.execute(select(StoredFile).order_by(StoredFile.id)).scalars().all():
        if in_database:
            content = db.session.execute(
                select(FileBlob.content).where(FileBlob.sha256 == stored.sha256)).scalar_one_or_none()
            found, same = content is not None, content is not None and hashlib.sha256(content).hexdigest() == stored.sha256
            del content
        else:
            path = upload_folder() / stored.stored_name
            found = path.is_file()
            same = found and sha256_of(path) == stored.sha256
        if not found:
            problems.append(f"missing: {stored.stored_name} ({stored.original_name})")
        elif not same:
            problems.append(f"changed: {stored.stored_name} ({stored.original_name})")
    db.session.remove()
    return problems
