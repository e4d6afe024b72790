"""Scheduled jobs and ``flask scheduler run`` (APScheduler in the foreground, beside gunicorn).

Every job is safe to repeat: it only does work that is due (mail to send, reservations past
their expiry), with conditional UPDATEs, so two schedulers by mistake cannot double anything.
"""

import logging

import click
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import current_app
from flask.cli import AppGroup

log = logging.getLogger("scm.scheduler")


def _expire_reservations():
    from scm.quota.stamping import expire_reservations

    return {"released": expire_reservations()}


def _send_outbox():
    from scm.core.services import deliver_outbox

    sent, failed = deliver_outbox(limit=500)
    return {"sent": sent, "failed": failed}


# name -> (function, trigger)
JOBS = {
    "expire-reservations": (_expire_reservations, IntervalTrigger(minutes=1)),
    "send-outbox": (_send_outbox, IntervalTrigger(minutes=1)),
}


def run_job(name):
    """Run one job now in its own app context; returns its counts."""
    function, _ = JOBS[name]
    from scm.extensions import db

    try:
        return function()
    finally:
        db.session.remove()


scheduler_cli = AppGroup("scheduler", help="Scheduled jobs.")


@scheduler_cli.command("run")
def run():
    """Run the scheduled jobs in the foreground until stopped (Ctrl+C)."""
    app = current_app._get_current_object()
    scheduler = BlockingScheduler(timezone="Asia/Jakarta")

    def wrap(name):
        def job():
            with app.app_context():
                counts = run_job(name)
                log.info("job %s: %s", name, counts)

        return job

    for name, (_, trigger) in JOBS.items():
        scheduler.add_job(wrap(name), trigger, id=name, max_instances=1, coalesce=True)
    click.echo(f"Scheduler running jobs: {', '.join(JOBS)} (Ctrl+C to stop)")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass


@scheduler_cli.command("run-once")
@click.argument("name", type=click.Choice(sorted(JOBS)))
def run_once(name):
    """Run one job now and print what it did."""
    click.echo(f"{name}: {run_job(name)}")
