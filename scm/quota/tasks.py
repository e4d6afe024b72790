"""The nightly ledger check, as a scheduled job (``flask quota verify`` does the same by hand)."""

import logging

from scm.quota.services import verify_ledger

log = logging.getLogger(__name__)

VERIFY_JOB = "verify-quota"


class BooksDoNotBalance(RuntimeError):
    pass


def verify_quota_job():
    """Re-derive every account from the ledger; a mismatch fails the run (and the metrics gauge)."""
    mismatches = verify_ledger()
    for m in mismatches:
        log.error("quota mismatch wapu=%s %s: account=%s ledger=%s", m.wapu_id, m.column, m.account, m.ledger)
    if mismatches:
        raise BooksDoNotBalance(f"{len(mismatches)} mismatch(es): the books do NOT balance")
    return {"mismatches": 0}
