"""``flask usage import``: stamps reported after the fact, from a CSV or XLSX file."""

import os
import sys

import click
from flask.cli import AppGroup

from scm.core.database import run_once_more_on_conflict
from scm.core.errors import ServiceError
from scm.stamping.usage_import import (
    MAX_BYTES,
    RESULTS,
    UsageFileError,
    apply_usage_file,
    check_old_usage_reason,
    read_usage_file,
)

usage_cli = AppGroup("usage", help="Usage reports (stamps reported after the fact).")


@usage_cli.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check the file and show the preview; change nothing.")
@click.option("--allow-old", is_flag=True,
              help="Also import stamps older than the look-back (SCM_STAMP_LOOKBACK_MONTHS), deliberately; "
                   "needs --reason. Stamps in the future or before the WAPU's first contract stay refused.")
@click.option("--reason", help="Why stamps older than the look-back are imported (kept in the audit log).")
def import_usage(file, dry_run, allow_old, reason):
    """Import a CSV or XLSX usage report: check every row, show counts per WAPU, then apply it."""
    if reason and not allow_old:
        raise click.UsageError("--reason goes with --allow-old.")
    if allow_old:
        try:
            reason = check_old_usage_reason(None, reason)
        except ServiceError as error:
            raise click.UsageError(f"--allow-old: {error.message}") from None
    try:
        usage = read_usage_file(file.read(MAX_BYTES + 1), os.path.basename(file.name), allow_old=allow_old)
    except UsageFileError as error:
        for e in error.errors:
            where = f"row {e.row}" if e.row else "file"
            click.echo(f"{where}: {e.column}: {e.message}" + (f" [{e.value}]" if e.value else ""), err=True)
        click.echo(f"{len(error.errors)} error(s): nothing was imported.", err=True)
        sys.exit(1)
    click.echo(f"{usage.rows} rows, all valid.")
    if allow_old:
        click.echo(f"{usage.old_rows} rows older than the look-back (before {usage.lookback_start:%Y-%m-%d}), "
                   f"imported deliberately: {reason}")
    for row in usage.preview():
        months = "; ".join(f"{month:%Y-%m} {count}" + (" (already invoiced: billed as late usage)" if invoiced else "")
                           for month, count, invoiced in row["months"])
        click.echo(f"{row['wapu'].code}: stamped {row['stamped']}, failed {row['failed']}, "
                   f"already recorded {row['known']}, quota available {row['available']}; months: {months or '-'}")
    if dry_run:
        click.echo("Dry run: nothing was changed.")
        return
    result = run_once_more_on_conflict(lambda: apply_usage_file(usage, None, reason=reason))
    for wapu_id, counts in result.per_wapu.items():
        click.echo(f"{usage.wapus[wapu_id].code}: " + ", ".join(f"{key} {counts[key]}" for key in RESULTS
                                                                if counts[key] or key == "applied"))
    click.echo("Applied: " + ", ".join(f"{key} {result.total[key]}" for key in RESULTS if result.total[key]))
