"""Quota accounts and the append-only ledger: issue, adjust, balances and verify."""

from apscheduler.triggers.cron import CronTrigger
from flask import Blueprint

bp = Blueprint("quota", __name__)


def init_app(app):
    from scm.core.formatting import WIB
    from scm.core.metrics import register_gauges
    from scm.core.tasks import register_job
    from scm.quota import views  # noqa: F401  (registers routes)
    from scm.quota.cli import quota_cli
    from scm.quota.metrics import verification_gauges
    from scm.quota.tasks import VERIFY_JOB

    app.register_blueprint(bp)
    app.cli.add_command(quota_cli)
    register_job(VERIFY_JOB, "scm.quota.tasks:verify_quota_job", CronTrigger(hour=2, minute=0, timezone=WIB))
    register_gauges("quota", verification_gauges)
