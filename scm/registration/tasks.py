"""The registration jobs the scheduler runs (``scm/core/tasks.py``); each is safe to run again."""

from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.registration.services import send_contract_expiry_warnings


def contract_expiry_job(today=None):
    """Daily: warn 60, 30 and 7 days before a WAPU's last contract ends (each threshold once)."""
    with unit_of_work():
        return {"warned": send_contract_expiry_warnings(today or today_wib())}
