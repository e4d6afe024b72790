"""A WAPU's users after approval, and supervisors' stand-ins. The acting user is always an argument.

Who manages whom: ``DIST_ADMIN`` every WAPU user (SPV, FIN, STAFF); a ``WAPU_SPV`` the STAFF and
FIN users of its own WAPU, nobody else. A WAPU keeps at least one active SPV and one active FIN.

Stand-ins: a supervisor (``WAPU_SPV`` or ``DIST_SPV``) on leave names another active user of the
same side who could decide in their place: for a WAPU SPV another SPV of the same WAPU; for a
distributor SPV another ``DIST_SPV`` or a ``DIST_ADMIN``. During the leave (WIB days, both
included) what is routed to the supervisor reaches the stand-in too, and the stand-in's decisions
are recorded on the supervisor's behalf. Segregation of duties still holds.
"""

from datetime import date

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from scm.auth.models import Role, User
from scm.auth.services import check_email, create_user, email_in_use, reset_password, set_user_active
from scm.core.database import utcnow
from scm.core.errors import ServiceError, ValidationErrors
from scm.core.formatting import today_wib
from scm.core.services import notify, queue_email, record_audit, register_audit_action, register_notification
from scm.extensions import db
from scm.people.models import StandIn
from scm.registration.validators import clean_mobile

WAPU_USER_ROLES = (Role.WAPU_SPV, Role.WAPU_FIN, Role.WAPU_STAFF)
SPV_MANAGED_ROLES = (Role.WAPU_FIN, Role.WAPU_STAFF)
# Roles a WAPU must always have one active user of.
REQUIRED_ROLES = (Role.WAPU_SPV, Role.WAPU_FIN)
# Who may stand in for whom: a supervisor's role -> the roles of possible stand-ins.
STAND_IN_ROLES = {
    Role.WAPU_SPV: (Role.WAPU_SPV,),
    Role.DIST_SPV: (Role.DIST_SPV, Role.DIST_ADMIN),
}

register_audit_action("user.contact_changed", _l("Contact details changed"), _l("%(changes)s"))
register_audit_action("stand_in.set", _l("Stand-in named"),
                      _l("%(substitute)s from %(start)s to %(end)s"), start="day", end="day")
register_audit_action("stand_in.cancel", _l("Stand-in cancelled"),
                      _l("%(substitute)s from %(start)s to %(end)s"), start="day", end="day")
register_notification("stand_in_named", _l("%(principal)s named you their stand-in from %(start)s to %(end)s: "
                                           "what waits for their decision reaches you too."))


# --------------------------------------------------------------------------- who manages whom

def roles_assignable_by(actor) -> tuple:
    if actor.role == Role.DIST_ADMIN:
        return WAPU_USER_ROLES
    if actor.role == Role.WAPU_SPV:
        return SPV_MANAGED_ROLES
    return ()


def may_manage_users_of(wapu, actor) -> bool:
    """Whether ``actor`` opens the users page of ``wapu``."""
    return actor.role == Role.DIST_ADMIN or (actor.role == Role.WAPU_SPV and actor.wapu_id == wapu.id)


def may_manage(user, actor) -> bool:
    """Whether ``actor`` may add, deactivate, reactivate, reset or edit ``user``."""
    if not user.is_wapu or user.id == actor.id:
        return False
    if actor.role == Role.DIST_ADMIN:
        return True
    return actor.role == Role.WAPU_SPV and actor.wapu_id == user.wapu_id and user.role in SPV_MANAGED_ROLES


def _check_may_manage(user, actor):
    if not may_manage(user, actor):
        raise ServiceError(_l("You may not manage this user."), code="forbidden")


def _clean_contact(name, email, phone):
    errors = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = _l("This field is required.")
    elif len(name) > 200:
        errors["name"] = _l("At most %(n)d characters.", n=200)
    try:
        email = check_email(email)
    except ServiceError as error:
        errors["email"] = error.message
    try:
        phone = clean_mobile(phone, "phone")
    except ServiceError as error:
        errors["phone"] = error.message
    if errors:
        raise ValidationErrors(errors)
    return name, email, phone


def _send_credentials(user, password, *, reset):
    queue_email(user.email, "user_credentials", sensitive=True, user=user, wapu=user.wapu, password=password,
                reset=reset, login_url=f"{current_app.config['PUBLIC_BASE_URL']}/login")


