"""Heavy work in the background: a task row per action a person starts, run by the workers of a
task queue (Huey), with progress a person can watch and a file to download at the end.

- ``start_task`` (in the caller's unit of work) records a ``BackgroundTask`` and puts its id on the
  queue once the unit of work commits. The same unfinished work (kind and key) is never started
  twice: a second click finds the first task.
- A worker (``flask queue worker``) runs :func:`run_task`: it claims the task with a lease
  (one conditional UPDATE), runs the task's function, and marks it done *in the same transaction
  as the work's last step* and only while it still holds the lease. So a task retried after a
  crash never does its work twice, and a finished task is never run again.
- The work renews the lease through its progress. A task whose worker died (its lease expired)
  or whose message was lost goes back on the queue (the ``requeue-tasks`` job).
- The queue comes from ``SCM_QUEUE_URL``: ``sqlite:///path`` (embedded, the default, one machine),
  ``redis://host:6379/0`` (several machines), or ``immediate`` (run at once in the same process:
  the test suite and scripts).

Features register their task kinds with :func:`register_task` from their ``init_app``.
"""

import importlib
import logging
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy import delete, func, or_, select, update

from scm.core.database import after_commit, count_rows, in_unit_of_work, own_transaction, unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import format_number
from scm.core.logs import log_context
from scm.core.metrics import register_gauges
from scm.core.models import BackgroundTask, StoredFile, TaskState
from scm.core.tasks import new_holder, register_job
from scm.core.uploads import Upload, store_upload, stored_bytes
from scm.extensions import db

log = logging.getLogger("scm.queue")

WRITING = _l("Writing the rows")
MAX_ATTEMPTS = 3  # a task whose worker died three times is given up (and says so)
PROGRESS_EVERY = 0.5  # seconds between two progress writes


@dataclass(frozen=True)
class TaskKind:
    path: str  # "module:function", imported when run; the function takes a TaskContext
    title: object  # lazy text with the params' %(placeholders)s: "Workbook of %(month)s"
    done: object = None  # lazy text with the result's %(placeholders)s, shown when it is done
    back: object = None  # lazy text of the link back to where it was started
    back_url: object = None  # function(params) -> the URL of that page
    next_url: object = None  # function(task) -> the page that shows a done task's result, or None


TASKS: dict[str, TaskKind] = {}


def register_task(kind, path, title, *, done=None, back=None, back_url=None, next_url=None):
    """Declare background task ``kind``: ``path`` is ``"module:function"`` taking a TaskContext."""
    TASKS[kind] = TaskKind(path, title, done, back, back_url, next_url)


def _text(template, values) -> str:
    """``template`` filled with ``values``, whole numbers grouped as the reader writes them (4.076)."""
    if template is None:
        return ""
    values = {key: format_number(value) if isinstance(value, int) and not isinstance(value, bool) else value
              for key, value in (values or {}).items()}
    try:
        return str(template) % values
    except (KeyError, TypeError, ValueError):
        return str(template)


def task_title(task: BackgroundTask) -> str:
    kind = TASKS.get(task.kind)
    return _text(kind.title, task.params) if kind else task.kind


def task_summary(task: BackgroundTask) -> str:
    """What a finished task did, in the reader's language."""
    kind = TASKS.get(task.kind)
    return _text(kind.done, task.result) if kind and task.state == TaskState.DONE else ""


def task_next(task: BackgroundTask):
    """The page that shows what a done task found (a usage file's preview), or None."""
    kind = TASKS.get(task.kind)
    if kind is None or kind.next_url is None or task.state != TaskState.DONE:
        return None
    return kind.next_url(task)


def task_back(task: BackgroundTask):
    """(label, URL) of the page the task was started from, or None."""
    kind = TASKS.get(task.kind)
    if kind is None or kind.back_url is None:
        return None
    return str(kind.back), kind.back_url(task.params)


# ------------------------------------------------------------------------------------------ queue


def make_queue(app):
    """The app's Huey instance from ``QUEUE_URL``, with the one task that runs a BackgroundTask."""
    url = app.config["QUEUE_URL"]
    name = app.config["QUEUE_NAME"]
    if url == "immediate":
        huey = Huey(name, immediate=True, results=False)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        huey = RedisHuey(name, url=url, results=False)
    elif url.startswith("sqlite:///"):
        huey = SqliteHuey(name, filename=url.removeprefix("sqlite:///"), results=False)
    else:
        raise RuntimeError(f"SCM_QUEUE_URL must be sqlite:///PATH, redis://HOST:PORT/DB or immediate, not {url!r}")

    @huey.task(name="run_background_task")
    def run_background_task(task_id):
        with app.app_context():
            run_task(task_id)

    app.extensions["scm_queue"] = (huey, run_background_task)
    return huey


