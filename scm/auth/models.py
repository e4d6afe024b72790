"""Users, roles and the login throttle."""

import secrets
from datetime import datetime

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scm.core.database import UTCDateTime, enum_type
from scm.core.enums import LabelledEnum
from scm.core.models import TimestampMixin
from scm.extensions import db


class Role(LabelledEnum):
    WAPU_STAFF = "WAPU_STAFF", _l("WAPU staff")
    WAPU_SPV = "WAPU_SPV", _l("WAPU supervisor")
    WAPU_FIN = "WAPU_FIN", _l("WAPU finance")
    DIST_SPV = "DIST_SPV", _l("Distributor supervisor")
    DIST_FIN = "DIST_FIN", _l("Distributor finance")
    DIST_ADMIN = "DIST_ADMIN", _l("Distributor administrator")

    @property
    def is_wapu(self) -> bool:
        return self.value.startswith("WAPU_")

    @property
    def is_distributor(self) -> bool:
        return not self.is_wapu


WAPU_ROLES = frozenset(r for r in Role if r.is_wapu)
DISTRIBUTOR_ROLES = frozenset(r for r in Role if r.is_distributor)
REVIEWER_ROLES = frozenset({Role.DIST_SPV, Role.DIST_ADMIN})


def _new_session_token() -> str:
    return secrets.token_urlsafe(32)


class User(UserMixin, TimestampMixin, db.Model):
    """A person who logs in. WAPU roles belong to exactly one WAPU; distributor roles to none."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "(role IN ('WAPU_STAFF', 'WAPU_SPV', 'WAPU_FIN') AND wapu_id IS NOT NULL) OR "
            "(role IN ('DIST_SPV', 'DIST_FIN', 'DIST_ADMIN') AND wapu_id IS NULL)",
            name="role_matches_wapu",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    phone: Mapped[str | None] = mapped_column(String(20))
    role: Mapped[Role] = mapped_column(enum_type(Role), nullable=False)
    wapu_id: Mapped[int | None] = mapped_column(ForeignKey("wapus.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    must_change_password: Mapped[bool] = mapped_column(default=True, nullable=False)
    active: Mapped[bool] = mapped_column(default=True, nullable=False)
    # Rotated on password change, reset and deactivation: every older session stops working.
    session_token: Mapped[str] = mapped_column(
        String(64), unique=True, nullable=False, default=_new_session_token
    )
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    wapu = relationship("Wapu", back_populates="users")

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return self.session_token

    def rotate_session_token(self) -> None:
        self.session_token = _new_session_token()

    def has_role(self, *roles) -> bool:
        return self.role in roles

    @property
    def is_wapu(self) -> bool:
        return self.role.is_wapu

    @property
    def is_distributor(self) -> bool:
        return self.role.is_distributor

    def __repr__(self):
        return f"<User {self.email} {self.role}>"

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return self.email


class LoginThrottle(db.Model):
    """Failed logins per login name (existing or not), for lockout."""

    __tablename__ = "login_throttles"

    identifier: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0, nullable=False)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasswordResetToken(TimestampMixin, db.Model):
    """A forgotten-password link: only its SHA-256 is stored; it works once, until it expires."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User")
