"""A WAPU's users page (distributor admin, the WAPU's own SPV) and the stand-ins page."""

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from scm.auth.decorators import roles_required
from scm.auth.forms import ConfirmForm
from scm.auth.models import Role, User
from scm.auth.scoping import get_scoped_or_404
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError, ValidationErrors
from scm.core.views import field_error, no_store
from scm.extensions import db
from scm.people import bp, services
from scm.people.forms import ContactForm, StandInForm, WapuUserForm
from scm.people.models import StandIn
from scm.registration.models import Wapu

MANAGERS = (Role.DIST_ADMIN, Role.WAPU_SPV)
SUPERVISORS = (Role.WAPU_SPV, Role.DIST_SPV, Role.DIST_ADMIN)


def _show_errors(form, error):
    if isinstance(error, ValidationErrors):
        for name, message in error.errors.items():
            field_error(form, ServiceError(message, field=name))
    else:
        field_error(form, error)


def _managed_wapu(wapu_id):
    wapu = get_scoped_or_404(Wapu, wapu_id, current_user)  # another WAPU's: 404
    if not services.may_manage_users_of(wapu, current_user):
        abort(403)
    return wapu


def _managed_user(user_id):
    user = db.session.get(User, user_id)
    if user is None or not user.is_wapu:
        abort(404)
    _managed_wapu(user.wapu_id)
    if not services.may_manage(user, current_user):
        abort(403)
    return user


def _shown(user, password):
    return [{"name": user.name, "email": user.email, "role": user.role.label, "password": password}]


@bp.route("/wapus/<int:wapu_id>/users")
@roles_required(*MANAGERS)
def wapu_users(wapu_id):
    """The WAPU's users with their state and what the reader may do to each."""
    wapu = _managed_wapu(wapu_id)
    users = db.session.execute(
        select(User).where(User.wapu_id == wapu.id).order_by(User.active.desc(), User.role, User.name)
    ).scalars().all()
    return render_template("people/wapu_users.html", wapu=wapu, users=users, form=ConfirmForm(),
                           may_manage=lambda u: services.may_manage(u, current_user),
                           may_add=bool(services.roles_assignable_by(current_user)))


@bp.route("/wapus/<int:wapu_id>/users/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new_wapu_user(wapu_id):
    """Add a user to the WAPU; the one-time password is shown once and emailed."""
    wapu = _managed_wapu(wapu_id)
    form = WapuUserForm()
    form.role.choices = [(r.value, r.label) for r in services.roles_assignable_by(current_user)]
    if form.validate_on_submit():
        try:
            with unit_of_work():
                user, password = services.add_wapu_user(
                    db.session.get(Wapu, wapu_id), current_user, name=form.name.data, email=form.email.data,
                    phone=form.phone.data, role=form.role.data)
                shown = _shown(user, password)
        except ServiceError as error:
            _show_errors(form, error)
        else:
            return no_store(render_template("people/one_time_password.html", users=shown, wapu=wapu))
    return render_template("people/user_form.html", form=form, wapu=wapu, user=None)


@bp.route("/wapu-users/<int:user_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit_wapu_user(user_id):
    """Change a WAPU user's contact details (checked as at registration)."""
    user = _managed_user(user_id)
    form = ContactForm(obj=user)
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.update_user_contact(db.session.get(User, user_id), current_user, name=form.name.data,
                                             email=form.email.data, phone=form.phone.data)
        except ServiceError as error:
            _show_errors(form, error)
        else:
            flash(_("The contact details have been saved."), "success")
            return redirect(url_for("people.wapu_users", wapu_id=user.wapu_id))
    return render_template("people/user_form.html", form=form, wapu=user.wapu, user=user)


@bp.route("/wapu-users/<int:user_id>/<any(deactivate, activate, reset):action>", methods=["POST"])
@roles_required(*MANAGERS)
def wapu_user_action(user_id, action):
    """Deactivate, reactivate or reset the password of a WAPU user."""
    user = _managed_user(user_id)
    wapu_id = user.wapu_id
    form = ConfirmForm()
    if not form.validate_on_submit():
        return redirect(url_for("people.wapu_users", wapu_id=wapu_id))
    try:
        with unit_of_work():
            user = db.session.get(User, user_id)
            if action == "reset":
                password = services.reset_wapu_user_password(user, current_user)
                shown = _shown(user, password)
            else:
                services.set_wapu_user_active(user, current_user, active=action == "activate")
    except ServiceError as error:
        flash(str(error.message), "danger")
        return redirect(url_for("people.wapu_users", wapu_id=wapu_id))
    if action == "reset":
        return no_store(render_template("people/one_time_password.html", users=shown, wapu=user.wapu))
    flash(_("The user has been deactivated.") if action == "deactivate" else _("The user has been reactivated."),
          "success")
    return redirect(url_for("people.wapu_users", wapu_id=wapu_id))


# --------------------------------------------------------------------------- stand-ins

@bp.route("/stand-ins", methods=["GET", "POST"])
@roles_required(*SUPERVISORS)
def stand_ins():
    """Name a stand-in for a leave; the stand-ins one named, and those one serves."""
    may_name = current_user.role in services.STAND_IN_ROLES
    form = StandInForm()
    form.substitute.choices = [(u.id, f"{u.name} · {u.email} ({u.role.label})")
                               for u in services.stand_in_candidates(current_user)] if may_name else []
    if may_name and form.validate_on_submit():
        try:
            with unit_of_work():
                services.set_stand_in(db.session.get(User, current_user.id), current_user,
                                      substitute=db.session.get(User, form.substitute.data),
                                      start_date=form.start_date.data, end_date=form.end_date.data)
        except ServiceError as error:
            _show_errors(form, error)
        else:
            flash(_("The stand-in has been named."), "success")
            return redirect(url_for("people.stand_ins"))
    named, serving = services.stand_ins_page(current_user)
    return render_template("people/stand_ins.html", form=form, may_name=may_name, named=named, serving=serving,
                           confirm=ConfirmForm())


@bp.route("/stand-ins/<int:stand_in_id>/cancel", methods=["POST"])
@roles_required(*SUPERVISORS)
def cancel_stand_in(stand_in_id):
    stand_in = db.session.get(StandIn, stand_in_id)
    if stand_in is None or stand_in.principal_id != current_user.id:
        abort(404)
    if ConfirmForm().validate_on_submit():
        try:
            with unit_of_work():
                services.cancel_stand_in(db.session.get(StandIn, stand_in_id), current_user)
        except ServiceError as error:
            flash(str(error.message), "danger")
        else:
            flash(_("The stand-in has been cancelled."), "success")
    return redirect(url_for("people.stand_ins"))
