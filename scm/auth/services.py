"""Authentication and user management services. The acting user is always an argument."""

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from scm.auth.models import DISTRIBUTOR_ROLES, LoginThrottle, PasswordResetToken, Role, User
from scm.core.database import utcnow
from scm.core.errors import ServiceError
from scm.core.services import queue_email, record_audit, register_audit_action
from scm.extensions import db

MIN_PASSWORD_LENGTH = 10

register_audit_action("auth.login", _l("Logged in"))
register_audit_action("auth.logout", _l("Logged out"))
register_audit_action("auth.login_failed", _l("Login failed"), _l("failure %(failures)s in a row"))
register_audit_action("auth.login_locked", _l("Login refused: locked"))
register_audit_action("auth.lockout", _l("Login locked"), _l("until %(until)s"), until="moment")
register_audit_action("auth.password_changed", _l("Password changed"))
register_audit_action("user.create", _l("User created"), _l("as %(role)s"), role=Role)
register_audit_action("user.reset_password", _l("One-time password issued"))
register_audit_action("user.activate", _l("User reactivated"))
register_audit_action("user.deactivate", _l("User deactivated"))
register_audit_action("auth.password_reset_requested", _l("Password reset link sent"))
register_audit_action("auth.password_reset_throttled", _l("Password reset link refused: too many requests"))
register_audit_action("auth.password_reset", _l("Password reset through the emailed link"))
# Letters and digits that cannot be misread on paper nor retyped in the wrong case. Left out:
# 0/O/o, 1/l/I/i/j, 2/Z/z, 5/S/s, 8/B, U/u/V/v, m (reads as "rn"), q (reads as g or 9), and
# the lower case of the letters whose two cases look alike (c k p w x y).
# 34 symbols: a 12-character password carries 12 * log2(34) ≈ 61 bits of entropy (≥ 50).
_OTP_ALPHABET = "ACDEFGHJKLMNPQRTWXYabdefghnrt34679"


