"""The scheduled jobs page: each job's schedule, last run and lease, and the run history."""

from flask import render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from scm.auth.decorators import roles_required
from scm.auth.models import Role
from scm.core.database import utcnow
from scm.core.models import JobLock, JobOutcome, JobRun
from scm.core.tasks import JOBS, describe_schedule, format_duration, job_trigger, last_run_ids
from scm.core.views import paginate
from scm.extensions import db
from scm.home import bp
from scm.home.forms import JobRunFilterForm


@bp.route("/admin/jobs")
@roles_required(Role.DIST_ADMIN)
def job_runs():
    """Scheduled jobs: schedule, last run (skipped ones aside), lease, and a filterable history."""
    latest = {run.name: run for run in db.session.execute(select(JobRun).where(JobRun.id.in_(last_run_ids()))).scalars()}
    leases = {lock.name: lock for lock in db.session.execute(select(JobLock)).scalars()}
    jobs = [{"name": name, "schedule": describe_schedule(job_trigger(name)), "run": latest.get(name),
             "lease": leases.get(name)} for name in JOBS]

    form = JobRunFilterForm(request.args)
    form.job.choices = [("", _l("All jobs"))] + [(name, name) for name in JOBS]
    stmt = select(JobRun).order_by(JobRun.id.desc())
    if form.validate():
        if form.job.data:
            stmt = stmt.where(JobRun.name == form.job.data)
        if form.outcome.data:
            stmt = stmt.where(JobRun.outcome == JobOutcome(form.outcome.data))
    return render_template("home/job_runs.html", jobs=jobs, form=form, page=paginate(stmt), now=utcnow(),
                           duration=format_duration)
