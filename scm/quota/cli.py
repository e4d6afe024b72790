"""``flask quota ...``: check the books."""

import sys

import click
from flask.cli import AppGroup

from scm.quota.services import verify_ledger

quota_cli = AppGroup("quota", help="The quota ledger.")


@quota_cli.command("verify")
def verify():
    """Re-derive every quota account from its entries; exit 1 on any mismatch."""
    mismatches = verify_ledger()
    for m in mismatches:
        click.echo(f"MISMATCH wapu={m.wapu_id} {m.column}: account={m.account} ledger={m.ledger}")
    if mismatches:
        click.echo(f"{len(mismatches)} mismatch(es): the books do NOT balance.")
        sys.exit(1)
    click.echo("OK: every quota account equals its ledger.")
