"""The nightly ledger check, as a scheduled job (``flask quota verify`` does the same by hand)."""

import logging

from scm.quota.services import verify_books

log = logging.getLogger(__name__)

VERIFY_JOB = "verify-quota"


class BooksDoNotBalance(RuntimeError):
    pass


def verify_quota_job():
    """Re-derive every account from the ledger and the usage summary from the stamps; a mismatch
    fails the run (and the metrics gauge)."""
    mismatches = verify_books()
    for m in mismatches:
        log.error("quota mismatch %s", m)
    if mismatches:
        raise BooksDoNotBalance(f"{len(mismatches)} mismatch(es): the books do NOT balance")
    return {"mismatches": 0}
