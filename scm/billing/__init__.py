"""Minimum-use check, monthly postpaid billing, credit notes, payments and their exports."""

import logging

from apscheduler.triggers.cron import CronTrigger
from flask import Blueprint

from scm.core.formatting import WIB

bp = Blueprint("billing", __name__)


def init_app(app):
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one INFO line per CSS parse
    from scm.billing import models, views  # noqa: F401  (registers models and routes)
    from scm.billing.cli import billing_cli
    from scm.billing.exports import terbilang
    from scm.billing.reports import invoiced_months
    from scm.core.tasks import register_job
    from scm.stamping.usage_import import closed_month_lookups

    app.register_blueprint(bp)
    app.jinja_env.globals["terbilang"] = terbilang
    if invoiced_months not in closed_month_lookups:
        closed_month_lookups.append(invoiced_months)
    app.cli.add_command(billing_cli)
    register_job("draft-billing", "scm.billing.tasks:draft_billing_job", CronTrigger(day=1, hour=1, minute=0, timezone=WIB))
    register_job("minimum-warnings", "scm.billing.tasks:minimum_warnings_job", CronTrigger(hour=8, minute=0, timezone=WIB))
    register_job("mark-overdue", "scm.billing.tasks:mark_overdue_job", CronTrigger(hour=0, minute=15, timezone=WIB))
