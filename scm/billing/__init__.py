"""Minimum-use check, monthly postpaid billing, credit notes, payments and their exports."""

import logging

from flask import Blueprint

bp = Blueprint("billing", __name__)


def init_app(app):
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one INFO line per CSS parse
    from scm.billing import models, views  # noqa: F401  (registers models and routes)
    from scm.billing.cli import billing_cli
    from scm.billing.exports import terbilang

    app.register_blueprint(bp)
    app.jinja_env.globals["terbilang"] = terbilang
    app.cli.add_command(billing_cli)
