"""Role checks for views."""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required


def roles_required(*roles):
    """Logged in and holding one of ``roles``; otherwise 403 (login page when anonymous)."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_roles = frozenset(roles)
        return wrapped

    return decorator
