"""Ordering quota: purchase requests, purchase orders and their approvals."""

from flask import Blueprint

bp = Blueprint("procurement", __name__)


def init_app(app):
    from scm.procurement import views  # noqa: F401  (registers routes)

    app.register_blueprint(bp)
