"""``flask quota ...``: check the books."""

import sys

import click
from flask.cli import AppGroup

from scm.core.database import utcnow
from scm.core.models import JobOutcome
from scm.core.tasks import record_run
from scm.quota.services import verify_books
from scm.quota.tasks import VERIFY_JOB

quota_cli = AppGroup("quota", help="The quota ledger.")


@quota_cli.command("verify")
def verify():
    """Re-derive every quota account from its entries, and prove the usage summary equals the
    stamps; exit 1 on any mismatch.

    The result is recorded as a run of the ``verify-quota`` job (the runs page, the metrics gauge).
    """
    started_at = utcnow()
    mismatches = verify_books()
    for m in mismatches:
        click.echo(f"MISMATCH {m}")
    if mismatches:
        summary = f"{len(mismatches)} mismatch(es): the books do NOT balance."
        record_run(VERIFY_JOB, started_at=started_at, outcome=JobOutcome.FAILED, error=summary)
        click.echo(summary)
        sys.exit(1)
    record_run(VERIFY_JOB, started_at=started_at, outcome=JobOutcome.SUCCESS, counts={"mismatches": 0})
    click.echo("OK: every quota account equals its ledger, and the usage summary equals the stamps.")
