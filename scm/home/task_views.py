"""Background tasks a person started: one task's progress page (polled by ``static/js/task.js``),
its state as JSON, its file, and the list of tasks (the distributor sees everyone's)."""

from io import BytesIO

from flask import abort, flash, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from scm.auth.models import DISTRIBUTOR_ROLES
from scm.core.background import downloadable, task_back, task_file, task_next, task_summary, task_title
from scm.core.models import BackgroundTask
from scm.core.views import paginate
from scm.extensions import db
from scm.home import bp


def _sees_all() -> bool:
    return current_user.role in DISTRIBUTOR_ROLES


def _task_or_404(task_id) -> BackgroundTask:
    """A task its reader may see: their own, or any for the distributor's staff."""
    task = db.session.get(BackgroundTask, task_id)
    if task is None or not (_sees_all() or task.user_id == current_user.id):
        abort(404)
    return task


def task_status(task) -> dict:
    """What the progress page shows, as the poll reads it."""
    return {"id": task.id, "state": task.state.value, "state_label": str(task.state.label), "done": task.done,
            "total": task.total, "percent": task.percent, "step": task.step, "finished": task.finished,
            "summary": task_summary(task), "error": task.error or "",
            "download": url_for("home.task_download", task_id=task.id) if downloadable(task) else None,
            "next": task_next(task)}


@bp.route("/tasks")
@login_required
def tasks():
    """Background tasks, newest first: who started what, when, how far it got, how it ended."""
    stmt = select(BackgroundTask).options(joinedload(BackgroundTask.user)).order_by(BackgroundTask.id.desc())
    if not _sees_all():
        stmt = stmt.where(BackgroundTask.user_id == current_user.id)
    return render_template("home/tasks.html", page=paginate(stmt), title=task_title, summary=task_summary,
                           downloadable=downloadable, sees_all=_sees_all())


@bp.route("/tasks/<int:task_id>")
@login_required
def task(task_id):
    """One task: its progress bar (updated without a reload), then its file or its failure."""
    item = _task_or_404(task_id)
    following = task_next(item)
    if following:  # done, and its result has a page of its own (a usage file's preview)
        return redirect(following)
    return render_template("home/task.html", task=item, title=task_title(item), status=task_status(item),
                           back=task_back(item))


@bp.route("/tasks/<int:task_id>.json")
@login_required
def task_json(task_id):
    """The task's state for the progress page's poll."""
    return task_status(_task_or_404(task_id))


@bp.route("/tasks/<int:task_id>/file")
@login_required
def task_download(task_id):
    """The file the task produced, while it may still be downloaded."""
    item = _task_or_404(task_id)
    found = task_file(item)
    if found is None:
        flash(_("This file is no longer available: start the task again."), "warning")
        return redirect(url_for("home.task", task_id=task_id))
    stored, data = found
    return send_file(BytesIO(data), mimetype=stored.content_type, as_attachment=True,
                     download_name=stored.original_name)
