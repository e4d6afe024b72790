"""Retention: the daily ``prune-records`` job deletes old job runs and removes the bodies of old sent
mail, in batches; it never touches the audit log, a running job, the job leases or unsent mail."""

from datetime import timedelta

from sqlalchemy import event, func, select

from scm.core import tasks
from scm.core.database import unit_of_work, utcnow
from scm.core.models import AuditLog, JobLock, JobOutcome, JobRun, OutboxEmail, OutboxState
from scm.core.services import ERASED_BODY, PRUNED_BODY, prune_outbox, record_audit
from scm.extensions import db

NO_FILES = {"held_uploads_deleted": 0, "file_blobs_deleted": 0,  # held uploads: see test_uploads.py
            "task_files_deleted": 0, "tasks_deleted": 0}  # task files: see test_month_end.py


def _runs(name, *ages_and_outcomes):
    now = utcnow()
    with unit_of_work():
        for days, outcome in ages_and_outcomes:
            started = now - timedelta(days=days)
            db.session.add(JobRun(name=name, started_at=started, outcome=outcome, counts={"done": 1}, host="h",
                                  finished_at=None if outcome == JobOutcome.RUNNING else started))


def _mail(subject, days, state=OutboxState.SENT, body="Isi surat", sensitive=False):
    moment = utcnow() - timedelta(days=days)
    with unit_of_work():
        db.session.add(OutboxEmail(to_address="budi@example.com", subject=subject, body=body, sensitive=sensitive,
                                   state=state, attempts=1, created_at=moment, next_attempt_at=moment,
                                   sent_at=moment if state == OutboxState.SENT else None))


def _audit_rows():
    return db.session.execute(select(AuditLog.id, AuditLog.action, AuditLog.summary, AuditLog.created_at)
                              .order_by(AuditLog.id)).all()


def test_prune_records_keeps_what_is_young_running_unsent_or_audited(app):
    with app.app_context():
        _runs("send-outbox", (120, JobOutcome.SUCCESS), (100, JobOutcome.FAILED), (95, JobOutcome.SKIPPED),
              (89, JobOutcome.SUCCESS), (1, JobOutcome.SUCCESS))
        _runs("expire-reservations", (200, JobOutcome.RUNNING), (150, JobOutcome.SUCCESS), (91, JobOutcome.SKIPPED))
        _runs("draft-billing", (400, JobOutcome.SUCCESS), (120, JobOutcome.SUCCESS))  # monthly, switched off since
        tasks.acquire_lease("send-outbox", "host:1:x")
        _mail("lama terkirim", 200)
        _mail("lama terkirim 2", 181)
        _mail("kata sandi", 300, body=ERASED_BODY, sensitive=True)
        _mail("baru terkirim", 179)
        _mail("lama tertunda", 300, state=OutboxState.PENDING)
        _mail("lama gagal", 300, state=OutboxState.FAILED)
        with unit_of_work():
            for years in (10, 1):
                record_audit(None, "test.old", summary=f"{years} years ago").created_at = \
                    utcnow() - timedelta(days=365 * years)
        audit = _audit_rows()
        locks = db.session.execute(select(JobLock.name, JobLock.holder)).all()

        assert tasks.run_job("prune-records") == {"job_runs_deleted": 5, "mail_bodies_removed": 2, **NO_FILES}

        left = db.session.execute(select(JobRun.name, JobRun.outcome, JobRun.started_at).order_by(JobRun.id)).all()
        ages = [(name, outcome.value, (utcnow() - started).days) for name, outcome, started in left]
        assert ages == [  # the running one, each job's last run that was not skipped, and the young ones
            ("send-outbox", "success", 89), ("send-outbox", "success", 1),
            ("expire-reservations", "running", 200), ("expire-reservations", "success", 150),
            ("draft-billing", "success", 120), ("prune-records", "success", 0)]
        bodies = dict(db.session.execute(select(OutboxEmail.subject, OutboxEmail.body)).all())
        assert bodies == {"lama terkirim": PRUNED_BODY, "lama terkirim 2": PRUNED_BODY, "kata sandi": ERASED_BODY,
                          "baru terkirim": "Isi surat", "lama tertunda": "Isi surat", "lama gagal": "Isi surat"}
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 6  # rows stay
        assert _audit_rows() == audit and len(audit) == 2  # the audit log is never pruned
        assert db.session.execute(select(JobLock.name, JobLock.holder).where(JobLock.name != "prune-records")).all() \
            == locks == [("send-outbox", "host:1:x")]  # another job's lease is left alone

        assert tasks.run_job("prune-records") == {"job_runs_deleted": 0, "mail_bodies_removed": 0, **NO_FILES}
        assert _audit_rows() == audit


def test_the_ages_come_from_the_settings(app):
    app.config.update(JOB_RUN_RETENTION_DAYS=7, OUTBOX_RETENTION_DAYS=30)
    with app.app_context():
        _runs("send-outbox", (8, JobOutcome.SUCCESS), (6, JobOutcome.SUCCESS))
        _mail("31 hari", 31)
        _mail("29 hari", 29)
        assert tasks.run_job("prune-records") == {"job_runs_deleted": 1, "mail_bodies_removed": 1, **NO_FILES}
        assert db.session.scalar(select(OutboxEmail.body).where(OutboxEmail.subject == "29 hari")) == "Isi surat"


def test_pruning_goes_in_batches_of_short_transactions(app):
    with app.app_context():
        _runs("send-outbox", *[(100 + i, JobOutcome.SUCCESS) for i in range(7)], (1, JobOutcome.SUCCESS))
        for i in range(5):
            _mail(f"lama {i}", 200)
        _mail("baru", 1)
        commits = []

        def count(_conn):
            commits.append(1)

        event.listen(db.engine, "commit", count)
        try:
            cutoff = utcnow() - timedelta(days=90)
            assert tasks.prune_job_runs(cutoff, batch=3) == 7
            assert len(commits) == 3  # 3 + 3 + 1
            commits.clear()
            assert prune_outbox(cutoff, batch=2) == 5
            assert len(commits) == 3  # 2 + 2 + 1
        finally:
            event.remove(db.engine, "commit", count)
        assert db.session.scalar(select(func.count()).select_from(JobRun)) == 1
        assert db.session.execute(select(OutboxEmail.body).where(OutboxEmail.body != PRUNED_BODY)).scalars().all() \
            == ["Isi surat"]
