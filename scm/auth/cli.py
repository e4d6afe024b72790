"""``flask users ...``: operators' commands."""

import click
from flask.cli import AppGroup

from scm.auth import services
from scm.auth.models import Role
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError

users_cli = AppGroup("users", help="Manage users.")


@users_cli.command("create-admin")
@click.option("--email", prompt=True, help="Login email of the distributor administrator.")
@click.option("--name", prompt=True, help="Full name.")
@click.option("--password", help="Password (asked for when omitted; empty = generate a one-time one).")
def create_admin(email, name, password):
    """Create a distributor administrator (DIST_ADMIN)."""
    if password is None:
        password = click.prompt("Password (empty: generate a one-time password)", default="",
                                hide_input=True, confirmation_prompt=True, show_default=False)
    try:
        with unit_of_work():
            user, issued = services.create_user(None, None, email=email, name=name, role=Role.DIST_ADMIN,
                                                password=password or None)
            email = user.email
    except ServiceError as error:
        raise click.ClickException(str(error.message)) from None
    click.echo(f"Created DIST_ADMIN {email}.")
    if not password:
        click.echo(f"One-time password (must be changed at first login): {issued}")
