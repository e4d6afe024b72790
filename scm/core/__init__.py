"""Core: database seam, audit log, email outbox, formatting, workflow helper, scheduler, uploads."""

from flask import Blueprint, g, has_request_context, request
from flask_babel import get_locale

bp = Blueprint("core", __name__)

# Everything the pages use is served from this site; no inline script or style, no framing.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
                           "form-action 'self'; frame-ancestors 'none'")


def _unread_count():
    """Unread notifications of the current user (one COUNT, only when the layout asks)."""
    from flask_login import current_user
    from sqlalchemy import func, select

    from scm.core.models import Notification
    from scm.extensions import db

    if not current_user.is_authenticated:
        return 0
    return db.session.execute(
        select(func.count()).select_from(Notification)
        .where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
    ).scalar()


def init_app(app):
    from scm.core import views  # noqa: F401  (registers routes)
    from scm.core.cli import backup_cli, mail_cli
    from scm.core.formatting import register_filters
    from scm.core.forms import LanguageForm

    app.register_blueprint(bp)
    app.cli.add_command(mail_cli)
    app.cli.add_command(backup_cli)
    from scm.core.background import make_queue, queue_cli
    from scm.core.tasks import scheduler_cli

    app.cli.add_command(scheduler_cli)
    app.cli.add_command(queue_cli)
    make_queue(app)
    register_filters(app)

    @app.context_processor
    def inject_layout():
        if not has_request_context():  # emails rendered by commands and jobs
            return {}
        return {"language_form": LanguageForm(formdata=None), "current_locale": str(get_locale()),
                "unread_notifications": _unread_count}

    @app.before_request
    def remember_client_ip():
        g.client_ip = request.remote_addr  # the audit log's IP (services never read the request)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if app.config["HSTS_SECONDS"]:
            response.headers.setdefault("Strict-Transport-Security",
                                        f"max-age={app.config['HSTS_SECONDS']}; includeSubDomains")
        if "attachment" in response.headers.get("Content-Disposition", ""):
            response.headers["Cache-Control"] = "private, no-store"  # every download: invoices, exports
        return response

