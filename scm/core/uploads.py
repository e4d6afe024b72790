"""Uploaded files: checked by content, stored outside the web root under a random name.

A file written during a unit of work is removed again if that unit of work rolls back, so a
refused action leaves nothing behind. A valid file on a form that failed for another reason is
*held* under a random token, so the user does not have to upload it again.
"""

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

from scm.core.database import after_rollback
from scm.core.errors import ServiceError
from scm.core.models import StoredFile
from scm.extensions import db

HELD_MAX_AGE_SECONDS = 24 * 3600


@dataclass
class Upload:
    """A checked upload in memory: its bytes and the name the user gave it."""

    data: bytes
    original_name: str
    content_type: str = "application/pdf"


def upload_folder() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


def read_pdf_upload(file_storage, field="contract_file") -> Upload:
    """Read and check an uploaded PDF: not empty, not too large, and really a PDF."""
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    data = file_storage.stream.read(limit + 1)
    name = os.path.basename(file_storage.filename or "contract.pdf")[:255] or "contract.pdf"
    return check_pdf(data, name, field)


def check_pdf(data: bytes, original_name: str, field="contract_file") -> Upload:
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    if not data:
        raise ServiceError(_l("The file is empty."), field=field, code="empty_file")
    if len(data) > limit:
        raise ServiceError(
            _l("The file is larger than %(mb)d MB.", mb=limit // (1024 * 1024)), field=field, code="file_too_large"
        )
    # A PDF starts with "%PDF-" (within the first KiB) and ends with "%%EOF".
    if b"%PDF-" not in data[:1024] or b"%%EOF" not in data[-2048:]:
        raise ServiceError(_l("The file is not a PDF document."), field=field, code="not_pdf")
    return Upload(data=data, original_name=original_name)


def store_upload(upload: Upload) -> StoredFile:
    """Write ``upload`` under a random name and record it; undone if the transaction rolls back."""
    folder = upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    stored_name = f"{secrets.token_hex(16)}.pdf"
    path = folder / stored_name
    tmp = folder / f".{stored_name}.tmp"
    with open(tmp, "wb") as out:
        out.write(upload.data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    after_rollback(lambda: path.unlink(missing_ok=True))
    stored = StoredFile(
        stored_name=stored_name,
        original_name=upload.original_name,
        content_type=upload.content_type,
        size=len(upload.data),
        sha256=hashlib.sha256(upload.data).hexdigest(),
    )
    db.session.add(stored)
    db.session.flush()
    return stored


def stored_path(stored: StoredFile) -> Path:
    return upload_folder() / stored.stored_name


def _held_folder(kind: str) -> Path:
    return upload_folder() / "held" / kind


def _valid_token(token) -> bool:
    return isinstance(token, str) and len(token) == 32 and all(c in "0123456789abcdef" for c in token)


def hold_upload(upload: Upload, kind: str) -> str:
    """Keep a file between two requests (a form shown again, a preview before its apply).

    ``kind`` names the folder (``contracts``, ``usage``); returns a random token. Files older
    than a day are never handed out and are removed the next time anything is held.
    """
    folder = _held_folder(kind)
    folder.mkdir(parents=True, exist_ok=True)
    _purge_old_held(folder)
    token = secrets.token_hex(16)
    (folder / f"{token}.name").write_text(upload.original_name, encoding="utf-8")
    (folder / f"{token}.data").write_bytes(upload.data)
    return token


def take_held_upload(token: str, kind: str, keep=True) -> Upload | None:
    """The upload held under ``token`` (None when unknown, malformed or older than a day)."""
    if not _valid_token(token):
        return None
    data_path = _held_folder(kind) / f"{token}.data"
    try:
        if data_path.stat().st_mtime < time.time() - HELD_MAX_AGE_SECONDS:
            return None
        upload = Upload(data=data_path.read_bytes(),
                        original_name=(_held_folder(kind) / f"{token}.name").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if not keep:
        release_held_upload(token, kind)
    return upload


def release_held_upload(token: str, kind: str) -> None:
    if _valid_token(token):
        for suffix in ("data", "name"):
            (_held_folder(kind) / f"{token}.{suffix}").unlink(missing_ok=True)


def _purge_old_held(folder: Path) -> None:
    cutoff = time.time() - HELD_MAX_AGE_SECONDS
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
        except FileNotFoundError:  # another request purged it first
            pass
