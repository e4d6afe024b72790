"""Pages that span the features: the dashboard, notifications, the audit log and the scheduled jobs."""

import io

from flask import render_template, request, send_file
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, or_, select, update

from scm.auth.decorators import roles_required
from scm.auth.models import Role
from scm.billing.reports import dashboard_panel as billing_panel
from scm.core.database import unit_of_work, utcnow
from scm.core.formatting import WIB, today_wib
from scm.core.models import AuditLog, Notification
from scm.core.services import audit_action_label, audit_text
from scm.core.views import export_in_background, paginate, within_wib_days
from scm.core.xlsx import csv_lines, write_rows_xlsx, written
from scm.extensions import db
from scm.home import bp
from scm.home.forms import AuditFilterForm
from scm.procurement.services import dashboard_panel as procurement_panel
from scm.quota.services import dashboard_panel as quota_panel
from scm.registration.services import dashboard_panel as registration_panel


@bp.route("/")
def index():
    """The home page: the public landing page, or the user's dashboard."""
    if not current_user.is_authenticated:
        return render_template("home/landing.html")
    return render_template("home/dashboard.html", **_dashboard_context())


# Each feature offers its part of the dashboard as ``dashboard_panel(user, today) -> dict``.
PANELS = (registration_panel, quota_panel, procurement_panel, billing_panel)


def _dashboard_context():
    today = today_wib()
    context = {}
    for panel in PANELS:
        context.update(panel(current_user, today))
    return context


@bp.route("/notifications")
@login_required
def notifications():
    """The user's notifications, newest first; opening the list marks them read."""
    stmt = select(Notification).where(Notification.user_id == current_user.id).order_by(Notification.id.desc())
    page = paginate(stmt)
    unread = {n.id for n in page.items if n.read_at is None}
    for item in page.items:  # keep them as loaded: marking them read must not expire them
        db.session.expunge(item)
    if unread:  # the ones shown are now read; older pages stay unread until opened
        with unit_of_work():
            db.session.execute(
                update(Notification)
                .where(Notification.user_id == current_user.id, Notification.id.in_(unread))
                .values(read_at=utcnow())
            )
    return render_template("home/notifications.html", page=page, unread=unread)


def audit_query(args):
    """The audit log filtered by ``args`` (the query string): (form, statement), newest first."""
    form = AuditFilterForm(args)
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if form.validate():
        if form.action.data:
            stmt = stmt.where(AuditLog.action.contains(form.action.data.strip()))
        if form.actor.data:
            stmt = stmt.where(AuditLog.actor_label.contains(form.actor.data.strip().lower()))
        if form.object.data:
            wanted = form.object.data.strip()
            stmt = stmt.where(or_(func.lower(AuditLog.object_ref).contains(wanted.lower(), autoescape=True),
                                  AuditLog.object_type == wanted))
        stmt = stmt.where(*within_wib_days(AuditLog.created_at, form.date_from.data, form.date_to.data))
    return form, stmt


@bp.route("/admin/audit")
@roles_required(Role.DIST_ADMIN)
def audit_log():
    """Browse and filter the audit log, each entry in the reader's language."""
    form, stmt = audit_query(request.args)
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("home/audit_log.html", form=form, page=paginate(stmt), args=args,
                           action_label=audit_action_label, audit_text=audit_text)


def audit_rows(stmt):
    """The filtered log as export rows (in the reader's language), streamed from the database."""
    for entry in db.session.execute(stmt.execution_options(yield_per=1000)).scalars():
        yield (entry.created_at.astimezone(WIB).replace(tzinfo=None), entry.actor_label, audit_action_label(entry.action),
               entry.action, entry.object_type, entry.object_id, entry.object_ref, audit_text(entry), entry.summary,
               entry.ip or "")


AUDIT_HEADERS = (_l("Time (WIB)"), _l("Actor"), _l("Action"), _l("Action code"), _l("Object type"), _l("Object id"),
                 _l("Object"), _l("Details"), _l("Summary (English)"), "IP")


@bp.route("/admin/audit/export.<any(xlsx, csv):fmt>", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def audit_export(fmt):
    """The filtered audit log for an auditor, as XLSX or CSV (UTF-8 with BOM, for Excel); a large
    one is prepared in the queue."""
    _form, stmt = audit_query(request.args)
    return export_in_background(stmt, "home.audit_export", params={"fmt": fmt},
                                inline=lambda: send_file(audit_file(stmt, fmt), as_attachment=True,
                                                         download_name=audit_file_name(fmt), mimetype=MIMETYPES[fmt]))


MIMETYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def audit_file_name(fmt):
    return f"log-audit-{today_wib():%Y%m%d}.{fmt}"


def audit_file(stmt, fmt, watch=None) -> io.BytesIO:
    """The rows of ``stmt`` as an XLSX or CSV file (through a temp file: memory stays flat while
    writing); ``watch`` wraps the rows (a task's progress)."""
    rows = audit_rows(stmt)
    if watch:
        rows = watch(rows)
    headers = [str(h) for h in AUDIT_HEADERS]

    def write(file):
        if fmt == "csv":
            for line in csv_lines(headers, rows):
                file.write(line.encode("utf-8"))
        else:
            write_rows_xlsx(rows, file, headers, title=_("Audit log"), widths=(19, 28, 28, 26, 14, 10, 24, 60, 60, 15))

    return io.BytesIO(written(write))
