"""The billing jobs the scheduler runs (``scm/core/tasks.py``); each is safe to run again."""

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from scm.billing.models import MinimumWarning
from scm.billing.payments import mark_overdue
from scm.billing.services import current_settings, finance_contacts, run_billing
from scm.billing.usage import add_months, check_month, month_key, month_of
from scm.core.database import unit_of_work
from scm.core.formatting import today_wib
from scm.core.services import notify, register_notification
from scm.extensions import db

register_notification("minimum_warning", _l(
    "Use of e-Meterai in %(month)s is behind the minimum: %(used)s so far, about %(projected)s "
    "expected by month end, minimum %(minimum)s."))


def draft_billing_job(today=None):
    """On the 1st: draft last month's invoices (a re-run creates nothing new)."""
    today = today or today_wib()
    with unit_of_work():
        run = run_billing(add_months(month_of(today), -1), source="scheduler", today=today)
        return {"month": month_key(run.period), "created": run.created, "refreshed": run.refreshed,
                "unchanged": run.unchanged}


def send_minimum_warnings(today) -> int:
    """On the warning days, tell the SPV and FIN of each WAPU whose pace falls short (once a day)."""
    if today.day not in current_settings().warning_day_list:
        return 0
    warned = set(db.session.execute(select(MinimumWarning.wapu_id).where(MinimumWarning.day == today)).scalars())
    sent = 0
    for check in check_month(month_of(today), today):
        if not check.minimum or not check.below or check.wapu.id in warned:
            continue
        try:
            with db.session.begin_nested():
                db.session.add(MinimumWarning(wapu_id=check.wapu.id, day=today, used=check.used,
                                              projected=check.projected, minimum=check.minimum))
        except IntegrityError:  # another scheduler warned it just now
            continue
        notify(finance_contacts(check.wapu), "minimum_warning", "/", month=month_key(check.month), used=check.used,
               projected=check.projected, minimum=check.minimum)
        sent += 1
    return sent


def minimum_warnings_job(today=None):
    """Daily: the minimum-use warnings, sent only on the configured days."""
    today = today or today_wib()
    with unit_of_work():
        return {"warned": send_minimum_warnings(today)}


def mark_overdue_job(today=None):
    """Daily: unpaid invoices past their due date become overdue."""
    with unit_of_work():
        return {"marked": mark_overdue(today or today_wib())}
