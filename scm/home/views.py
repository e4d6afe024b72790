"""Pages that span the features: the dashboard, notifications, the audit log and the scheduled jobs."""

from flask import render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select, update

from scm.auth.decorators import roles_required
from scm.auth.models import Role
from scm.billing.reports import dashboard_panel as billing_panel
from scm.core.database import unit_of_work, utcnow
from scm.core.formatting import today_wib
from scm.core.models import AuditLog, Notification
from scm.core.views import paginate, wib_day_bounds
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


@bp.route("/admin/audit")
@roles_required(Role.DIST_ADMIN)
def audit_log():
    """Browse and filter the audit log."""
    form = AuditFilterForm(request.args)
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if form.validate():
        if form.action.data:
            stmt = stmt.where(AuditLog.action.contains(form.action.data.strip()))
        if form.actor.data:
            stmt = stmt.where(AuditLog.actor_label.contains(form.actor.data.strip().lower()))
        if form.object_type.data:
            stmt = stmt.where(AuditLog.object_type == form.object_type.data.strip())
        start, end = wib_day_bounds(form.date_from.data, form.date_to.data)
        if start:
            stmt = stmt.where(AuditLog.created_at >= start)
        if end:
            stmt = stmt.where(AuditLog.created_at < end)
    return render_template("home/audit_log.html", form=form, page=paginate(stmt))


