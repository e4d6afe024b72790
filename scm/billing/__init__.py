"""Minimum-use check, monthly postpaid billing, credit notes, payments and their exports."""

from flask import Blueprint

bp = Blueprint("billing", __name__)


def init_app(app):
    from scm.billing import models, views  # noqa: F401  (registers models and routes)
    from scm.billing.cli import billing_cli

    app.register_blueprint(bp)
    app.cli.add_command(billing_cli)
