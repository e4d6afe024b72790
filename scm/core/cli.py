"""``flask mail ...``: the email outbox; ``flask backup ...``: backups of the database (the uploads are in it)."""

from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from scm.core.backup import BackupError, create_backup, restore_backup
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


backup_cli = AppGroup("backup", help="Back up and restore the database, which holds the uploaded files too.")


@backup_cli.command("create")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for this backup.")
def create(out):
    """Write a backup: the database (with the uploaded files) and a manifest with its SHA-256."""
    try:
        manifest = create_backup(out)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    for name, part in manifest["parts"].items():
        click.echo(f"{name}\t{part['bytes']} bytes\tsha256 {part['sha256']}")
    click.echo(f"Backup written to {out} ({manifest['database']['kind']}, schema {manifest['alembic_revision']}; "
               "the uploaded files are in the database). Keep it off this machine.")


@backup_cli.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def restore(folder):
    """Restore a backup into an EMPTY database (SCM_DATABASE_URL); a backup older than 0008_file_store
    also needs an empty upload folder (SCM_UPLOAD_FOLDER) for its uploads.tar."""
    try:
        restored = restore_backup(folder)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    manifest = restored.manifest
    click.echo(f"Restored the backup of {manifest['created_at']} (SCM Meterai {manifest['app_version']}, "
               f"schema {manifest['alembic_revision']}): "
               + ", ".join(f"{table} {count}" for table, count in restored.rows.items())
               + f"; {restored.files} uploaded files.")
    if restored.file_problems:
        for problem in restored.file_problems:
            click.echo(f"STORED FILE {problem}")
        raise click.ClickException(f"{len(restored.file_problems)} stored file(s) missing or changed")
    if manifest["alembic_revision"] != restored.head:
        click.echo(f"Next: flask db upgrade (the schema is at {manifest['alembic_revision']}, this version "
                   f"needs {restored.head}), then flask quota verify.")
    else:
        click.echo("Next: flask quota verify (the books must balance), then start the app and the scheduler.")
