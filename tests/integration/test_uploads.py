"""Uploaded files in the database: stored in the caller's unit of work (a rollback leaves nothing),
the same content kept once, held between two requests with an age limit, purged when nobody uses them."""

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from scm.core import tasks
from scm.core.database import unit_of_work, utcnow
from scm.core.models import FileBlob, HeldUpload, StoredFile
from scm.core.uploads import (
    HELD_MAX_AGE_SECONDS,
    Upload,
    hold_upload,
    release_held_upload,
    store_upload,
    stored_bytes,
    take_held_upload,
)
from scm.extensions import db

PDF = b"%PDF-1.4 data %%EOF"


def _count(model):
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("kind", ["contracts", "usage"])
def test_a_held_file_comes_back_until_released(app, kind):
    with app.app_context():
        token = hold_upload(Upload(PDF, "kontrak.pdf"), kind)
        held = take_held_upload(token, kind)
        assert (held.data, held.original_name) == (PDF, "kontrak.pdf")
        assert take_held_upload(token, kind).data == held.data  # taking keeps it by default
        release_held_upload(token, kind)
        assert take_held_upload(token, kind) is None


def test_taking_without_keeping_releases(app):
    with app.app_context():
        token = hold_upload(Upload(PDF, "kontrak.pdf"), "usage")
        assert take_held_upload(token, "usage", keep=False).data == PDF
        assert take_held_upload(token, "usage") is None and _count(HeldUpload) == 0


def test_kinds_do_not_see_each_other(app):
    with app.app_context():
        token = hold_upload(Upload(b"serial,stamped_at\n", "usage.csv"), "usage")
        assert take_held_upload(token, "contracts") is None
        assert take_held_upload(token, "usage").original_name == "usage.csv"


def test_the_token_itself_is_not_in_the_database(app):
    with app.app_context():
        token = hold_upload(Upload(PDF, "kontrak.pdf"), "contracts")
        assert db.session.scalar(select(HeldUpload.token_hash)) == hashlib.sha256(token.encode()).hexdigest()


def _age(days, token=None):
    """Make every held upload (and every file content) ``days`` old."""
    then = utcnow() - timedelta(days=days)
    with unit_of_work():
        db.session.execute(update(HeldUpload).values(created_at=then))
        db.session.execute(update(FileBlob).values(used_at=then))


@pytest.mark.parametrize("kind", ["contracts", "usage"])
def test_a_file_held_longer_than_a_day_is_refused_and_purged(app, kind):
    with app.app_context():
        old = hold_upload(Upload(b"old", "lama.pdf"), kind)
        _age(HELD_MAX_AGE_SECONDS / 86400 + 0.01)
        assert take_held_upload(old, kind) is None
        new = hold_upload(Upload(b"new", "baru.pdf"), kind)  # holding anything purges what is too old
        assert db.session.execute(select(HeldUpload.original_name)).scalars().all() == ["baru.pdf"]
        assert db.session.execute(select(FileBlob.sha256)).scalars().all() == [hashlib.sha256(b"new").hexdigest()]
        assert take_held_upload(new, kind).data == b"new"


def test_prune_records_deletes_old_held_uploads_and_unused_contents_but_never_a_stored_file(app):
    with app.app_context():
        with unit_of_work():
            stored_id = store_upload(Upload(PDF, "kontrak.pdf")).id
        hold_upload(Upload(PDF, "sama.pdf"), "contracts")  # the same content as the stored file
        hold_upload(Upload(b"only held", "x.csv"), "usage")
        _age(2)
        counts = tasks.run_job("prune-records")
        assert counts["held_uploads_deleted"] == 2 and counts["file_blobs_deleted"] == 1
        assert _count(HeldUpload) == 0 and _count(FileBlob) == 1
        assert stored_bytes(db.session.get(StoredFile, stored_id)) == PDF
        assert tasks.run_job("prune-records")["file_blobs_deleted"] == 0


