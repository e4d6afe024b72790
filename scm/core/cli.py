"""``flask mail ...``: the email outbox."""

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from scm.core.models import OutboxEmail
from scm.core.services import deliver_outbox
from scm.extensions import db

mail_cli = AppGroup("mail", help="The email outbox.")


@mail_cli.command("send")
def send():
    """Send every due message in the outbox (retries failed ones whose time has come)."""
    sent, failed = deliver_outbox(limit=1000)
    click.echo(f"sent {sent}, failed {failed}")


@mail_cli.command("status")
def status():
    """Count outbox messages by state."""
    rows = db.session.execute(select(OutboxEmail.state, func.count()).group_by(OutboxEmail.state)).all()
    for state, count in sorted(rows):
        click.echo(f"{state}: {count}")
