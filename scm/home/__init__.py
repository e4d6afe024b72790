"""Pages that span the features: the dashboard, notifications, the audit log, the scheduled jobs, the
background tasks.

It sits above every feature: each offers its dashboard part as ``dashboard_panel(user, today)``.
"""

from flask import Blueprint

bp = Blueprint("home", __name__)


def init_app(app):
    from scm.home import jobs_views, task_views, views  # noqa: F401  (registers routes)

    app.register_blueprint(bp)
    _register_tasks()


def _register_tasks():
    from flask import url_for
    from flask_babel import lazy_gettext as _l

    from scm.core.background import register_task

    register_task("home.audit_export", "scm.home.tasks:audit_export_task", _l("Audit log export (%(fmt)s)"),
                  done=_l("%(rows)s rows."), back=_l("Audit log"), back_url=lambda _params: url_for("home.audit_log"))
