"""Stamping: reserve -> commit or release, batches and usage files reported after the fact,
expiry of forgotten reservations, and the stamping history."""

from apscheduler.triggers.interval import IntervalTrigger
from flask import Blueprint

bp = Blueprint("stamping", __name__)


def init_app(app):
    from scm.core.metrics import register_gauges
    from scm.core.tasks import register_job
    from scm.quota.services import register_book_check
    from scm.stamping import views  # noqa: F401  (registers routes)
    from scm.stamping.cli import usage_cli
    from scm.stamping.metrics import reservation_gauges
    from scm.stamping.models import document_type_label
    from scm.stamping.summary import verify_summary

    app.register_blueprint(bp)
    app.cli.add_command(usage_cli)
    app.jinja_env.filters["document_type"] = document_type_label
    register_job("expire-reservations", "scm.stamping.tasks:expire_reservations_job", IntervalTrigger(minutes=1))
    register_gauges("stamping", reservation_gauges)
    register_book_check(verify_summary)
    _register_tasks()


def _register_tasks():
    """The usage-file check and apply, run by the queue's workers (``scm.stamping.tasks``)."""
    from flask import url_for
    from flask_babel import lazy_gettext as _l

    from scm.core.background import register_task

    def result(task):
        return url_for("stamping.import_result", task_id=task.id)

    def back(_params):
        return url_for("stamping.import_usage")

    register_task("stamping.usage_check", "scm.stamping.tasks:usage_check_task", _l("Checking the usage file %(name)s"),
                  back=_l("Import usage"), back_url=back, next_url=result)
    register_task("stamping.usage_apply", "scm.stamping.tasks:usage_apply_task", _l("Applying the usage file %(name)s"),
                  back=_l("Import usage"), back_url=back, next_url=result)
    register_task("stamping.history_export", "scm.stamping.tasks:history_export_task", _l("Stamping history export"),
                  done=_l("%(rows)s rows."), back=_l("Stamping history"),
                  back_url=lambda params: url_for("stamping.usage", **params.get("args", {})))
