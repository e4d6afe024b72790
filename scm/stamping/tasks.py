"""Scheduled stamping jobs."""

from scm.stamping.services import expire_reservations


def expire_reservations_job():
    """Release the reservations past their expiry."""
    return {"released": expire_reservations()}
