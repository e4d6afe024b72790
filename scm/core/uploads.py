"""Uploaded files: checked by content, kept in the database, which every web node shares.

The bytes of a file are a row of ``file_blobs`` keyed by their SHA-256, so the same content is
kept once; a ``stored_files`` row (a contract) names its blob. A file is stored in the caller's
unit of work: it commits or rolls back with the action, so a refused action leaves nothing behind.
A valid file on a form that failed for another reason is *held* (a ``held_uploads`` row, committed
at once on a connection of its own) under a random token, so the user does not have to upload it
again, and a usage file previewed on one node is applied on another. Held files older than a day
are never handed out; they and the blobs nobody names any more are removed when anything is held
and by the daily ``prune-records`` job.

``UPLOAD_FOLDER`` is read only by the migration that moved the files of the old upload folder into
the database (``0008_file_store``) and by the restore of a backup made before it.
"""

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, exists, select

from scm.core.database import insert_or_touch, own_transaction, unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.models import FileBlob, HeldUpload, StoredFile
from scm.extensions import db

HELD_MAX_AGE_SECONDS = 24 * 3600


@dataclass
class Upload:
    """A checked upload in memory: its bytes and the name the user gave it."""

    data: bytes
    original_name: str
    content_type: str = "application/pdf"


def upload_folder() -> Path:
    """The old upload folder: read only by the migration 0008_file_store and old backups' restore."""
    return Path(current_app.config["UPLOAD_FOLDER"])


def read_pdf_upload(file_storage, field="contract_file") -> Upload:
    """Read and check an uploaded PDF: not empty, not too large, and really a PDF."""
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    data = file_storage.stream.read(limit + 1)
    name = os.path.basename(file_storage.filename or "contract.pdf")[:255] or "contract.pdf"
    return check_pdf(data, name, field)


def size_problem(data: bytes, limit: int):
    """(code, message) when an upload is empty or larger than ``limit`` bytes, else None: every upload
    (contracts, usage files, bank statements) is refused by this before anything else is read."""
    if not data:
        return "empty_file", _l("The file is empty.")
    if len(data) > limit:
        return "file_too_large", _l("The file is larger than %(mb)d MB.", mb=limit // (1024 * 1024))
    return None


def check_pdf(data: bytes, original_name: str, field="contract_file") -> Upload:
    problem = size_problem(data, current_app.config["MAX_UPLOAD_BYTES"])
    if problem:
        code, message = problem
        raise ServiceError(message, field=field, code=code)
    # A PDF starts with "%PDF-" (within the first KiB) and ends with "%%EOF".
    if b"%PDF-" not in data[:1024] or b"%%EOF" not in data[-2048:]:
        raise ServiceError(_l("The file is not a PDF document."), field=field, code="not_pdf")
    return Upload(data=data, original_name=original_name)


def _blob_statement(upload: Upload, sha256: str, now):
    """Keep ``upload``'s bytes once: insert its blob, or mark the existing one as used now (so that
    a purge running at the same time leaves it alone)."""
    return insert_or_touch(FileBlob.__table__, {"sha256": sha256, "size": len(upload.data), "content": upload.data,
                                                "created_at": now, "used_at": now},
                           key="sha256", touch={"used_at": now})


def store_upload(upload: Upload) -> StoredFile:
    """Record ``upload`` in the current unit of work (its bytes once per content); gone if it rolls back."""
    sha256 = hashlib.sha256(upload.data).hexdigest()
    db.session.execute(_blob_statement(upload, sha256, utcnow()))
    stored = StoredFile(
        stored_name=f"{secrets.token_hex(16)}.pdf",
        original_name=upload.original_name,
        content_type=upload.content_type,
        size=len(upload.data),
        sha256=sha256,
    )
    db.session.add(stored)
    db.session.flush()
    return stored


def stored_bytes(stored: StoredFile) -> bytes | None:
    """The bytes of a stored file (None if its blob is missing); loads this one file only."""
    return db.session.execute(select(FileBlob.content).where(FileBlob.sha256 == stored.sha256)).scalar_one_or_none()


def _valid_token(token) -> bool:
    return isinstance(token, str) and len(token) == 32 and all(c in "0123456789abcdef" for c in token)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cutoff():
    return utcnow() - timedelta(seconds=HELD_MAX_AGE_SECONDS)


def hold_upload(upload: Upload, kind: str) -> str:
    """Keep a file between two requests (a form shown again, a preview before its apply).

    ``kind`` keeps one use apart from another (``contracts``, ``usage``); returns a random token.
    Committed at once, on a connection of its own, whatever becomes of the request's unit of work.
    Files older than a day are never handed out and are removed the next time anything is held.
    """
    token = secrets.token_hex(16)
    sha256, now = hashlib.sha256(upload.data).hexdigest(), utcnow()
    with own_transaction() as conn:
        purge_held_uploads(conn, now)
        conn.execute(_blob_statement(upload, sha256, now))
        conn.execute(HeldUpload.__table__.insert().values(
            token_hash=_token_hash(token), kind=kind, original_name=upload.original_name[:255],
            content_type=upload.content_type, sha256=sha256, created_at=now))
    return token


def take_held_upload(token: str, kind: str, keep=True) -> Upload | None:
    """The upload held under ``token`` (None when unknown, malformed or older than a day)."""
    if not _valid_token(token):
        return None
    with db.engine.connect() as conn:
        row = conn.execute(
            select(HeldUpload.original_name, HeldUpload.content_type, FileBlob.content)
            .join(FileBlob, FileBlob.sha256 == HeldUpload.sha256)
            .where(HeldUpload.token_hash == _token_hash(token), HeldUpload.kind == kind,
                   HeldUpload.created_at >= _cutoff())
        ).first()
    if row is None:
        return None
    if not keep:
        release_held_upload(token, kind)
    return Upload(data=bytes(row.content), original_name=row.original_name, content_type=row.content_type)


def release_held_upload(token: str, kind: str) -> None:
    """Forget the upload held under ``token`` (its bytes go with the next purge if nothing else uses them)."""
    if _valid_token(token):
        with own_transaction() as conn:
            conn.execute(delete(HeldUpload).where(HeldUpload.token_hash == _token_hash(token), HeldUpload.kind == kind))


def purge_held_uploads(conn, now) -> tuple[int, int]:
    """Delete held uploads older than a day, then the blobs nobody names that were last used more
    than a day ago; returns (held uploads, blobs) deleted."""
    cutoff = now - timedelta(seconds=HELD_MAX_AGE_SECONDS)
    held = conn.execute(delete(HeldUpload).where(HeldUpload.created_at < cutoff)).rowcount
    blobs = conn.execute(delete(FileBlob).where(
        FileBlob.used_at < cutoff,
        ~exists().where(StoredFile.sha256 == FileBlob.sha256),
        ~exists().where(HeldUpload.sha256 == FileBlob.sha256),
    ).execution_options(synchronize_session=False)).rowcount
    return held, blobs


def prune_held_uploads(now=None) -> dict:
    """For the daily ``prune-records`` job: the purge of :func:`purge_held_uploads`, as counts."""
    with unit_of_work():
        held, blobs = purge_held_uploads(db.session, now or utcnow())
    return {"held_uploads_deleted": held, "file_blobs_deleted": blobs}
