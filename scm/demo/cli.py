"""``flask demo load``: a living demo (idempotent), built through the real services."""

import click
from flask.cli import AppGroup
from sqlalchemy import select

from scm.auth.models import User
from scm.billing.usage import month_key
from scm.demo.data import DEMO_PASSWORD, DISTRIBUTOR_USERS, WAPUS, load_demo
from scm.extensions import db

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
def load():
    """Load the demo data once (running it again changes nothing) and print the demo logins."""
    if db.session.execute(select(User).where(User.email == DISTRIBUTOR_USERS[0][0])).scalar():
        click.echo("Demo data is already loaded.")
    else:
        billing = load_demo()
        click.echo("Demo data loaded.")
        stamped = f"{billing['stamps']:,}".replace(",", ".")
        click.echo(f"Billing {month_key(billing['first'])} to {month_key(billing['last'])}: "
                   f"{billing['invoices']} invoices ({billing['partly_paid']} partly paid, "
                   f"{billing['overdue']} overdue); {stamped} e-Meterai stamped.")
    print_logins()


def print_logins():
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
    demo_emails = {email for email, _, _ in DISTRIBUTOR_USERS}
    domains = {wapu[-1] for wapu in WAPUS}
    users = db.session.execute(select(User).order_by(User.wapu_id.nulls_first(), User.role)).scalars()
    for user in users:
        if user.email not in demo_emails and user.email.split("@")[1] not in domains:
            continue
        where = user.wapu.code if user.wapu else "distributor"
        click.echo(f"  {user.role.value:<11} {where:<12} {user.email}")
