"""Home page, language switch, audit log; and the small helpers every view uses."""

from datetime import datetime, time, timedelta

from flask import abort, current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import select, update

from scm.auth.decorators import roles_required
from scm.auth.models import Role
from scm.core import bp
from scm.core.database import unit_of_work, utcnow
from scm.core.formatting import WIB
from scm.core.forms import AuditFilterForm, LanguageForm
from scm.core.models import AuditLog, Notification
from scm.extensions import db


def field_error(form, error):
    """Show a ServiceError beside its field, or at the top of the form."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


def show_decision_error(form, error):
    """A refused decision: a missing reason beside the comment box, anything else as a flash."""
    if error.field == "comment":
        form.comment.errors = [error.message]
    else:
        flash(str(error.message), "danger")


def no_store(body):
    """A response that browsers and proxies must not keep (one-time passwords)."""
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def paginate(stmt, per_page=None):
    """One page of ``stmt`` from ``?page=``: two queries (count, rows), whatever the page size."""
    return db.paginate(stmt, per_page=per_page or current_app.config["PAGE_SIZE"], max_per_page=100,
                       error_out=False)


def wib_day_bounds(day_from, day_to):
    """UTC datetimes bounding WIB calendar days [day_from, day_to] (either may be None)."""
    start = datetime.combine(day_from, time.min, WIB) if day_from else None
    end = datetime.combine(day_to + timedelta(days=1), time.min, WIB) if day_to else None
    return start, end


@bp.route("/")
def index():
    """The home page: the public landing page, or the user's dashboard."""
    if not current_user.is_authenticated:
        return render_template("core/landing.html")
    return render_template("core/dashboard.html", **_dashboard_context())


def _dashboard_context():
    from scm.billing.reports import dashboard
    from scm.core.formatting import today_wib
    from scm.procurement.services import dashboard_for

    return {**dashboard_for(current_user), **dashboard(current_user, today_wib())}


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
    return render_template("core/notifications.html", page=page, unread=unread)


@bp.route("/language", methods=["POST"])
def set_language():
    """Switch the interface language (Bahasa Indonesia / English)."""
    form = LanguageForm()
    if form.validate_on_submit() and form.lang.data in current_app.config["LANGUAGES"]:
        session["lang"] = form.lang.data
    target = form.next.data or ""
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("core.index")
    return redirect(target)


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
    return render_template("core/audit_log.html", form=form, page=paginate(stmt))


@bp.route("/healthz")
def healthz():
    """Liveness and database check for load balancers."""
    try:
        db.session.execute(select(1))
    except Exception:  # pragma: no cover - only when the database is down
        abort(503)
    return {"status": "ok"}