def add_wapu_user(wapu, actor, *, name, email, phone, role):
    """Add a user to ``wapu`` with a one-time password (shown once, emailed); returns ``(user, password)``."""
    if not may_manage_users_of(wapu, actor):
        raise ServiceError(_l("You may not manage this WAPU's users."), code="forbidden")
    try:
        role = Role(role)
    except ValueError:
        role = None
    if role not in roles_assignable_by(actor):
        raise ServiceError(_l("You may not give this role."), field="role", code="forbidden")
    name, email, phone = _clean_contact(name, email, phone)
    user, password = create_user(wapu, actor, email=email, name=name, role=role, phone=phone)
    _send_credentials(user, password, reset=False)
    return user, password


def _active_ids(wapu_id, role):
    # Locked (FOR UPDATE on PostgreSQL) so that two people deactivating the last two SPVs at once
    # cannot both succeed; SQLite's write transactions are serial anyway.
    return db.session.execute(
        select(User.id).where(User.wapu_id == wapu_id, User.role == role, User.active.is_(True))
        .order_by(User.id).with_for_update()
    ).scalars().all()


def _check_minimum_staffing(user):
    if user.role not in REQUIRED_ROLES:
        return
    others = [i for i in _active_ids(user.wapu_id, user.role) if i != user.id]
    if not others:
        if user.role == Role.WAPU_SPV:
            message = _l("A WAPU must keep at least one active supervisor (SPV): add or reactivate another "
                         "supervisor first.")
        else:
            message = _l("A WAPU must keep at least one active finance user (FIN): add or reactivate another "
                         "finance user first.")
        raise ServiceError(message, code="minimum_staffing")


def set_wapu_user_active(user, actor, *, active: bool):
    """Deactivate (their sessions end at once) or reactivate a WAPU user."""
    _check_may_manage(user, actor)
    if user.active == active:
        raise ServiceError(_l("The user is already active.") if active else _l("The user is already deactivated."),
                           code="transition_not_allowed")
    if not active:
        _check_minimum_staffing(user)
    set_user_active(user, actor, active=active)


def reset_wapu_user_password(user, actor) -> str:
    """A new one-time password for an active WAPU user: shown once, emailed; their sessions end."""
    _check_may_manage(user, actor)
    if not user.active:
        raise ServiceError(_l("Reactivate the user before resetting the password."), code="transition_not_allowed")
    password = reset_password(user, actor)
    _send_credentials(user, password, reset=True)
    return password


def update_user_contact(user, actor, *, name, email, phone):
    """Change a WAPU user's name, email (their login) and mobile number, checked as at registration."""
    _check_may_manage(user, actor)
    name, email, phone = _clean_contact(name, email, phone)
    if email != user.email and email_in_use(email):
        raise ValidationErrors({"email": _l("A user with this email already exists.")})
    changes = [f"{label}: {old or '–'} → {new}" for label, old, new in
               (("name", user.name, name), ("email", user.email, email), ("phone", user.phone, phone)) if old != new]
    if not changes:
        return
    user.name, user.email, user.phone = name, email, phone
    record_audit(actor, "user.contact_changed", user, "; ".join(changes), details={"changes": "; ".join(changes)})
    db.session.flush()


# --------------------------------------------------------------------------- stand-ins

def stand_in_candidates(principal):
    """Active users who may stand in for ``principal``."""
    roles = STAND_IN_ROLES.get(principal.role, ())
    stmt = select(User).where(User.role.in_(roles), User.active.is_(True), User.id != principal.id)
    if principal.is_wapu:
        stmt = stmt.where(User.wapu_id == principal.wapu_id)
    return db.session.execute(stmt.order_by(User.name)).scalars().all()


def _may_stand_in(principal, substitute) -> bool:
    return (substitute.active and substitute.id != principal.id
            and substitute.role in STAND_IN_ROLES.get(principal.role, ())
            and (principal.is_distributor or substitute.wapu_id == principal.wapu_id))


