"""Riwayat pembubuhan: the stamping history with filters, counts, keyset pages, XLSX export and
each stamp's life."""

import os
import tempfile

from flask import current_app, render_template, request, send_file
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from scm.auth.scoping import get_scoped_or_404, scope_query
from scm.core.formatting import WIB
from scm.core.views import wib_day_bounds
from scm.extensions import db
from scm.quota import bp
from scm.quota.exports import write_stamps_xlsx
from scm.quota.forms import UsageFilterForm
from scm.quota.models import QuotaEntry, Stamp, StampState
from scm.registration.models import Wapu

PAGE = 50


def _filters():
    """The filter form and the WHERE clauses it asks for (the state apart, for the counts)."""
    form = UsageFilterForm(request.args)
    form.state.choices = [("", _l("All states"))] + [(s.value, s.label) for s in StampState]
    form.document_type.choices = [("", _l("All types"))] + [(t, t) for t in current_app.config["DOCUMENT_TYPES"]]
    form.validate()  # an invalid field shows its error and filters nothing; the others still apply
    ok = {name: not field.errors and field.data for name, field in form._fields.items()}
    clauses = []
    start, end = wib_day_bounds(form.date_from.data if ok["date_from"] else None,
                                form.date_to.data if ok["date_to"] else None)
    if start:
        clauses.append(Stamp.occurred_at >= start)
    if end:
        clauses.append(Stamp.occurred_at < end)
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
    """The history: counts per state and one keyset page (``?before=<id>`` for the next)."""
    form, clauses, state = _filters()
    counts = dict(db.session.execute(
        _scoped(select(Stamp.state, func.count()).where(*clauses).group_by(Stamp.state))
    ).all())
    stmt = _scoped(select(Stamp).where(*clauses)).options(joinedload(Stamp.wapu))
    if state:
        stmt = stmt.where(Stamp.state == state)
    before = request.args.get("before", type=int)
    if before:
        stmt = stmt.where(Stamp.id < before)
    rows = db.session.execute(stmt.order_by(Stamp.id.desc()).limit(PAGE + 1)).scalars().all()
    next_before = rows[PAGE - 1].id if len(rows) > PAGE else None
    args = {k: v for k, v in request.args.items() if k != "before"}
    return render_template("quota/usage.html", form=form, stamps=rows[:PAGE], counts=counts,
                           states=list(StampState), next_before=next_before, args=args, paged=bool(before))


@bp.route("/usage/export.xlsx")
@login_required
def usage_export():
    """The filtered history as an XLSX workbook, streamed from the database to a temp file."""
    _, clauses, state = _filters()
    stmt = _scoped(select(Stamp.serial, Wapu.code, Stamp.state, Stamp.document_type, Stamp.document_number,
                          Stamp.document_date, Stamp.reserved_at, Stamp.stamped_at, Stamp.released_at,
                          Stamp.release_reason, Stamp.source).join(Wapu, Wapu.id == Stamp.wapu_id).where(*clauses))
    if state:
        stmt = stmt.where(Stamp.state == state)
    stmt = stmt.order_by(Stamp.id.desc()).execution_options(yield_per=2000)

    def rows():
        for row in db.session.execute(stmt):
            yield tuple(_wib(v) if hasattr(v, "tzinfo") else (v.value if isinstance(v, StampState) else v)
                        for v in row)

    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    write_stamps_xlsx(rows(), path)
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
    return render_template("quota/stamp.html", stamp=item, entries=entries)
