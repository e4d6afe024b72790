"""Quota accounts and the append-only ledger: issue, adjust, balances and verify."""

from flask import Blueprint

bp = Blueprint("quota", __name__)


def init_app(app):
    from scm.quota import views  # noqa: F401  (registers routes)
    from scm.quota.cli import quota_cli

    app.register_blueprint(bp)
    app.cli.add_command(quota_cli)
