"""Stamping pages: the history (Riwayat pembubuhan) with filters, counts, keyset pages, XLSX export
and each stamp's life; the distributor admin's usage-report import."""

import io
import os
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, select, true, tuple_
from sqlalchemy.orm import joinedload

from scm.auth.decorators import roles_required
from scm.auth.models import Role
from scm.auth.scoping import get_scoped_or_404, scope_query
from scm.core.background import start_task
from scm.core.database import prefix_range, unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import WIB
from scm.core.models import BackgroundTask, TaskState
from scm.core.uploads import Upload, hold_upload, take_held_upload
from scm.core.views import export_in_background, within_wib_days
from scm.core.xlsx import written
from scm.extensions import db
from scm.quota.models import QuotaEntry
from scm.registration.models import Wapu
from scm.stamping import bp, summary
from scm.stamping.exports import write_stamps_xlsx
from scm.stamping.forms import UsageApplyForm, UsageFilterForm, UsageImportForm
from scm.stamping.models import Stamp, StampState, document_type_label
from scm.stamping.usage_import import (
    HELD_KIND,
    MAX_BYTES,
    MAX_ROWS,
    ImportResult,
    RowError,
    UsageFileError,
    check_old_usage_reason,
    check_size,
)
from scm.stamping.window import lookback_start

PAGE = 50
EXPORT_HEADERS = (_l("Serial"), "WAPU", _l("State"), _l("Document type"), _l("Document number"), _l("Document date"),
                  _l("Reserved at (WIB)"), _l("Stamped at (WIB)"), _l("Released at (WIB)"), _l("Release reason"),
                  _l("Reported by"))
# The order of the history, its pages and its export: the time shown, newest first (then the id, so
# that stamps of the same instant keep one order). Indexes (wapu_id, occurred_at, id) and
# (occurred_at, id) serve it.
NEWEST_FIRST = (Stamp.occurred_at.desc(), Stamp.id.desc())


@dataclass
class HistoryFilter:
    """What the history's filter form asks for: the WHERE clauses on stamps (the state apart, for
    the counts), and whether the counts can come from the usage summary (WAPU and days only)."""

    form: UsageFilterForm
    clauses: list
    state: str | None
    wapu_id: int | None = None  # the WAPU filtered on (the user's own for a WAPU user)
    first: date | None = None
    last: date | None = None
    by_day_only: bool = True  # no document type, no serial: the summary answers the counts


def history_filter(args, user) -> HistoryFilter:
    """The filter form filled from ``args`` (the query string) and what it asks of ``user``'s history."""
    form = UsageFilterForm(args)
    form.state.choices = [("", _l("All states"))] + [(s.value, s.label) for s in StampState]
    form.document_type.choices = [("", _l("All types"))] + [(t, document_type_label(t))
                                                             for t in current_app.config["DOCUMENT_TYPES"]]
    form.validate()  # an invalid field shows its error and filters nothing; the others still apply
    ok = {name: not field.errors and field.data for name, field in form._fields.items()}
    first = form.date_from.data if ok["date_from"] else None
    last = form.date_to.data if ok["date_to"] else None
    found = HistoryFilter(form, within_wib_days(Stamp.occurred_at, first, last), form.state.data if ok["state"] else None,
                          first=first, last=last)
    if ok["document_type"]:
        found.clauses.append(Stamp.document_type == form.document_type.data)
        found.by_day_only = False
    if ok["serial"]:
        found.clauses += prefix_range(Stamp.serial, form.serial.data.strip()) or [true()]
        found.by_day_only = False
    if not user.is_distributor:
        found.wapu_id = user.wapu_id
    elif ok["wapu"]:  # the code resolved once: then the WAPU's own index serves the rows
        found.wapu_id = db.session.execute(
            select(Wapu.id).where(Wapu.code == form.wapu.data.strip().upper())).scalar() or 0
        found.clauses.append(Stamp.wapu_id == found.wapu_id)
    return found


def _filters() -> HistoryFilter:
    return history_filter(request.args, current_user)


def _scoped(stmt, user=None):
    return scope_query(stmt, Stamp, user or current_user)


