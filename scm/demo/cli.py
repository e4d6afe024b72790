"""``flask demo load``: a living demo (idempotent), built through the real services."""

import logging

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from scm.auth.models import User
from scm.billing.usage import month_key
from scm.demo.data import DEMO_PASSWORD, DISTRIBUTOR_USERS, PENDING, WAPUS, load_demo
from scm.demo.life import LIFE_WAPUS
from scm.extensions import db

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
def load():
    """Load the demo data once (running it again changes nothing) and print the demo logins."""
    if db.session.execute(select(User).where(User.email == DISTRIBUTOR_USERS[0][0])).scalar():
        click.echo("Demo data is already loaded.")
        print_logins()
        click.echo("\nThe correction link of the registration sent back was printed when the demo was loaded.")
        return
    quiet = current_app.logger.getEffectiveLevel() > logging.DEBUG  # keep the demo's ~100 mails out of sight
    if quiet:
        previous = current_app.logger.level
        current_app.logger.setLevel(logging.WARNING)
    try:
        summary = load_demo()
    finally:
        if quiet:
            current_app.logger.setLevel(previous)
    click.echo(f"\nDemo data loaded: {len(WAPUS) + len(LIFE_WAPUS)} approved WAPUs ({summary['ending']}'s "
               f"contract ends within 30 days, {summary['suspended']} is suspended), {len(PENDING)} registrations "
               f"waiting for review, 1 sent back for correction.")
    stamped = f"{summary['stamps']:,}".replace(",", ".")
    click.echo(f"Billing {month_key(summary['first'])} to {month_key(summary['last'])}: "
               f"{summary['invoices']} invoices ({summary['partly_paid']} partly paid, "
               f"{summary['overdue']} overdue); {stamped} e-Meterai stamped.")
    if current_app.config["MAIL_BACKEND"] == "log":
        click.echo("Its e-mails went to the log backend unshown; run `flask --debug demo load` on an empty "
                   "database to see them.")
    print_logins()
    click.echo(f"\nCorrection link of {summary['returned_reference']} (sent back for correction; "
               f"valid {current_app.config['CORRECTION_LINK_DAYS']} days, private to the applicant):")
    click.echo(f"  {summary['correction_link']}")


def print_logins():
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
    demo_emails = {email for email, _, _ in DISTRIBUTOR_USERS}
    domains = {wapu[-1] for wapu in WAPUS + LIFE_WAPUS}
    users = db.session.execute(select(User).order_by(User.wapu_id.nulls_first(), User.role)).scalars()
    for user in users:
        if not user.active or (user.email not in demo_emails and user.email.split("@")[1] not in domains):
            continue
        where = user.wapu.code if user.wapu else "distributor"
        click.echo(f"  {user.role.value:<11} {where:<12} {user.email}")
