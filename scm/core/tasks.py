"""Scheduled jobs and ``flask scheduler run|run-once|runs`` (APScheduler in the foreground, beside gunicorn).

Every run goes through :func:`run_job`: it takes the job's lease in ``job_locks`` with one
conditional UPDATE, so of two schedulers started by mistake only one runs a job at a time (the
other records a skipped run), and records the run in ``job_runs``. A crashed scheduler's lease
expires after ``lease``. The jobs themselves are safe to repeat: they only do work that is due.
"""

import importlib
import logging
import os
import secrets
import signal
import socket
import sys
import traceback
from datetime import timedelta

import click
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import current_app
from flask.cli import AppGroup
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from scm.core.database import in_batches, unit_of_work, utcnow
from scm.core.formatting import WIB, format_wib
from scm.core.logs import log_context
from scm.core.models import JobLock, JobOutcome, JobRun
from scm.extensions import db

log = logging.getLogger("scm.scheduler")

LEASE = timedelta(minutes=30)  # longer than any job runs
SHORT_LEASE = timedelta(minutes=5)  # every-minute jobs: a crashed scheduler blocks them 5 minutes at most
ABANDONED = "abandoned: its scheduler stopped before the run ended"


def send_outbox_job():
    """Send the due outbox mail."""
    from scm.core.services import deliver_outbox

    sent, failed = deliver_outbox(limit=500)
    return {"sent": sent, "failed": failed}


def prune_records_job(now=None):
    """Daily: delete old job runs, remove the bodies of old sent mail, drop the files of background
    tasks past their download time, and delete uploads held longer than a day with the file contents
    nobody uses any more (the audit log is never pruned)."""
    from scm.core.background import prune_tasks
    from scm.core.services import prune_outbox
    from scm.core.uploads import prune_held_uploads

    now = now or utcnow()
    config = current_app.config
    return {"job_runs_deleted": prune_job_runs(now - timedelta(days=config["JOB_RUN_RETENTION_DAYS"])),
            "mail_bodies_removed": prune_outbox(now - timedelta(days=config["OUTBOX_RETENTION_DAYS"])),
            **prune_tasks(now, config["JOB_RUN_RETENTION_DAYS"]),
            **prune_held_uploads(now)}


# name -> ("module:function" returning a dict of counts, imported when run; trigger). Each feature
# registers its own jobs from its ``init_app``, so that core knows no feature.
JOBS = {}


def register_job(name, path, trigger):
    """Declare scheduled job ``name``: ``path`` is ``"module:function"``, ``trigger`` an APScheduler
    trigger, or a function of the app's config returning one (a schedule that is a setting)."""
    JOBS[name] = (path, trigger)


def job_trigger(name):
    """Job ``name``'s trigger for the current app."""
    trigger = JOBS[name][1]
    return trigger(current_app.config) if callable(trigger) else trigger


register_job("send-outbox", "scm.core.tasks:send_outbox_job", IntervalTrigger(minutes=1))
register_job("prune-records", "scm.core.tasks:prune_records_job", CronTrigger(hour=3, minute=30, timezone=WIB))


def job_function(name):
    """The function behind job ``name``, imported now."""
    module, function = JOBS[name][0].split(":")
    return getattr(importlib.import_module(module), function)


def describe_schedule(trigger):
    """A trigger in words: ``every minute``, ``daily at 08:00 WIB``, ``monthly on day 1 at 01:00 WIB``."""
    if isinstance(trigger, IntervalTrigger):
        seconds = int(trigger.interval.total_seconds())
        if seconds % 60:
            return ngettext("every second", "every %(num)d seconds", seconds)
        minutes = seconds // 60
        return ngettext("every minute", "every %(num)d minutes", minutes)
    fields = {f.name: str(f) for f in getattr(trigger, "fields", ()) if not f.is_default}
    if set(fields) <= {"day", "hour", "minute"} and {"hour", "minute"} <= set(fields):
        at = f"{int(fields['hour']):02d}:{int(fields['minute']):02d} WIB"
        if "day" in fields:
            return _("monthly on day %(day)s at %(time)s", day=fields["day"], time=at)
        return _("daily at %(time)s", time=at)
    return str(trigger)


def format_duration(run):
    """How long a finished run took: ``0.4 s``, ``2 min 5 s``; empty while it runs."""
    if run.finished_at is None:
        return ""
    seconds = (run.finished_at - run.started_at).total_seconds()
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def new_holder():
    """Who holds a lease: this host and process, and a random part for this run."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def acquire_lease(name, holder, lease=LEASE):
    """Take job ``name``'s lease if nobody holds it or the holder's lease expired; True if taken."""
    now = utcnow()
    with unit_of_work():
        if db.session.execute(select(JobLock.name).where(JobLock.name == name)).first() is None:
            try:
                with db.session.begin_nested():
                    db.session.add(JobLock(name=name))
            except IntegrityError:  # another scheduler created it at the same moment
                pass
        taken = db.session.execute(
            update(JobLock)
            .where(JobLock.name == name, or_(JobLock.holder.is_(None), JobLock.locked_until < now))
            .values(holder=holder, locked_until=now + lease)
            .execution_options(synchronize_session=False)
        ).rowcount
    return taken == 1


def release_lease(name, holder):
    """Give the lease back (only if still ours: an expired lease may have been taken over)."""
    with unit_of_work():
        db.session.execute(
            update(JobLock).where(JobLock.name == name, JobLock.holder == holder)
            .values(holder=None, locked_until=None).execution_options(synchronize_session=False)
        )


def _start_run(name, holder, outcome):
    """Record a run (RUNNING, or SKIPPED and already finished); returns its id."""
    with unit_of_work():
        now = utcnow()
        if outcome == JobOutcome.RUNNING:  # we hold the lease: a run still "running" died with its scheduler
            db.session.execute(
                update(JobRun).where(JobRun.name == name, JobRun.outcome == JobOutcome.RUNNING)
                .values(outcome=JobOutcome.FAILED, finished_at=now, error=ABANDONED)
                .execution_options(synchronize_session=False)
            )
        run = JobRun(name=name, started_at=now, outcome=outcome, counts={}, host=holder,
                     finished_at=now if outcome == JobOutcome.SKIPPED else None)
        db.session.add(run)
        db.session.flush()
        return run.id


def _finish_run(run_id, outcome, counts=None, error=None):
    with unit_of_work():
        db.session.execute(
            update(JobRun).where(JobRun.id == run_id)
            .values(finished_at=utcnow(), outcome=outcome, counts=counts or {}, error=error)
            .execution_options(synchronize_session=False)
        )


def last_run_ids():
    """The id of each job's last run that was not skipped (the jobs page shows it)."""
    return select(func.max(JobRun.id)).where(JobRun.outcome != JobOutcome.SKIPPED).group_by(JobRun.name)


