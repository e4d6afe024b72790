"""Pages that span the features: the dashboard, notifications, the audit log, the scheduled jobs, the
background tasks.

It sits above every feature: each offers its dashboard part as ``dashboard_panel(user, today)``.
"""

from flask import Blueprint

bp = Blueprint("home", __name__)


def init_app(app):
    from scm.home import jobs_views, task_views, views  # noqa: F401  (registers routes)

    app.register_blueprint(bp)
