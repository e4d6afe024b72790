"""Login, logout, password change and the distributor admin's user management."""

from flask import current_app, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from scm.auth import bp, services
from scm.auth.decorators import roles_required
from scm.auth.forms import (
    ChangePasswordForm,
    ConfirmForm,
    DistributorUserForm,
    ForgotPasswordForm,
    LoginForm,
    ResetPasswordForm,
)
from scm.auth.models import DISTRIBUTOR_ROLES, Role, User
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.services import deliver_outbox, record_audit
from scm.core.views import field_error, no_store, paginate, safe_next
from scm.extensions import db


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with email and password."""
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if form.validate_on_submit():
        with unit_of_work():
            result = services.authenticate(form.email.data, form.password.data)
        if result.error:
            form.password.errors.append(result.error)
        else:
            lang = session.get("lang")
            session.clear()  # a fresh session on login (no fixation)
            if lang:
                session["lang"] = lang
            session.permanent = True
            login_user(result.user)
            if current_user.must_change_password:
                flash(_("Please choose your own password before you continue."), "warning")
                return redirect(url_for("auth.change_password"))
            return redirect(safe_next(request.args.get("next")) or url_for("home.index"))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out (POST with a CSRF token)."""
    form = ConfirmForm()
    if form.validate_on_submit():
        with unit_of_work():
            user = db.session.get(User, current_user.id)
            user.rotate_session_token()  # the old cookie, replayed, is anonymous (on every device)
            record_audit(user, "auth.logout", user, "logout", details={})
        logout_user()
        lang = session.get("lang")
        session.clear()
        if lang:
            session["lang"] = lang
        flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change one's own password; required after a one-time password."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.change_password(current_user, current_password=form.current_password.data,
                                         new_password=form.new_password.data)
        except ServiceError as error:
            field_error(form, error)
        else:
            # The session token rotated with the password: keep this session, end all others.
            login_user(current_user._get_current_object())
            session.permanent = True
            flash(_("Your password has been changed."), "success")
            return redirect(url_for("home.index"))
    return render_template("auth/change_password.html", form=form,
                           min_length=services.MIN_PASSWORD_LENGTH)


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link by email; the answer is the same whether the email has an account."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.change_password"))
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        with unit_of_work():
            message_id = services.request_password_reset(form.email.data, client_ip=g.get("client_ip"))
        response = make_response(render_template("auth/forgot_password_sent.html", email=form.email.data.strip()))
        if message_id is not None and current_app.config["MAIL_SEND_ON_COMMIT"]:
            response.call_on_close(_send_later(message_id))  # after the answer: both answers take as long
        return response
    return render_template("auth/forgot_password.html", form=form)


def _send_later(message_id):
    app = current_app._get_current_object()

    def send():
        with app.app_context():
            deliver_outbox(ids=[message_id])

    return send


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token):
    """Choose a new password through the emailed link (once, before it expires)."""
    if services.find_reset_token(token) is None:
        return no_store(render_template("auth/reset_link_invalid.html")), 404
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.reset_forgotten_password(token, new_password=form.new_password.data)
        except ServiceError as error:
            if error.code == "invalid_token":
                return no_store(render_template("auth/reset_link_invalid.html")), 404
            field_error(form, error)
        else:
            if current_user.is_authenticated:
                logout_user()
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            flash(_("Your password has been changed. Log in with the new password."), "success")
            return redirect(url_for("auth.login"))
    return no_store(render_template("auth/reset_password.html", form=form, min_length=services.MIN_PASSWORD_LENGTH))


@bp.route("/admin/users")
@roles_required(Role.DIST_ADMIN)
def users():
    """Distributor users, with their state."""
    stmt = select(User).where(User.role.in_(DISTRIBUTOR_ROLES)).order_by(User.active.desc(), User.name)
    page = paginate(stmt)
    return render_template("auth/users.html", page=page, form=ConfirmForm())


@bp.route("/admin/users/new", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def create_user():
    """Create a distributor user; the one-time password is shown once."""
    form = DistributorUserForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                user, password = services.create_distributor_user(
                    current_user, email=form.email.data, name=form.name.data, role=form.role.data
                )
                shown = {"name": user.name, "email": user.email, "role": user.role.label}
        except ServiceError as error:
            field_error(form, error)
        else:
            return no_store(render_template("auth/one_time_password.html", users=[shown | {"password": password}]))
    return render_template("auth/user_form.html", form=form)


@bp.route("/admin/users/<int:user_id>/<any(deactivate, activate, reset):action>", methods=["POST"])
@roles_required(Role.DIST_ADMIN)
def user_action(user_id, action):
    """Deactivate, reactivate or reset the password of a distributor user."""
    form = ConfirmForm()
    user = db.get_or_404(User, user_id)
    if user.role not in DISTRIBUTOR_ROLES or not form.validate_on_submit():
        return redirect(url_for("auth.users"))
    try:
        with unit_of_work():
            user = db.session.get(User, user_id)
            if action == "reset":
                password = services.reset_password(user, current_user)
            else:
                services.set_user_active(user, current_user, active=action == "activate")
            shown = {"name": user.name, "email": user.email, "role": user.role.label}
    except ServiceError as error:
        flash(str(error.message), "danger")
        return redirect(url_for("auth.users"))
    if action == "reset":
        return no_store(render_template("auth/one_time_password.html", users=[shown | {"password": password}]))
    flash(_("The user has been updated."), "success")
    return redirect(url_for("auth.users"))
