"""The billing jobs the scheduler runs (``scm/core/tasks.py``) and the month's heavy work the queue
runs (``scm/core/background.py``: billing run, issue all, workbook, ZIP, combined PDF); each is
safe to run again."""


from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from scm.billing import bank, documents, exports, reports
from scm.billing.dunning import send_reminders
from scm.billing.models import Invoice, MinimumWarning
from scm.billing.payments import mark_overdue
from scm.billing.services import current_settings, draft_ids, finance_contacts, issue_draft, run_billing
from scm.billing.usage import add_months, check_month, month_bounds, month_key, month_of, parse_month
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.formatting import today_wib
from scm.core.services import notify, register_notification
from scm.core.uploads import Upload, release_held_upload, take_held_upload
from scm.core.xlsx import written
from scm.extensions import db
from scm.registration.models import Wapu
from scm.stamping.models import Stamp, StampState

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
        notify(finance_contacts(db.session.get(Wapu, check.wapu.id)), "minimum_warning", "/", month=month_key(check.month), used=check.used,
               projected=check.projected, minimum=check.minimum)
        sent += 1
    return sent


def minimum_warnings_job(today=None):
    """Daily: the minimum-use warnings, sent only on the configured days."""
    today = today or today_wib()
    with unit_of_work():
        return {"warned": send_minimum_warnings(today)}


def dunning_job(today=None):
    """Daily: the reminders of the dunning schedule due today (``scm.billing.dunning``)."""
    return send_reminders(today or today_wib())


def mark_overdue_job(today=None):
    """Daily: unpaid invoices past their due date become overdue."""
    with unit_of_work():
        return {"marked": mark_overdue(today or today_wib())}


# --------------------------------------------------------------------------- the month's heavy work

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ISSUING, STORING, STAMPS = _l("Issuing the invoices"), _l("Storing the invoice PDFs"), _l("Writing the stamps")


def run_billing_task(task):
    """The billing run started from the month page."""
    period = parse_month(task.params["month"])
    with unit_of_work():
        run = run_billing(period, task.actor, source="web", progress=task.progress)
        task.finish({"month": month_key(period), "created": run.created, "refreshed": run.refreshed,
                     "unchanged": run.unchanged})


def issued_invoices(period) -> list[Invoice]:
    return [invoice for invoice in reports.month_invoices(period) if not invoice.is_draft]


def issue_month_task(task):
    """Issue every draft of the month, each in its own transaction with its number and its mail
    (so a retried task issues only what is left), then store each invoice's PDF."""
    period, today = parse_month(task.params["month"]), today_wib()
    ids = draft_ids(period)
    db.session.rollback()
    for done, invoice_id in enumerate(ids, start=1):
        try:
            with unit_of_work():
                issue_draft(invoice_id, task.actor, today)
        except ServiceError as error:
            if error.code != "already_issued":  # issued on its page meanwhile: nothing left to do
                raise
        task.progress(done, len(ids), ISSUING)
    documents.store_missing_invoice_pdfs(issued_invoices(period),
                                         progress=lambda done, total: task.progress(done, total, STORING))
    with unit_of_work():
        numbers = [invoice.number for invoice in issued_invoices(period)]
        task.finish({"month": month_key(period), "issued": len(numbers), "first": numbers[0] if numbers else "",
                     "last": numbers[-1] if numbers else ""})


def month_workbook_task(task):
    """The month's workbook: a summary per WAPU and every stamp (a million rows: streamed to disk)."""
    period = parse_month(task.params["month"])
    start, end = month_bounds(period)
    total = db.session.execute(select(func.count()).select_from(Stamp).where(
        Stamp.state == StampState.STAMPED, Stamp.stamped_at >= start, Stamp.stamped_at < end)).scalar()

    task.progress(0, total, STAMPS, force=True)
    data = written(lambda file: exports.write_month_workbook(
        file, period, reports.month_overview(period, today_wib()),
        task.counted(reports.stamp_rows(period), total, STAMPS)))
    db.session.rollback()
    with unit_of_work():
        task.finish({"month": month_key(period), "stamps": total},
                    file=Upload(data, f"tagihan-{month_key(period)}.xlsx", XLSX))


def _month_documents(task, build, name, mimetype):
    period = parse_month(task.params["month"])
    invoices = issued_invoices(period)
    if not invoices:
        raise ServiceError(_l("No invoice of %(month)s has been issued yet.", month=month_key(period)),
                           code="nothing_issued")
    documents.store_missing_invoice_pdfs(invoices, progress=lambda done, total: task.progress(done, total, STORING))
    data = build(issued_invoices(period))
    db.session.rollback()
    with unit_of_work():
        task.finish({"month": month_key(period), "invoices": len(invoices)},
                    file=Upload(data, name % month_key(period), mimetype))


def month_zip_task(task):
    """A ZIP of the stored PDF of every issued invoice of the month."""
    _month_documents(task, documents.month_zip, "faktur-%s.zip", "application/zip")


def month_pdf_task(task):
    """Every issued invoice of the month in one PDF, from the stored PDFs."""
    _month_documents(task, documents.month_pdf, "faktur-%s.pdf", "application/pdf")


def bank_import_task(task):
    """Read a held bank statement and store its lines not known yet (a re-upload stores nothing new);
    a refused file keeps every error with its row for its page, and changes nothing."""
    held = take_held_upload(task.params["token"], bank.HELD_KIND)
    if held is None:
        raise ServiceError(_l("The uploaded file is no longer available; upload it again."), code="upload_gone")
    try:
        parsed = bank.read_statement(held.data, task.params["bank_format"], account=task.params["account"],
                                     name=task.params["name"])
    except bank.BankFileError as error:
        with unit_of_work():
            task.finish({"message": str(error.message), "errors": [
                {"row": e.row, "column": e.column, "value": e.value, "message": str(e.message)} for e in error.errors]})
    else:
        db.session.rollback()
        with unit_of_work():
            statement = bank.store_statement(parsed, task.actor)
            task.finish({"read": statement.lines_read, "new": statement.lines_new,
                         "known": statement.lines_read - statement.lines_new})
    release_held_upload(task.params["token"], bank.HELD_KIND)