def _counts(found: HistoryFilter) -> dict:
    """Stamps per state under the filters: from the usage summary when only the WAPU and the days
    are filtered (the first page of the whole history counts nothing), else from the stamps."""
    if found.by_day_only:
        return summary.counts_by_state(wapu_id=found.wapu_id, first=found.first, last=found.last)
    return dict(db.session.execute(
        _scoped(select(Stamp.state, func.count()).where(*found.clauses).group_by(Stamp.state))
    ).all())


@bp.route("/usage")
@login_required
def usage():
    """The history, newest first by the time shown (``occurred_at``): counts per state and one keyset
    page (``?before=<id>``: the rows after that stamp in this order)."""
    found = _filters()
    counts = _counts(found)
    stmt = _scoped(select(Stamp).where(*found.clauses)).options(joinedload(Stamp.wapu))
    if found.state:
        stmt = stmt.where(Stamp.state == found.state)
    before = request.args.get("before", type=int)
    if before:
        after_time = select(Stamp.occurred_at).where(Stamp.id == before).scalar_subquery()
        stmt = stmt.where(tuple_(Stamp.occurred_at, Stamp.id) < tuple_(after_time, before))
    rows = db.session.execute(stmt.order_by(*NEWEST_FIRST).limit(PAGE + 1)).scalars().all()
    next_before = rows[PAGE - 1].id if len(rows) > PAGE else None
    args = {k: v for k, v in request.args.items() if k != "before"}
    return render_template("stamping/usage.html", form=found.form, stamps=rows[:PAGE], counts=counts,
                           states=list(StampState), next_before=next_before, args=args, paged=bool(before))


@bp.route("/usage/export.xlsx", methods=["GET", "POST"])
@login_required
def usage_export():
    """The filtered history as an XLSX workbook; a large one is prepared in the queue."""
    stmt = export_query(_filters(), current_user)
    return export_in_background(stmt, "stamping.history_export", params={}, inline=lambda: send_file(
        history_workbook(stmt), as_attachment=True, download_name=EXPORT_NAME, mimetype=XLSX))


EXPORT_NAME = "riwayat-pembubuhan.xlsx"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def export_query(found: HistoryFilter, user):
    """The rows of the history export of ``user`` filtered as ``found`` says, newest first."""
    stmt = _scoped(select(Stamp.serial, Wapu.code, Stamp.state, Stamp.document_type, Stamp.document_number,
                          Stamp.document_date, Stamp.reserved_at, Stamp.stamped_at, Stamp.released_at,
                          Stamp.release_reason, Stamp.source).join(Wapu, Wapu.id == Stamp.wapu_id)
                   .where(*found.clauses), user)
    if found.state:
        stmt = stmt.where(Stamp.state == found.state)
    return stmt.order_by(*NEWEST_FIRST)


def history_workbook(stmt, watch=None) -> io.BytesIO:
    """The rows of ``stmt`` as a workbook in the reader's language, streamed from the database through
    a temp file (memory stays flat); ``watch`` wraps the rows (a task's progress)."""
    sources = {"api": _("API"), "batch": _("batch report"), "file": _("usage file")}

    def rows():
        for row in db.session.execute(stmt.execution_options(yield_per=2000)):
            (serial, code, state, document_type, number, date, reserved, stamped, released, reason, source) = row
            yield (serial, code, str(state.label), document_type_label(document_type), number, date, _wib(reserved),
                   _wib(stamped), _wib(released), reason, sources.get(source, source))

    return io.BytesIO(written(lambda file: write_stamps_xlsx(
        watch(rows()) if watch else rows(), file, headers=[str(h) for h in EXPORT_HEADERS],
        title=_("Stamping history"))))


def _wib(moment):
    return moment.astimezone(WIB).replace(tzinfo=None) if moment else None


@bp.route("/usage/stamps/<int:stamp_id>")
@login_required
def stamp(stamp_id):
    """One stamp's whole life: reserved, stamped or refunded, why, by which token."""
    item = get_scoped_or_404(Stamp, stamp_id, current_user)
    entries = db.session.execute(
        select(QuotaEntry).where(QuotaEntry.wapu_id == item.wapu_id, QuotaEntry.idempotency_key == item.serial)
        .order_by(QuotaEntry.id)
    ).scalars().all()
    return render_template("stamping/stamp.html", stamp=item, entries=entries)