def queue():
    """The current app's Huey instance."""
    return current_app.extensions["scm_queue"][0]


def _enqueue(task_id):
    current_app.extensions["scm_queue"][1](task_id)


def enqueue_after_commit(task_id):
    """Put ``task_id`` on the queue once the unit of work commits (never a task that rolled back).
    If the queue cannot be reached, the task waits and ``requeue-tasks`` puts it on later."""
    def send():
        try:
            _enqueue(task_id)
        except Exception:
            log.exception("task %s could not be put on the queue; requeue-tasks will retry", task_id)

    after_commit(send)


def queue_ready() -> str:
    """``ok`` if the queue answers; else why not (for /readyz)."""
    try:
        queue().pending_count()
        return "ok"
    except Exception as error:  # any failure to answer is "unavailable"; the probe never fails
        return f"unavailable: {error.__class__.__name__}"


# ------------------------------------------------------------------------------------------ starting


def start_task(kind, actor, *, key="", params=None) -> BackgroundTask:
    """Record background task ``kind`` for ``actor`` in the current unit of work and queue it after
    commit. An unfinished task of the same kind and key is returned instead of a second one."""
    if kind not in TASKS:
        raise KeyError(kind)
    running = db.session.execute(
        select(BackgroundTask).where(BackgroundTask.kind == kind, BackgroundTask.key == key,
                                     BackgroundTask.state.in_((TaskState.QUEUED, TaskState.RUNNING)))
        .order_by(BackgroundTask.id).limit(1)
    ).scalar()
    if running is not None:
        return running
    now = utcnow()
    task = BackgroundTask(kind=kind, key=key, params=params or {}, user_id=getattr(actor, "id", None),
                          state=TaskState.QUEUED, created_at=now, enqueued_at=now, result={})
    db.session.add(task)
    db.session.flush()
    enqueue_after_commit(task.id)
    return task


# ------------------------------------------------------------------------------------------ running


class TaskLost(RuntimeError):
    """Another worker took the task over (this one's lease had expired): stop, change nothing."""


class TaskContext:
    """What a task's function gets: its params, who started it, progress and the final result."""

    def __init__(self, task: BackgroundTask, holder: str):
        self.id, self.kind, self.params, self.user_id = task.id, task.kind, dict(task.params), task.user_id
        self.holder = holder
        self.lease = timedelta(seconds=current_app.config["TASK_LEASE_SECONDS"])
        self._last = 0.0
        self.finished = False

    @property
    def actor(self):
        """The user who started the task (loaded in the current session), or None."""
        return db.session.get(BackgroundTask, self.id).user if self.user_id else None

    def _mine(self):
        return (BackgroundTask.id == self.id, BackgroundTask.holder == self.holder,
                BackgroundTask.state == TaskState.RUNNING)

    def progress(self, done, total, step=None, *, force=False):
        """Record how far the work got and renew the lease (at most twice a second).

        Inside a unit of work it writes through that transaction (visible once it commits);
        between units of work on a short transaction of its own. Raises TaskLost if another
        worker took the task over."""
        delay = current_app.config["TASK_STEP_DELAY"]  # a testing knob: make a task slow enough to kill
        if delay:
            time.sleep(delay)
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_EVERY and done < total:
            return
        self._last = now
        values = {"done": done, "total": total, "locked_until": utcnow() + self.lease}
        if step is not None:
            values["step"] = str(step)[:200]
        statement = update(BackgroundTask).where(*self._mine()).values(**values)
        if in_unit_of_work():
            claimed = db.session.execute(statement.execution_options(synchronize_session=False)).rowcount
        else:
            with own_transaction() as conn:
                claimed = conn.execute(statement).rowcount
        if claimed != 1:
            raise TaskLost(f"task {self.id} was taken over by another worker")

    def counted(self, rows, total, step, every=2000):
        """``rows`` unchanged, the progress recorded every ``every`` rows (an export's rows)."""
        done = 0
        for done, row in enumerate(rows, start=1):
            yield row
            if done % every == 0:
                self.progress(done, total, step)

    def export(self, stmt, build, name, mimetype):
        """Finish with the file ``build(stmt, watch)`` makes of the rows of ``stmt`` (``watch`` wraps
        the rows to record the progress), named ``name``; the result counts the rows."""
        total = count_rows(stmt)
        self.progress(0, total, WRITING, force=True)
        data = build(stmt, lambda rows: self.counted(rows, total, WRITING))
        db.session.rollback()  # the read ends before the write begins
        with unit_of_work():
            self.finish({"rows": total}, file=Upload(data, name, mimetype))

    def finish(self, result=None, *, file: Upload | None = None):
        """Mark the task done in the current unit of work, with the work's last step: both commit
        or neither. ``file`` is stored (in the database) and downloadable for ``TASK_RESULT_HOURS``."""
        if not in_unit_of_work():
            raise RuntimeError("finish() belongs inside the work's unit of work")
        now = utcnow()
        values = {"state": TaskState.DONE, "finished_at": now, "result": result or {}, "locked_until": None,
                  "done": BackgroundTask.total, "step": "",  # the last progress step may have been skipped
                  "expires_at": now + timedelta(hours=current_app.config["TASK_RESULT_HOURS"])}
        if file is not None:
            values["file_id"] = store_upload(file).id
        if db.session.execute(update(BackgroundTask).where(*self._mine()).values(**values)
                              .execution_options(synchronize_session=False)).rowcount != 1:
            raise TaskLost(f"task {self.id} was taken over by another worker")
        self.finished = True


