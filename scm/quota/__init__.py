"""Quota accounts and the append-only ledger; reserve/commit/release come with the stamping API."""

from flask import Blueprint

bp = Blueprint("quota", __name__)


def init_app(app):
    from scm.quota import usage_views, views  # noqa: F401  (registers routes)
    from scm.quota.cli import quota_cli, usage_cli

    app.register_blueprint(bp)
    app.cli.add_command(quota_cli)
    app.cli.add_command(usage_cli)
