"""The billing jobs: each safe to repeat; warnings on the right days to the right people."""

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select

from scm.billing import tasks
from scm.billing.models import BillingRun, Invoice, InvoiceState, MinimumWarning
from scm.core.models import Notification
from scm.extensions import db
from tests.fixtures.factories import insert_stamps

UTC = timezone.utc


def on(day: date, count: int) -> list[datetime]:
    """``count`` stamps on ``day`` (10:00 WIB onwards, a minute apart)."""
    start = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    return [start + timedelta(minutes=i) for i in range(count)]


def test_minimum_warnings_go_to_spv_and_fin_once_on_warning_days(app, factory, mailbox):
    slow, fast = factory.wapu(), factory.wapu()
    mailbox.clear()  # the credentials mail of the approvals
    with app.app_context():
        insert_stamps(slow["id"], on(date(2026, 11, 3), 200))   # pace: 200 in 15 days -> 400 by month end
        insert_stamps(fast["id"], on(date(2026, 11, 4), 600))   # 600 in 15 days -> 1,200
        assert tasks.minimum_warnings_job(today=date(2026, 11, 14)) == {"warned": 0}  # not a warning day
        assert tasks.minimum_warnings_job(today=date(2026, 11, 15)) == {"warned": 1}
        assert tasks.minimum_warnings_job(today=date(2026, 11, 15)) == {"warned": 0}  # once a day
        warning = db.session.execute(select(MinimumWarning)).scalar_one()
        assert (warning.wapu_id, warning.used, warning.projected, warning.minimum) == (slow["id"], 200, 400, 1000)
        kinds = db.session.execute(select(Notification.kind)).scalars().all()
        assert kinds.count("minimum_warning") == 2  # the slow WAPU's SPV and FIN
    spv, fin, staff = (slow["users"][role][0] for role in ("WAPU_SPV", "WAPU_FIN", "WAPU_STAFF"))
    assert mailbox.to(spv) and mailbox.to(fin) and not mailbox.to(staff)
    assert "400" in mailbox.body(mailbox.to(fin)[0]) and "1.000" in mailbox.body(mailbox.to(fin)[0])
    assert not mailbox.to(fast["users"]["WAPU_SPV"][0])


def test_draft_billing_job_bills_last_month_and_repeats_safely(app, factory):
    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], on(date(2026, 10, 30), 3))
        first = tasks.draft_billing_job(today=date(2026, 11, 1))
        again = tasks.draft_billing_job(today=date(2026, 11, 1))
        assert (first["month"], first["created"]) == ("2026-10", 1)
        assert (again["created"], again["refreshed"], again["unchanged"]) == (0, 0, 1)
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == 1
        assert db.session.scalar(select(func.count()).select_from(BillingRun)) == 2


def test_mark_overdue_job_repeats_safely(app, factory):
    from scm.billing.services import issue_invoice
    from scm.core.database import unit_of_work

    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], on(date(2026, 10, 30), 3))
        tasks.draft_billing_job(today=date(2026, 11, 1))
        with unit_of_work():
            invoice = db.session.execute(select(Invoice)).scalar_one()
            issue_invoice(invoice.id, None, today=date(2026, 11, 2))
        assert tasks.mark_overdue_job(today=date(2026, 11, 10)) == {"marked": 0}  # due today: not yet
        assert tasks.mark_overdue_job(today=date(2026, 11, 11)) == {"marked": 1}
        assert tasks.mark_overdue_job(today=date(2026, 11, 11)) == {"marked": 0}
        state = db.session.execute(select(Invoice.state)).scalar_one()
        assert state == InvoiceState.OVERDUE


def test_the_pace_counts_only_stamps_up_to_the_day_checked(app, factory):
    from scm.billing.usage import check_month

    wapu = factory.wapu()
    with app.app_context():
        insert_stamps(wapu["id"], on(date(2026, 11, 10), 100) + on(date(2026, 11, 20), 700))
        check = next(c for c in check_month(date(2026, 11, 1), date(2026, 11, 15)) if c.wapu.id == wapu["id"])
        assert (check.used, check.projected, check.below) == (100, 200, True)
        check = next(c for c in check_month(date(2026, 11, 1), date(2026, 11, 20)) if c.wapu.id == wapu["id"])
        assert (check.used, check.projected, check.below) == (800, 1200, False)