@bp.route("/usage/import", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def import_usage():
    """Upload a usage report (CSV or XLSX): it is held and every row checked in the queue, then a
    preview; nothing changes yet."""
    form = UsageImportForm()
    if form.validate_on_submit():
        data = form.file.data.stream.read(MAX_BYTES + 1)
        name = os.path.basename(form.file.data.filename or "")[:200]
        try:
            check_size(data)  # an empty or too large file is refused at once, never held
        except UsageFileError as error:
            return _upload_page(form, error)
        allow_old = bool(form.allow_old.data)
        token = hold_upload(Upload(data, name), HELD_KIND)
        with unit_of_work():
            task = start_task("stamping.usage_check", current_user, key=token, params={
                "token": token, "allow_old": allow_old, "reason": form.reason.data.strip() if allow_old else "",
                "name": name, "locale": str(get_locale())})
        return redirect(url_for("home.task", task_id=task.id))
    return _upload_page(form)


@bp.route("/usage/import/apply", methods=["POST"])
@roles_required(Role.DIST_ADMIN)
def apply_usage_import():
    """Apply the checked file in the queue: checked again, then applied in one unit of work."""
    form = UsageApplyForm()
    held = take_held_upload(form.token.data, HELD_KIND) if form.validate_on_submit() else None
    if held is None:
        flash(_("The uploaded file is no longer available; upload it again."), "warning")
        return redirect(url_for("stamping.import_usage"))
    if form.allow_old.data:
        try:
            check_old_usage_reason(current_user, form.reason.data)
        except ServiceError as error:
            flash(error.message, "danger")
            return redirect(url_for("stamping.import_usage"))
    with unit_of_work():
        task = start_task("stamping.usage_apply", current_user, key=form.token.data, params={
            "token": form.token.data, "allow_old": bool(form.allow_old.data), "reason": form.reason.data,
            "name": held.original_name, "locale": str(get_locale())})
    return redirect(url_for("home.task", task_id=task.id))


@bp.route("/usage/import/<int:task_id>")
@roles_required(Role.DIST_ADMIN)
def import_result(task_id):
    """What a finished check (the preview, or every error) or apply (the counts) found."""
    task = db.session.get(BackgroundTask, task_id)
    if task is None or task.kind not in ("stamping.usage_check", "stamping.usage_apply"):
        abort(404)
    if task.state != TaskState.DONE:
        return redirect(url_for("home.task", task_id=task_id))
    found = task.result
    if "errors" in found:
        return _upload_page(UsageImportForm(formdata=None),
                            UsageFileError([RowError(e["row"], e["column"], e["message"], e["value"])
                                            for e in found["errors"]], message=found["message"]))
    usage = SimpleNamespace(name=found["name"], rows=found["rows"], allow_old=found.get("allow_old", False),
                            old_rows=found.get("old_rows", 0), lookback_start=datetime.fromisoformat(
                                found["lookback_start"]) if found.get("lookback_start") else None)
    if task.kind == "stamping.usage_apply":
        usage.wapus = {row["wapu"]["id"]: SimpleNamespace(**row["wapu"]) for row in found["per_wapu"]}
        result = ImportResult({row["wapu"]["id"]: Counter(row["counts"]) for row in found["per_wapu"]},
                              Counter(found["total"]))
        return render_template("stamping/usage_import_preview.html", usage=usage, result=result)
    rows = [{**row, "wapu": SimpleNamespace(**row["wapu"]),
             "months": [(date.fromisoformat(month), count, invoiced) for month, count, invoiced in row["months"]]}
            for row in found["preview"]]
    form = UsageApplyForm(formdata=None, token=task.params["token"], allow_old=task.params["allow_old"],
                          reason=task.params["reason"])
    return render_template("stamping/usage_import_preview.html", usage=usage, rows=rows, form=form,
                           late_usage=any(invoiced for r in rows for _month, _count, invoiced in r["months"]))


def _upload_page(form, error=None):
    return render_template("stamping/usage_import.html", form=form, error=error, max_rows=MAX_ROWS,
                           max_mb=MAX_BYTES // (1024 * 1024),
                           lookback_start=lookback_start(utcnow(), current_app.config["STAMP_LOOKBACK_MONTHS"]),
                           ), 422 if error else 200