def prune_job_runs(before, *, batch=1000) -> int:
    """Delete the runs started before ``before``; returns how many. A run still running and each
    job's last run stay (a monthly job keeps its last run however short the retention)."""
    return in_batches(delete(JobRun), JobRun.id, JobRun.started_at < before, JobRun.outcome != JobOutcome.RUNNING,
                      JobRun.id.not_in(last_run_ids()), batch=batch)


def lease_for(name) -> timedelta:
    """Every-minute jobs hold a short lease (they are quick); the others the long one."""
    trigger = job_trigger(name)
    return SHORT_LEASE if isinstance(trigger, IntervalTrigger) and trigger.interval <= timedelta(minutes=1) else LEASE


def run_job(name, *, holder=None, lease=None):
    """Run job ``name`` now unless another scheduler holds its lease, and record the run.

    Returns the job's counts, or None when skipped; a failure is recorded, then raised.
    """
    holder = holder or new_holder()
    lease = lease or lease_for(name)
    try:
        if not acquire_lease(name, holder, lease):
            _start_run(name, holder, JobOutcome.SKIPPED)
            log.info("job %s skipped: another scheduler holds its lease", name)
            return None
        try:
            run_id = _start_run(name, holder, JobOutcome.RUNNING)
            with log_context(f"job:{name}:{run_id}"):  # every line logged during the run names it
                try:
                    counts = dict(job_function(name)() or {})
                except BaseException as error:
                    db.session.rollback()  # whatever the job left unfinished in the session
                    message = traceback.format_exception_only(error)[-1].strip()[:2000]
                    _finish_run(run_id, JobOutcome.FAILED, error=message)
                    log.exception("job %s failed", name)
                    raise
                _finish_run(run_id, JobOutcome.SUCCESS, counts)
                log.info("job %s: %s", name, counts)
                return counts
        finally:
            release_lease(name, holder)
    finally:
        db.session.remove()


def record_run(name, *, started_at, outcome, counts=None, error=None):
    """Record a run of job ``name`` done by hand outside the scheduler (e.g. ``flask quota verify``)."""
    with unit_of_work():
        db.session.add(JobRun(name=name, started_at=started_at, finished_at=utcnow(), outcome=outcome,
                              counts=counts or {}, error=error, host=new_holder()))


scheduler_cli = AppGroup("scheduler", help="Scheduled jobs.")


@scheduler_cli.command("run")
def run():
    """Run the scheduled jobs in the foreground until stopped (Ctrl+C)."""
    app = current_app._get_current_object()
    scheduler = BlockingScheduler(timezone=WIB, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": None})  # late is better than never

    def wrap(name):
        def job():
            with app.app_context():
                try:
                    run_job(name)
                except Exception:  # recorded and logged by run_job; the scheduler carries on
                    pass

        return job

    click.echo("Scheduler running (Ctrl+C to stop):")
    for name in JOBS:
        trigger = job_trigger(name)
        scheduler.add_job(wrap(name), trigger, id=name)
        click.echo(f"  {name:<20} {describe_schedule(trigger)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a service stop, like Ctrl+C: let running jobs end
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=True)  # running jobs finish and give their leases back


@scheduler_cli.command("run-once")
@click.argument("name")
def run_once(name):
    """Run job NAME now (one of those ``flask scheduler run`` lists) and print what it did."""
    if name not in JOBS:  # checked here, not by click.Choice: JOBS is read when the command runs
        raise click.BadParameter(f"unknown job; one of: {', '.join(JOBS)}", param_hint="NAME")
    try:
        counts = run_job(name)
    except Exception as error:
        raise click.ClickException(f"{name}: failed: {traceback.format_exception_only(error)[-1].strip()}") from None
    if counts is None:
        click.echo(f"{name}: skipped: another scheduler is running it")
    else:
        click.echo(f"{name}: success: {_counts_text(counts)}")


@scheduler_cli.command("runs")
@click.option("--limit", default=20, show_default=True, help="How many of the latest runs.")
def runs(limit):
    """List the latest job runs, newest first."""
    for run in db.session.execute(select(JobRun).order_by(JobRun.id.desc()).limit(limit)).scalars():
        click.echo("\t".join((run.name, format_wib(run.started_at, with_seconds=True), format_duration(run),
                              run.outcome.value, _counts_text(run.counts), run.error or "")).rstrip())


def _counts_text(counts):
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "-"
