"""WAPU registration, PICs, contract upload, distributor review and issued credentials."""

from flask import Blueprint

bp = Blueprint("registration", __name__)


def init_app(app):
    from apscheduler.triggers.cron import CronTrigger

    from scm.core.formatting import WIB
    from scm.core.tasks import register_job
    from scm.registration import views  # noqa: F401  (registers routes)
    from scm.registration.cli import wapu_cli
    from scm.registration.validators import format_npwp

    app.register_blueprint(bp)
    app.cli.add_command(wapu_cli)
    app.jinja_env.filters["npwp"] = lambda digits: format_npwp(digits) if digits else ""
    register_job("contract-expiry", "scm.registration.tasks:contract_expiry_job",
                 CronTrigger(hour=7, minute=30, timezone=WIB))