def _claim(task_id, holder):
    """Take the task if it waits, or if its worker's lease expired; None if not ours to run."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["TASK_LEASE_SECONDS"])
    with unit_of_work():
        taken = db.session.execute(
            update(BackgroundTask).where(
                BackgroundTask.id == task_id,
                or_(BackgroundTask.state == TaskState.QUEUED,
                    (BackgroundTask.state == TaskState.RUNNING) & (BackgroundTask.locked_until < now)))
            .values(state=TaskState.RUNNING, holder=holder, locked_until=now + lease,
                    attempts=BackgroundTask.attempts + 1, started_at=func.coalesce(BackgroundTask.started_at, now))
            .execution_options(synchronize_session=False)
        ).rowcount
        if not taken:
            return None
        return db.session.get(BackgroundTask, task_id)


def _readable(error) -> str:
    """Why a task failed: a refusal's message (in the starter's language: the run is in it), or the
    exception's last line."""
    if isinstance(error, ServiceError):
        return str(error.message)
    return traceback.format_exception_only(error)[-1].strip()[:2000]


def run_task(task_id, holder=None) -> bool:
    """Run background task ``task_id`` if it is ours to run; True if this call finished it."""
    holder = holder or new_holder()
    try:
        task = _claim(task_id, holder)
        if task is None:
            log.info("task %s: not run (finished, or another worker holds it)", task_id)
            return False
        context = TaskContext(task, holder)
        kind = TASKS[task.kind]
        module, function = kind.path.split(":")
        locale = task.params.get("locale") or current_app.config["BABEL_DEFAULT_LOCALE"]
        with log_context(f"task:{task.kind}:{task_id}"), force_locale(locale):  # messages in the starter's language
            log.info("task %s (%s) started, attempt %s", task_id, task.kind, task.attempts)
            try:
                result = getattr(importlib.import_module(module), function)(context)
                if not context.finished:
                    with unit_of_work():
                        context.finish(result)
            except TaskLost:
                db.session.rollback()
                log.warning("task %s: taken over by another worker; this run's work was rolled back", task_id)
                return False
            except Exception as error:
                db.session.rollback()
                log.exception("task %s failed", task_id)
                with unit_of_work():
                    db.session.execute(
                        update(BackgroundTask).where(*context._mine())
                        .values(state=TaskState.FAILED, finished_at=utcnow(), locked_until=None,
                                error=_readable(error)).execution_options(synchronize_session=False))
                return False
            log.info("task %s done", task_id)
            return True
    finally:
        db.session.remove()


def downloadable(task: BackgroundTask) -> bool:
    """Whether a done task's file may still be downloaded."""
    return bool(task.state == TaskState.DONE and task.file_id and (task.expires_at is None or task.expires_at > utcnow()))


def task_file(task: BackgroundTask):
    """(StoredFile, bytes) of a done task's file while it may still be downloaded, else None."""
    if not downloadable(task):
        return None
    stored = db.session.get(StoredFile, task.file_id)
    data = stored_bytes(stored) if stored else None
    return (stored, data) if data is not None else None


# ------------------------------------------------------------------------------------------ upkeep


