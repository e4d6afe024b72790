"""Users, roles, login, password change, tenant scoping and role decorators."""

from flask import Blueprint, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

bp = Blueprint("auth", __name__)

# Pages a user who must change their password may still open.
_ALLOWED_BEFORE_PASSWORD_CHANGE = {"auth.change_password", "auth.logout", "core.set_language", "static",
                                   "bootstrap.static"}
# Probes of load balancers and scrapers never load a user: a cookie sent to them must not turn a
# database outage into a 500 instead of the probe's own 503.
_PROBES = {"core.healthz", "core.readyz", "metrics"}


def init_app(app):
    from scm.auth import views  # noqa: F401  (registers routes)
    from scm.auth.cli import users_cli
    from scm.auth.models import User
    from scm.extensions import db, login_manager

    app.register_blueprint(bp)
    app.cli.add_command(users_cli)

    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to open this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(token):
        return db.session.execute(
            select(User).where(User.session_token == token, User.active.is_(True))
        ).scalar_one_or_none()

    @app.before_request
    def enforce_password_change():
        if request.endpoint in _PROBES or request.blueprint == "api":  # the API authenticates by token
            return None
        session.permanent = True  # idle timeout applies to every session
        if (current_user.is_authenticated and current_user.must_change_password
                and request.endpoint not in _ALLOWED_BEFORE_PASSWORD_CHANGE):
            return redirect(url_for("auth.change_password"))
        return None
