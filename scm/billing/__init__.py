"""Minimum-use check, monthly postpaid billing, credit notes, payments and their exports."""

import logging

from apscheduler.triggers.cron import CronTrigger
from flask import Blueprint

from scm.core.formatting import WIB

bp = Blueprint("billing", __name__)


def init_app(app):
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one INFO line per CSS parse
    from scm.billing import bank_views, coretax_views, dunning_views, models, views  # noqa: F401  (registers models and routes)
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
    _register_tasks()
    register_job("mark-overdue", "scm.billing.tasks:mark_overdue_job", CronTrigger(hour=0, minute=15, timezone=WIB))
    register_job("dunning", "scm.billing.tasks:dunning_job", CronTrigger(hour=8, minute=30, timezone=WIB))


def _register_tasks():
    """The month's heavy work, run by the queue's workers (``scm.billing.tasks``)."""
    from flask import url_for
    from flask_babel import lazy_gettext as _l

    from scm.core.background import register_task

    def month(params):
        return url_for("billing.month", month=params["month"])

    back = _l("Back to the month")
    documents = _l("%(invoices)s invoices, from their stored PDFs.")
    for kind, function, title, done in (
        ("billing.run", "run_billing_task", _l("Billing run for %(month)s"),
         _l("%(created)s new drafts, %(refreshed)s refreshed, %(unchanged)s unchanged.")),
        ("billing.issue", "issue_month_task", _l("Issuing the invoices of %(month)s"),
         _l("%(issued)s invoices of the month are issued (%(first)s … %(last)s).")),
        ("billing.workbook", "month_workbook_task", _l("Workbook of %(month)s"),
         _l("%(stamps)s stamps in the workbook.")),
        ("billing.zip", "month_zip_task", _l("All invoices of %(month)s (ZIP)"), documents),
        ("billing.pdf", "month_pdf_task", _l("All invoices of %(month)s (PDF)"), documents),
    ):
        register_task(kind, f"scm.billing.tasks:{function}", title, done=done, back=back, back_url=month)

    def refused(task):  # a refused file: every error with its row (a read one: its summary, then the review)
        return url_for("billing.bank_import_errors", task_id=task.id) if "errors" in task.result else None

    register_task("billing.bank_import", "scm.billing.tasks:bank_import_task", _l("Reading the bank statement %(name)s"),
                  done=_l("%(read)s lines read, %(new)s new; %(known)s were already known from an earlier upload."),
                  back=_l("Bank statements"), back_url=lambda _params: url_for("billing.bank_statements"),
                  next_url=refused)
