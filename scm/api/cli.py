"""``flask api-token create``: a token for a WAPU's stamping system, printed once."""

import click
from flask.cli import AppGroup
from sqlalchemy import select

from scm.api.services import create_token
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.extensions import db
from scm.registration.models import Wapu

token_cli = AppGroup("api-token", help="API tokens for stamping systems.")


@token_cli.command("create")
@click.option("--wapu", "code", required=True, help="WAPU code, e.g. W0001.")
@click.option("--name", required=True, help="A name for the token, e.g. the system that uses it.")
def create(code, name):
    """Create a token for a WAPU and print it (it is not stored and cannot be shown again)."""
    wapu = db.session.execute(select(Wapu).where(Wapu.code == code.strip().upper())).scalar_one_or_none()
    if wapu is None:
        raise click.ClickException(f"No WAPU with code {code}.")
    try:
        with unit_of_work():
            _, plaintext = create_token(wapu.id, None, name=name)
    except ServiceError as error:
        raise click.ClickException(str(error.message)) from None
    click.echo(plaintext)