def hash_password(password: str) -> str:
    """Werkzeug's hash with the configured method: scrypt (the tests alone use a cheap one)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


@lru_cache(maxsize=4)
def _dummy_hash(method: str) -> str:
    """Compared against when the email is unknown, so that both paths cost one hash check."""
    return generate_password_hash("not-a-real-password-" + secrets.token_hex(8), method=method)


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def check_email(email: str) -> str:
    """A syntactically valid email address, normalised; raises ServiceError otherwise."""
    try:
        result = validate_email((email or "").strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ServiceError(_l("Enter a valid email address.")) from None
    return result.normalized.lower()


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(password: str, email: str = "") -> list:
    """Why ``password`` is not acceptable (empty list when it is)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(_l("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH))
    lowered = password.strip().lower()
    email = normalize_email(email)
    if email and (lowered == email or lowered == email.split("@")[0]):
        problems.append(_l("The password may not be your email address."))
    if lowered in _common_passwords() or len(set(lowered)) <= 2:
        problems.append(_l("This password is too common; choose another."))
    return problems


def generate_one_time_password() -> str:
    """A random 12-character password in three groups, e.g. ``Xd7h-Qn3r-Tg9A`` (no look-alikes)."""
    chars = "".join(secrets.choice(_OTP_ALPHABET) for _ in range(12))
    return "-".join(chars[i:i + 4] for i in range(0, 12, 4))


def find_active_user(email: str):
    return db.session.execute(
        select(User).where(User.email == normalize_email(email), User.active.is_(True))
    ).scalar_one_or_none()


def active_users(roles=None, *, wapu_id=None) -> list:
    """The active users holding one of ``roles`` (any role when None), of one WAPU when ``wapu_id`` is
    given: whom a notification or an email goes to (a deactivated user hears nothing more)."""
    stmt = select(User).where(User.active.is_(True))
    if roles is not None:
        stmt = stmt.where(User.role.in_(roles))
    if wapu_id is not None:
        stmt = stmt.where(User.wapu_id == wapu_id)
    return db.session.execute(stmt.order_by(User.id)).scalars().all()


def email_in_use(email: str) -> bool:
    """True when a user account (active or not: emails are unique logins) has ``email``."""
    stmt = select(func.count()).select_from(User).where(User.email == normalize_email(email))
    return bool(db.session.execute(stmt).scalar())


@dataclass
class LoginResult:
    user: User | None = None
    error: object = None


def authenticate(email: str, password: str) -> LoginResult:
    """Check a login; counts failures per login name and locks it after too many.

    The outcome is returned, not raised, so that the caller commits the failure count.
    The message is the same whether or not the email belongs to a user.
    """
    config = current_app.config
    identifier = normalize_email(email)[:255]
    now = utcnow()
    throttle = db.session.get(LoginThrottle, identifier)
    if throttle and throttle.locked_until and throttle.locked_until > now:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        record_audit(None, "auth.login_locked", object_type="User", object_id="", ref=identifier,
                     summary=f"login refused while locked: {identifier}", actor_label=identifier, details={})
        return LoginResult(error=_locked_message(throttle, now))

    user = find_active_user(identifier)
    if user is not None and check_password_hash(user.password_hash, password):
        if throttle is not None:
            db.session.delete(throttle)
        user.last_login_at = now
        record_audit(user, "auth.login", user, "login", details={})
        return LoginResult(user=user)
    if user is None:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)

    window = timedelta(minutes=config["LOGIN_WINDOW_MINUTES"])
    if throttle is None:
        throttle = LoginThrottle(identifier=identifier, failures=0, window_started_at=now)
        db.session.add(throttle)
    elif throttle.window_started_at < now - window:
        throttle.failures, throttle.window_started_at, throttle.locked_until = 0, now, None
    throttle.failures += 1
    record_audit(None, "auth.login_failed", object_type="User", object_id=getattr(user, "id", ""), ref=identifier,
                 summary=f"failed login {throttle.failures} for {identifier}", actor_label=identifier,
                 details={"failures": throttle.failures})
    if throttle.failures >= config["LOGIN_MAX_FAILURES"]:
        throttle.locked_until = now + timedelta(minutes=config["LOGIN_LOCK_MINUTES"])
        record_audit(None, "auth.lockout", object_type="User", object_id=getattr(user, "id", ""), ref=identifier,
                     summary=f"{identifier} locked until {throttle.locked_until:%Y-%m-%d %H:%M} UTC",
                     actor_label=identifier, details={"until": throttle.locked_until.isoformat()})
        return LoginResult(error=_locked_message(throttle, now))
    return LoginResult(error=_l("The email or password is wrong."))


def _locked_message(throttle, now):
    minutes = max(1, math.ceil((throttle.locked_until - now).total_seconds() / 60))
    return _l("Too many failed attempts. Try again in %(minutes)d minutes.", minutes=minutes)


def set_password(user: User, password: str, *, must_change: bool) -> None:
    user.password_hash = hash_password(password)
    user.must_change_password = must_change
    user.password_changed_at = utcnow()
    user.rotate_session_token()


def change_password(user: User, *, current_password: str, new_password: str) -> None:
    """The user changes their own password (required after a one-time password)."""
    if not check_password_hash(user.password_hash, current_password):
        raise ServiceError(_l("The current password is wrong."), field="current_password")
    if new_password == current_password:
        raise ServiceError(_l("Choose a password different from the current one."), field="new_password")
    problems = password_problems(new_password, user.email)
    if problems:
        raise ServiceError(problems[0], field="new_password")
    set_password(user, new_password, must_change=False)
    record_audit(user, "auth.password_changed", user, "password changed", details={})


def create_user(wapu, actor, *, email, name, role, phone=None, password=None):
    """Create a user of ``wapu`` (None: a distributor user); returns ``(user, one_time_password)``.
    Without ``password`` one is generated and must be changed at first login."""
    role = Role(role)
    email = check_email(email)
    if role.is_wapu != (wapu is not None):
        raise ServiceError(_l("WAPU roles belong to a WAPU; distributor roles to none."), field="role")
    if email_in_use(email):
        raise ServiceError(_l("A user with this email already exists."), field="email")
    one_time = password is None
    password = password or generate_one_time_password()
    if not one_time:
        problems = password_problems(password, email)
        if problems:
            raise ServiceError(problems[0], field="password")
    user = User(email=email, name=name.strip(), role=role, wapu=wapu, phone=phone,
                password_hash=hash_password(password), must_change_password=one_time)
    db.session.add(user)
    db.session.flush()
    record_audit(actor, "user.create", user, f"{email} as {role}", details={"role": role.value})
    return user, password


def create_distributor_user(actor, *, email, name, role):
    """The distributor admin creates a distributor user with a one-time password."""
    if Role(role) not in DISTRIBUTOR_ROLES:
        raise ServiceError(_l("Choose a distributor role."), field="role")
    return create_user(None, actor, email=email, name=name, role=role)


def reset_password(user: User, actor) -> str:
    """Give ``user`` a new one-time password (shown once); their sessions end."""
    password = generate_one_time_password()
    set_password(user, password, must_change=True)
    record_audit(actor, "user.reset_password", user, f"one-time password issued to {user.email}", details={})
    return password


def set_user_active(user: User, actor, *, active: bool) -> None:
    """Deactivate (sessions end at once) or reactivate a user."""
    if actor is not None and actor.id == user.id and not active:
        raise ServiceError(_l("You cannot deactivate yourself."))
    user.active = active
    user.rotate_session_token()
    record_audit(actor, "user.activate" if active else "user.deactivate", user, user.email, details={})


# --------------------------------------------------------------------------- forgotten password

def _token_hash(token: str) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


def _over_limit(identifier: str, limit: int, now) -> bool:
    """Count one request for ``identifier``; True when it is over ``limit`` within the window.

    The same table and design as the login throttle: one row per name, a window that restarts."""
    window = timedelta(minutes=current_app.config["PASSWORD_RESET_WINDOW_MINUTES"])
    throttle = db.session.get(LoginThrottle, identifier)
    if throttle is None:
        throttle = LoginThrottle(identifier=identifier, failures=0, window_started_at=now)
        db.session.add(throttle)
    elif throttle.window_started_at < now - window:
        throttle.failures, throttle.window_started_at, throttle.locked_until = 0, now, None
    if throttle.failures >= limit:
        return True
    throttle.failures += 1
    return False


def request_password_reset(email: str, *, client_ip: str | None = None):
    """Email a single-use, time-limited reset link to ``email`` if it is an active user's.

    Nothing tells the caller whether it was: the page answers the same either way. Requests are
    throttled per email and per client address (the same answer, no mail). The mail is not sent
    when the transaction commits: the id of its outbox message is returned (None when no link was
    issued) for the web layer to send it once the answer has gone, so that the answer also takes
    the same time either way (the outbox job sends it otherwise)."""
    config = current_app.config
    identifier = normalize_email(email)[:240]
    now = utcnow()
    limit = config["PASSWORD_RESET_MAX_LINKS"]
    throttled = _over_limit(f"reset:{identifier}", limit, now)
    if client_ip and _over_limit(f"reset-ip:{client_ip}"[:255], limit * 10, now):
        throttled = True
    user = find_active_user(identifier)
    if throttled:
        record_audit(None, "auth.password_reset_throttled", object_type="User", object_id=getattr(user, "id", ""),
                     ref=identifier, summary=f"password reset link refused (throttled): {identifier}",
                     actor_label=identifier, details={})
        return None
    if user is None:
        return None
    token = secrets.token_urlsafe(32)
    minutes = config["PASSWORD_RESET_LINK_MINUTES"]
    db.session.add(PasswordResetToken(user_id=user.id, token_hash=_token_hash(token),
                                      expires_at=now + timedelta(minutes=minutes)))
    message = queue_email(user.email, "password_reset", sensitive=True, send_on_commit=False, user=user,
                          minutes=minutes, link=f"{config['PUBLIC_BASE_URL']}/password/reset/{token}")
    record_audit(None, "auth.password_reset_requested", user, f"password reset link sent to {user.email}",
                 actor_label=identifier, details={})
    db.session.flush()
    return message.id


def find_reset_token(token: str):
    """The unused, unexpired reset token of an active user named by ``token``; None otherwise."""
    row = db.session.execute(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == _token_hash(token))
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= utcnow() or not row.user.active:
        return None
    return row


def reset_forgotten_password(token: str, *, new_password: str) -> User:
    """Set a new password through an emailed link: the link is spent, every session of the user
    ends (the session token rotates), the other links of the user stop working."""
    row = find_reset_token(token)
    if row is None:
        raise ServiceError(_l("This link is invalid, used or expired. Ask for a new one."), code="invalid_token")
    user = row.user
    problems = password_problems(new_password, user.email)
    if problems:
        raise ServiceError(problems[0], field="new_password")
    now = utcnow()
    spent = db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # used at the same moment in another request
        raise ServiceError(_l("This link is invalid, used or expired. Ask for a new one."), code="invalid_token")
    db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    )
    set_password(user, new_password, must_change=False)
    throttle = db.session.get(LoginThrottle, user.email)
    if throttle is not None:  # a locked-out user who proved they own the mailbox may log in again
        db.session.delete(throttle)
    record_audit(user, "auth.password_reset", user, f"password reset through the emailed link: {user.email}",
                 details={})
    db.session.flush()
    return user
