"""``flask wapu ...``: WAPUs for operators and scripts."""

import click
from flask.cli import AppGroup

from scm.registration.services import list_wapus

wapu_cli = AppGroup("wapu", help="WAPUs (Pemungut).")


@wapu_cli.command("list")
def list_command():
    """Print each WAPU: code, name, formatted NPWP and status (tab-separated)."""
    for wapu in list_wapus():
        click.echo(f"{wapu.code}\t{wapu.name}\t{wapu.npwp_formatted}\t{wapu.status.value}")
