"""Stamping: reserve -> commit or release, batches and usage files reported after the fact,
expiry of forgotten reservations, and the stamping history."""

from apscheduler.triggers.interval import IntervalTrigger
from flask import Blueprint

bp = Blueprint("stamping", __name__)


def init_app(app):
    from scm.core.tasks import register_job
    from scm.stamping import views  # noqa: F401  (registers routes)
    from scm.stamping.cli import usage_cli

    app.register_blueprint(bp)
    app.cli.add_command(usage_cli)
    register_job("expire-reservations", "scm.stamping.tasks:expire_reservations_job", IntervalTrigger(minutes=1))
