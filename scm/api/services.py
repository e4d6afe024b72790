"""API tokens: create (shown once), revoke, authenticate."""

import secrets
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select, update

from scm.api.models import ApiToken, hash_token
from scm.auth.models import Role
from scm.core.database import in_unit_of_work, unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.services import record_audit, register_audit_action
from scm.extensions import db

TOKEN_PREFIX = "scm_"
LAST_USED_GRANULARITY = timedelta(minutes=1)

register_audit_action("api_token.create", _l("API token created"), _l("“%(name)s” for %(wapu)s"))
register_audit_action("api_token.revoke", _l("API token revoked"), _l("“%(name)s” of %(wapu)s"))


def _may_manage(actor, wapu_id) -> bool:
    return actor is None or actor.role == Role.DIST_ADMIN or (
        actor.role == Role.WAPU_SPV and actor.wapu_id == wapu_id)


def create_token(wapu_id: int, actor, *, name: str):
    """A new token for a WAPU's stamping system; returns ``(token, plaintext)``. The plaintext is
    never stored: show it once. ``actor`` None means an operator at the command line."""
    if not _may_manage(actor, wapu_id):
        raise ServiceError(_l("Your role may not do this."), code="forbidden")
    name = (name or "").strip()
    if not name:
        raise ServiceError(_l("This field is required."), field="name")
    if len(name) > 100:
        raise ServiceError(_l("At most %(n)d characters.", n=100), field="name")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(wapu_id=wapu_id, name=name, token_hash=hash_token(plaintext), prefix=plaintext[:12],
                     created_by_id=getattr(actor, "id", None))
    db.session.add(token)
    db.session.flush()
    record_audit(actor, "api_token.create", token, f"token '{name}' ({token.prefix}…) for WAPU {wapu_id}",
                 details={"name": name, "wapu": token.wapu.code})
    return token, plaintext


def revoke_token(token: ApiToken, actor) -> None:
    if not _may_manage(actor, token.wapu_id):
        raise ServiceError(_l("Your role may not do this."), code="forbidden")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record_audit(actor, "api_token.revoke", token, f"token '{token.name}' ({token.prefix}…) revoked",
                     details={"name": token.name, "wapu": token.wapu.code})


def authenticate_token(plaintext: str):
    """The active token (a row with ``id``, ``wapu_id``) for a bearer string, or None.

    Inside a unit of work (the stamping calls look the token up as the first statement of their own
    transaction) ``last_used_at`` is written there; outside, in its own short transaction. Either
    way at most once a minute.
    """
    if not plaintext or len(plaintext) > 200:
        return None
    token = db.session.connection().execute(_FIND_TOKEN, {"p_hash": hash_token(plaintext)}).first()
    if token is None:
        return None
    now = utcnow()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_GRANULARITY:
        touch = update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
        if in_unit_of_work():
            db.session.execute(touch)
        else:
            with unit_of_work():
                db.session.execute(touch)
    return token


_FIND_TOKEN = (select(ApiToken.id, ApiToken.wapu_id, ApiToken.last_used_at)
               .where(ApiToken.token_hash == bindparam("p_hash"), ApiToken.revoked_at.is_(None)))
