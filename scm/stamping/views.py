"""Stamping pages: the history (Riwayat pembubuhan) with filters, counts, keyset pages, XLSX export
and each stamp's life; the distributor admin's usage-report import."""

import os
import tempfile
from collections import Counter
from datetime import date, datetime
from types import SimpleNamespace

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import joinedload

from scm.auth.decorators import roles_required
from scm.auth.models import Role
from scm.auth.scoping import get_scoped_or_404, scope_query
from scm.core.background import start_task
from scm.core.database import unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import WIB
from scm.core.models import BackgroundTask, TaskState
from scm.core.uploads import Upload, hold_upload, take_held_upload
from scm.core.views import within_wib_days
from scm.extensions import db
from scm.quota.models import QuotaEntry
from scm.registration.models import Wapu
from scm.stamping import bp
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


def _filters():
    """The filter form and the WHERE clauses it asks for (the state apart, for the counts)."""
    form = UsageFilterForm(request.args)
    form.state.choices = [("", _l("All states"))] + [(s.value, s.label) for s in StampState]
    form.document_type.choices = [("", _l("All types"))] + [(t, document_type_label(t))
                                                             for t in current_app.config["DOCUMENT_TYPES"]]
    form.validate()  # an invalid field shows its error and filters nothing; the others still apply
    ok = {name: not field.errors and field.data for name, field in form._fields.items()}
    clauses = []
    clauses += within_wib_days(Stamp.occurred_at, form.date_from.data if ok["date_from"] else None,
                               form.date_to.data if ok["date_to"] else None)
    if ok["document_type"]:
        clauses.append(Stamp.document_type == form.document_type.data)
    if ok["serial"]:
        clauses.append(Stamp.serial.startswith(form.serial.data.strip(), autoescape=True))
    if ok["wapu"] and current_user.is_distributor:
        clauses.append(Stamp.wapu.has(Wapu.code == form.wapu.data.strip().upper()))
    state = form.state.data if ok["state"] else None
    return form, clauses, state


def _scoped(stmt):
    return scope_query(stmt, Stamp, current_user)


@bp.route("/usage")
@login_required
def usage():
    """The history, newest first by the time shown (``occurred_at``): counts per state and one keyset
    page (``?before=<id>``: the rows after that stamp in this order)."""
    form, clauses, state = _filters()
    counts = dict(db.session.execute(
        _scoped(select(Stamp.state, func.count()).where(*clauses).group_by(Stamp.state))
    ).all())
    stmt = _scoped(select(Stamp).where(*clauses)).options(joinedload(Stamp.wapu))
    if state:
        stmt = stmt.where(Stamp.state == state)
    before = request.args.get("before", type=int)
    if before:
        after_time = select(Stamp.occurred_at).where(Stamp.id == before).scalar_subquery()
        stmt = stmt.where(tuple_(Stamp.occurred_at, Stamp.id) < tuple_(after_time, before))
    rows = db.session.execute(stmt.order_by(*NEWEST_FIRST).limit(PAGE + 1)).scalars().all()
    next_before = rows[PAGE - 1].id if len(rows) > PAGE else None
    args = {k: v for k, v in request.args.items() if k != "before"}
    return render_template("stamping/usage.html", form=form, stamps=rows[:PAGE], counts=counts,
                           states=list(StampState), next_before=next_before, args=args, paged=bool(before))


@bp.route("/usage/export.xlsx")
@login_required
def usage_export():
    """The filtered history as an XLSX workbook, streamed from the database to a temp file."""
    _form, clauses, state = _filters()
    stmt = _scoped(select(Stamp.serial, Wapu.code, Stamp.state, Stamp.document_type, Stamp.document_number,
                          Stamp.document_date, Stamp.reserved_at, Stamp.stamped_at, Stamp.released_at,
                          Stamp.release_reason, Stamp.source).join(Wapu, Wapu.id == Stamp.wapu_id).where(*clauses))
    if state:
        stmt = stmt.where(Stamp.state == state)
    stmt = stmt.order_by(*NEWEST_FIRST).execution_options(yield_per=2000)

    sources = {"api": _("API"), "batch": _("batch report"), "file": _("usage file")}

    def rows():
        for row in db.session.execute(stmt):
            (serial, code, state, document_type, number, date, reserved, stamped, released, reason, source) = row
            yield (serial, code, str(state.label), document_type_label(document_type), number, date, _wib(reserved),
                   _wib(stamped), _wib(released), reason, sources.get(source, source))

    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    write_stamps_xlsx(rows(), path, headers=[str(h) for h in EXPORT_HEADERS], title=_("Stamping history"))
    response = send_file(path, as_attachment=True, download_name="riwayat-pembubuhan.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response.call_on_close(lambda: os.unlink(path))
    return response


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
