"""API tokens: per WAPU, shown once, stored hashed, revocable."""

import hashlib
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scm.core.database import UTCDateTime
from scm.core.models import TimestampMixin
from scm.extensions import db


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens are long random strings, so a fast hash is the right one."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(TimestampMixin, db.Model):
    """A bearer token a WAPU's stamping system uses; only its hash and first characters are kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    wapu_id: Mapped[int] = mapped_column(ForeignKey("wapus.id"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    wapu = relationship("Wapu")
    created_by = relationship("User")

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def audit_ref(self) -> str:
        """The business reference the audit log names it by."""
        return f"{self.prefix}…"