def test_a_content_stored_again_is_marked_as_used_now(app):
    """Storing marks an existing content as used now: it goes only a day after its last use, even when
    nothing names it any more (a purge at that moment leaves it alone: see the PostgreSQL test below)."""
    with app.app_context():
        release_held_upload(hold_upload(Upload(PDF, "kontrak.pdf"), "contracts"), "contracts")
        _age(2)
        with unit_of_work():
            db.session.delete(store_upload(Upload(PDF, "kontrak.pdf")))  # named only for a moment
        assert _count(StoredFile) == 0
        assert tasks.run_job("prune-records")["file_blobs_deleted"] == 0 and _count(FileBlob) == 1
        _age(2)
        assert tasks.run_job("prune-records")["file_blobs_deleted"] == 1 and _count(FileBlob) == 0


def test_the_same_content_is_kept_once(app):
    with app.app_context():
        with unit_of_work():
            first, second = store_upload(Upload(PDF, "a.pdf")), store_upload(Upload(PDF, "b.pdf"))
        with unit_of_work():
            third = store_upload(Upload(PDF, "c.pdf"))
        hold_upload(Upload(PDF, "d.pdf"), "contracts")
        assert len({first.stored_name, second.stored_name, third.stored_name}) == 3
        assert _count(StoredFile) == 3 and _count(FileBlob) == 1
        assert {stored_bytes(s) for s in (first, second, third)} == {PDF}
        assert db.session.get(FileBlob, hashlib.sha256(PDF).hexdigest()).size == len(PDF)


def test_a_unit_of_work_that_fails_leaves_no_file_behind(app):
    with app.app_context():
        with pytest.raises(RuntimeError, match="refused"), unit_of_work():
            store_upload(Upload(PDF, "kontrak.pdf"))
            raise RuntimeError("refused for another reason")
        assert _count(StoredFile) == 0 and _count(FileBlob) == 0


def test_nothing_is_read_from_or_written_to_the_upload_folder(app, tmp_path):
    with app.app_context():
        with unit_of_work():
            stored = store_upload(Upload(PDF, "kontrak.pdf"))
        token = hold_upload(Upload(b"usage", "usage.csv"), "usage")
        app.config["UPLOAD_FOLDER"] = str(tmp_path / "nowhere")
        assert stored_bytes(stored) == PDF and take_held_upload(token, "usage").data == b"usage"
    assert not (tmp_path / "uploads").exists() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("token", ["", "../../etc/passwd", "0" * 31, "g" * 32, None, 12345])
def test_malformed_tokens_find_nothing(app, token):
    with app.app_context():
        assert take_held_upload(token, "usage") is None
        release_held_upload(token, "usage")  # and releasing them touches nothing


def test_a_purge_at_the_same_moment_as_a_store_leaves_the_content(app):
    """PostgreSQL, two transactions at once: a store of an old unused content touches its blob, so the
    purge that runs meanwhile waits for it and then leaves the blob (SQLite runs one writer at a time)."""
    import threading

    from scm.core.uploads import _blob_statement, purge_held_uploads

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite runs one writer at a time")
    with app.app_context():
        release_held_upload(hold_upload(Upload(PDF, "kontrak.pdf"), "contracts"), "contracts")
        _age(2)
        sha256, purged = hashlib.sha256(PDF).hexdigest(), []
        with db.engine.connect() as storing:
            with storing.begin():
                storing.execute(_blob_statement(Upload(PDF, "kontrak.pdf"), sha256, utcnow()))

                def purge():
                    with app.app_context(), db.engine.begin() as conn:
                        purged.append(purge_held_uploads(conn, utcnow()))

                purging = threading.Thread(target=purge)
                purging.start()
                purging.join(1)
                assert purging.is_alive()  # waiting for the storing transaction's row lock
                storing.execute(StoredFile.__table__.insert().values(
                    stored_name="x.pdf", original_name="kontrak.pdf", content_type="application/pdf", size=len(PDF),
                    sha256=sha256, created_at=utcnow()))
            purging.join(30)
        assert purged == [(0, 0)]
        assert stored_bytes(db.session.execute(select(StoredFile)).scalar_one()) == PDF