def requeue_tasks_job(now=None):
    """Every minute: put back on the queue the tasks whose worker died (lease expired) and the
    waiting tasks whose message was lost; give up a task after MAX_ATTEMPTS dead workers."""
    now = now or utcnow()
    lease = timedelta(seconds=current_app.config["TASK_LEASE_SECONDS"])
    with unit_of_work():
        stalled = (BackgroundTask.state == TaskState.RUNNING) & (BackgroundTask.locked_until < now)
        given_up = db.session.execute(
            update(BackgroundTask).where(stalled, BackgroundTask.attempts >= MAX_ATTEMPTS)
            .values(state=TaskState.FAILED, finished_at=now, locked_until=None,
                    error=f"its worker stopped {MAX_ATTEMPTS} times before it ended")
            .execution_options(synchronize_session=False)).rowcount
        ids = db.session.execute(select(BackgroundTask.id).where(or_(
            stalled, (BackgroundTask.state == TaskState.QUEUED) & (BackgroundTask.enqueued_at < now - lease)))
        ).scalars().all()
        if ids:
            db.session.execute(update(BackgroundTask).where(BackgroundTask.id.in_(ids), or_(
                stalled, BackgroundTask.state == TaskState.QUEUED))
                .values(state=TaskState.QUEUED, holder=None, locked_until=None, enqueued_at=now)
                .execution_options(synchronize_session=False))
            for task_id in ids:
                enqueue_after_commit(task_id)
    return {"requeued": len(ids), "given_up": given_up}


def prune_tasks(now, retention_days) -> dict:
    """Drop the files of tasks past their download time, and tasks older than ``retention_days``."""
    with unit_of_work():
        expired = db.session.execute(select(BackgroundTask.file_id).where(
            BackgroundTask.file_id.is_not(None), BackgroundTask.expires_at < now)).scalars().all()
        old = BackgroundTask.finished_at < now - timedelta(days=retention_days)
        expired += db.session.execute(select(BackgroundTask.file_id).where(
            BackgroundTask.file_id.is_not(None), old)).scalars().all()
        if expired:
            db.session.execute(update(BackgroundTask).where(BackgroundTask.file_id.in_(expired))
                               .values(file_id=None).execution_options(synchronize_session=False))
            db.session.execute(delete(StoredFile).where(StoredFile.id.in_(expired))
                               .execution_options(synchronize_session=False))
        deleted = db.session.execute(delete(BackgroundTask).where(old)
                                     .execution_options(synchronize_session=False)).rowcount
    return {"task_files_deleted": len(set(expired)), "tasks_deleted": deleted}


def task_gauges(now):
    """For /metrics: unfinished tasks by state, and how long the oldest waiting one has waited (a queue
    with no worker shows here first)."""
    from prometheus_client.core import GaugeMetricFamily

    counts = dict(db.session.execute(select(BackgroundTask.state, func.count()).where(
        BackgroundTask.state.in_((TaskState.QUEUED, TaskState.RUNNING))).group_by(BackgroundTask.state)).all())
    tasks = GaugeMetricFamily("scm_background_tasks", "Background tasks waiting or running.", labels=["state"])
    for state in (TaskState.QUEUED, TaskState.RUNNING):
        tasks.add_metric([state.value], counts.get(state, 0))
    oldest = db.session.execute(select(func.min(BackgroundTask.enqueued_at)).where(
        BackgroundTask.state == TaskState.QUEUED)).scalar()
    age = GaugeMetricFamily("scm_oldest_waiting_task_age_seconds",
                            "How long the oldest waiting background task has waited (0 when none waits).")
    age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
    yield from (tasks, age)


def _sweep_trigger(config):
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(seconds=config["TASK_SWEEP_SECONDS"])


register_job("requeue-tasks", "scm.core.background:requeue_tasks_job", _sweep_trigger)
register_gauges("tasks", task_gauges)


# ------------------------------------------------------------------------------------------ CLI

queue_cli = AppGroup("queue", help="The task queue: its workers and its tasks.")


@queue_cli.command("worker")
@click.option("--threads", default=2, show_default=True, help="Tasks run at the same time by this worker.")
def worker(threads):
    """Run a queue worker in the foreground until stopped (Ctrl+C or SIGTERM end it after the
    running tasks; a killed worker's tasks are taken over by another once their lease expires)."""
    huey = queue()
    if current_app.config["QUEUE_URL"] == "immediate":
        raise click.ClickException("SCM_QUEUE_URL is 'immediate': tasks run where they start, no worker needed.")
    click.echo(f"Queue worker on {current_app.config['QUEUE_URL'].split('@')[-1]} with {threads} thread(s) "
               "(Ctrl+C to stop)")
    huey.create_consumer(workers=threads, worker_type="thread", periodic=False, backoff=1.15, max_delay=1.0).run()


@queue_cli.command("tasks")
@click.option("--limit", default=20, show_default=True, help="How many of the latest tasks.")
def tasks(limit):
    """List the latest background tasks, newest first."""
    for task in db.session.execute(select(BackgroundTask).order_by(BackgroundTask.id.desc()).limit(limit)).scalars():
        click.echo("\t".join((str(task.id), task.kind, task.key, task.state.value, f"{task.done}/{task.total}",
                              f"attempts {task.attempts}", task.error or "")).rstrip())
