"""Tenancy in one place: a WAPU user reaches only rows of its own WAPU.

Every WAPU-owned model has a ``wapu_id`` column (or names another with ``__tenant_column__``).
Distributor users see every WAPU. Another WAPU's object is a 404, never a 403.
"""

from flask import abort

from scm.extensions import db


def tenant_column(model):
    return getattr(model, getattr(model, "__tenant_column__", "wapu_id"))


def scope_query(stmt, model, user):
    """Limit a ``select(model)`` statement to what ``user`` may see."""
    if user.is_distributor:
        return stmt
    return stmt.where(tenant_column(model) == user.wapu_id)


def can_see(obj, user) -> bool:
    if user.is_distributor:
        return True
    column = getattr(type(obj), "__tenant_column__", "wapu_id")
    return getattr(obj, column) is not None and getattr(obj, column) == user.wapu_id


def get_scoped_or_404(model, ident, user):
    """Load ``model`` by primary key for ``user`` or answer 404 (missing or another WAPU's)."""
    obj = db.session.get(model, ident)
    if obj is None or not can_see(obj, user):
        abort(404)
    return obj