def set_stand_in(principal, actor, *, substitute, start_date: date, end_date: date):
    """``principal`` (a supervisor, or the distributor admin for them) names a stand-in for a leave."""
    if principal.role not in STAND_IN_ROLES:
        raise ServiceError(_l("Only supervisors name stand-ins."), code="forbidden")
    if actor.id != principal.id and actor.role != Role.DIST_ADMIN:
        raise ServiceError(_l("You may name a stand-in only for yourself."), code="forbidden")
    errors = {}
    if substitute is None or not _may_stand_in(principal, substitute):
        errors["substitute"] = _l("Choose an active user who could decide in your place.")
    if start_date is None:
        errors["start_date"] = _l("This field is required.")
    if end_date is None:
        errors["end_date"] = _l("This field is required.")
    elif end_date < today_wib():
        errors["end_date"] = _l("The date cannot be in the past.")
    elif start_date is not None and end_date < start_date:
        errors["end_date"] = _l("The end cannot be before the start.")
    if errors:
        raise ValidationErrors(errors)
    stand_in = StandIn(principal_id=principal.id, substitute_id=substitute.id, start_date=start_date,
                       end_date=end_date, created_by_id=actor.id)
    db.session.add(stand_in)
    db.session.flush()
    details = {"substitute": substitute.email, "start": start_date.isoformat(), "end": end_date.isoformat()}
    record_audit(actor, "stand_in.set", stand_in, f"{substitute.email} for {principal.email} "
                 f"from {start_date} to {end_date}", details=details, ref=principal.email)
    notify([substitute], "stand_in_named", "/stand-ins", principal=principal.name,
           start=start_date.strftime("%d-%m-%Y"), end=end_date.strftime("%d-%m-%Y"))
    return stand_in


def cancel_stand_in(stand_in, actor):
    """End a stand-in early (or before it starts)."""
    if actor.id != stand_in.principal_id and actor.role != Role.DIST_ADMIN:
        raise ServiceError(_l("You may cancel only your own stand-ins."), code="forbidden")
    if stand_in.cancelled_at is not None:
        raise ServiceError(_l("This stand-in was already cancelled."), code="transition_not_allowed")
    stand_in.cancelled_at = utcnow()
    details = {"substitute": stand_in.substitute.email, "start": stand_in.start_date.isoformat(),
               "end": stand_in.end_date.isoformat()}
    record_audit(actor, "stand_in.cancel", stand_in, f"stand-in {stand_in.substitute.email} for "
                 f"{stand_in.principal.email} cancelled", details=details, ref=stand_in.principal.email)
    db.session.flush()


def _current(day):
    return (StandIn.cancelled_at.is_(None), StandIn.start_date <= day, StandIn.end_date >= day)


def principals_of(substitute, day: date | None = None) -> list:
    """The active supervisors ``substitute`` stands in for on ``day`` (today in WIB by default)."""
    day = day or today_wib()
    rows = db.session.execute(
        select(StandIn).where(StandIn.substitute_id == substitute.id, *_current(day)).order_by(StandIn.id)
    ).scalars().all()
    return [s.principal for s in rows if s.principal.active and substitute.active and _may_stand_in(s.principal, substitute)]


def substitutes_for(principals, day: date | None = None) -> list:
    """The active stand-ins of any of ``principals`` on ``day``: routing to a supervisor reaches them too."""
    principals = list(principals)
    if not principals:
        return []
    day = day or today_wib()
    rows = db.session.execute(
        select(StandIn).where(StandIn.principal_id.in_([p.id for p in principals]), *_current(day))
        .order_by(StandIn.id)
    ).scalars().all()
    return [s.substitute for s in rows if _may_stand_in(s.principal, s.substitute)]


def stand_in_mandate(actor, roles, *, wapu_id=None, exclude_ids=(), day: date | None = None):
    """The supervisor ``actor`` decides for on ``day`` (the first whose role is in ``roles``, of
    ``wapu_id`` for WAPU supervisors, not in ``exclude_ids``); None when there is none."""
    for principal in principals_of(actor, day):
        if principal.role in roles and principal.id not in exclude_ids and (
                principal.is_distributor or principal.wapu_id == wapu_id):
            return principal
    return None


def stand_ins_page(user, day: date | None = None):
    """What the stand-ins page shows ``user``: the stand-ins they named and those they serve."""
    day = day or today_wib()
    named = db.session.execute(
        select(StandIn).where(StandIn.principal_id == user.id, StandIn.cancelled_at.is_(None),
                              StandIn.end_date >= day).order_by(StandIn.start_date)
    ).scalars().all()
    serving = db.session.execute(
        select(StandIn).where(StandIn.substitute_id == user.id, StandIn.cancelled_at.is_(None),
                              StandIn.end_date >= day).order_by(StandIn.start_date)
    ).scalars().all()
    return named, serving
