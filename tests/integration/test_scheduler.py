"""Scheduled jobs: every run is recorded; a lease in ``job_locks`` lets one scheduler at a time run a
job (a second one, in a thread or another process, records a skipped run); DIST_ADMIN sees it all."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from flask_babel import force_locale
from sqlalchemy import select, update

from scm.auth.models import Role
from scm.core import tasks
from scm.core.database import next_number, unit_of_work, utcnow
from scm.core.models import Counter, JobLock, JobOutcome, JobRun
from scm.extensions import db

ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).with_name("flask")

# ------------------------------------------------------------------ test-only jobs (see sample_jobs)

calls = []
entered, proceed = threading.Event(), threading.Event()


def counting_job():
    calls.append("count")
    return {"done": 1}


def slow_job():
    calls.append("slow")
    entered.set()
    assert proceed.wait(30), "the test never let the slow job finish"
    return {"done": 1}


def failing_job():
    with unit_of_work():
        next_number("half-done")  # a write that must be rolled back with the job
        raise RuntimeError("the printer is on fire")


def takeover_job():
    """A run that outlived its lease: another scheduler took the job over meanwhile."""
    with unit_of_work():
        db.session.execute(update(JobLock).where(JobLock.name == "test-takeover")
                           .values(locked_until=utcnow() - timedelta(seconds=1)))
    assert tasks.acquire_lease("test-takeover", "other-host:3:new")
    return {}


@pytest.fixture
def sample_jobs(monkeypatch):
    calls.clear()
    entered.clear()
    proceed.clear()
    for name in ("count", "slow", "fail", "takeover"):
        function = {"count": "counting_job", "fail": "failing_job"}.get(name, f"{name}_job")
        monkeypatch.setitem(tasks.JOBS, f"test-{name}", (f"{__name__}:{function}", IntervalTrigger(minutes=1)))


# ------------------------------------------------------------------ helpers


def job_runs(app, name=None):
    with app.app_context():
        stmt = select(JobRun).order_by(JobRun.id)
        if name:
            stmt = stmt.where(JobRun.name == name)
        rows = db.session.execute(stmt).scalars().all()
        db.session.expunge_all()
        return rows


def lease(app, name):
    with app.app_context():
        lock = db.session.get(JobLock, name)
        return (lock.holder, lock.locked_until) if lock else None


def hold(app, name, holder, until):
    """Another scheduler holds (or held, if ``until`` is past) the job's lease."""
    with app.app_context(), unit_of_work():
        db.session.merge(JobLock(name=name, holder=holder, locked_until=until))


def cli_env(app, tmp_path):
    """The environment of a ``flask ...`` process on the test's database."""
    return {**os.environ, "SCM_ENV": "testing", "SCM_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "SCM_INSTANCE_PATH": str(tmp_path / "instance"), "SCM_UPLOAD_FOLDER": str(tmp_path / "uploads")}


def flask_cli(app, tmp_path, *args):
    """``flask ...`` as a separate process on the test's database."""
    return subprocess.run([str(FLASK), "--app", "wsgi", *args], cwd=ROOT, env=cli_env(app, tmp_path),
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ runs are recorded


def test_a_run_records_its_times_outcome_and_counts_and_frees_the_lease(app, sample_jobs):
    before = utcnow()
    with app.app_context():
        assert tasks.run_job("test-count") == {"done": 1}
    (run,) = job_runs(app)
    assert (run.name, run.outcome, run.counts, run.error) == ("test-count", JobOutcome.SUCCESS, {"done": 1}, None)
    assert before <= run.started_at <= run.finished_at <= utcnow()
    assert run.host.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert lease(app, "test-count") == (None, None)


def test_a_failing_job_is_recorded_rolled_back_and_frees_the_lease(app, sample_jobs):
    with app.app_context():
        with pytest.raises(RuntimeError, match="on fire"):
            tasks.run_job("test-fail")
    (run,) = job_runs(app)
    assert run.outcome == JobOutcome.FAILED and run.finished_at is not None and run.counts == {}
    assert run.error == "RuntimeError: the printer is on fire"
    assert lease(app, "test-fail") == (None, None)
    with app.app_context():
        assert db.session.execute(select(Counter).where(Counter.key == "half-done")).first() is None
    result = app.test_cli_runner().invoke(args=["scheduler", "run-once", "test-fail"])  # and it runs again
    assert result.exit_code == 1 and "test-fail: failed: RuntimeError: the printer is on fire" in result.output
    assert [r.outcome for r in job_runs(app)] == [JobOutcome.FAILED, JobOutcome.FAILED]


# ------------------------------------------------------------------ the lease


def test_of_two_schedulers_at_once_one_runs_the_job_and_the_other_skips_it(app, sample_jobs):
    barrier, results, errors = threading.Barrier(2), [], []

    def scheduler():
        with app.app_context():
            barrier.wait()
            try:
                results.append(tasks.run_job("test-slow"))
            except Exception as error:
                errors.append(error)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        assert entered.wait(30), f"no scheduler ran the job: {errors}"
        deadline = time.monotonic() + 30
        while not (results or errors) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert results == [None] and not errors  # skipped while the other one still runs the job
        assert lease(app, "test-slow")[0] is not None
    finally:
        proceed.set()
        for thread in threads:
            thread.join(30)
    assert results == [None, {"done": 1}] and calls == ["slow"]
    assert sorted(r.outcome for r in job_runs(app)) == [JobOutcome.SKIPPED, JobOutcome.SUCCESS]
    skipped = next(r for r in job_runs(app) if r.outcome == JobOutcome.SKIPPED)
    assert skipped.counts == {} and skipped.finished_at is not None
    with app.app_context():  # the lease was given back: the next run goes ahead
        assert tasks.run_job("test-slow") == {"done": 1}
    assert calls == ["slow", "slow"]


def test_an_expired_lease_is_taken_over_and_a_live_one_is_respected(app, sample_jobs):
    hold(app, "test-count", "crashed-host:1:dead", utcnow() - timedelta(minutes=1))
    with app.app_context(), unit_of_work():  # the crashed scheduler's run never finished
        db.session.add(JobRun(name="test-count", started_at=utcnow() - timedelta(minutes=31),
                              outcome=JobOutcome.RUNNING, counts={}, host="crashed-host:1:dead"))
    with app.app_context():
        assert tasks.run_job("test-count") == {"done": 1}
    assert lease(app, "test-count") == (None, None)
    crashed, taken_over = job_runs(app)
    assert (crashed.outcome, crashed.error) == (JobOutcome.FAILED, tasks.ABANDONED) and crashed.finished_at
    assert taken_over.outcome == JobOutcome.SUCCESS
    until = utcnow() + timedelta(minutes=10)
    hold(app, "test-count", "other-host:2:live", until)
    with app.app_context():
        assert tasks.run_job("test-count") is None
    assert calls == ["count"] and lease(app, "test-count") == ("other-host:2:live", until)
    assert [r.outcome for r in job_runs(app)] == [JobOutcome.FAILED, JobOutcome.SUCCESS, JobOutcome.SKIPPED]


def test_a_run_that_outlived_its_lease_leaves_the_new_holders_lease_alone(app, sample_jobs):
    with app.app_context():
        assert tasks.run_job("test-takeover") == {}
    assert lease(app, "test-takeover")[0] == "other-host:3:new"


def test_a_second_scheduler_process_skips_a_job_whose_lease_is_held(app, tmp_path):
    hold(app, "send-outbox", "other-host:4:live", utcnow() + timedelta(minutes=10))
    result = flask_cli(app, tmp_path, "scheduler", "run-once", "send-outbox")
    assert result.returncode == 0, result.stderr
    assert "send-outbox: skipped: another scheduler is running it" in result.stdout
    (run,) = job_runs(app)
    assert run.outcome == JobOutcome.SKIPPED and run.host.startswith(socket.gethostname())
    assert not run.host.startswith(f"{socket.gethostname()}:{os.getpid()}:")  # the other process's run
    assert lease(app, "send-outbox")[0] == "other-host:4:live"

    hold(app, "send-outbox", None, None)  # the other scheduler finished
    result = flask_cli(app, tmp_path, "scheduler", "run-once", "send-outbox")
    assert result.returncode == 0, result.stderr
    assert "send-outbox: success: sent: 0, failed: 0" in result.stdout
    assert [r.outcome for r in job_runs(app)] == [JobOutcome.SKIPPED, JobOutcome.SUCCESS]
    listing = flask_cli(app, tmp_path, "scheduler", "runs", "--limit", "1")
    assert listing.returncode == 0 and listing.stdout.count("\n") == 1
    name, started, _duration, outcome, counts = listing.stdout.strip().split("\t")
    assert (name, outcome, counts) == ("send-outbox", "success", "sent: 0, failed: 0") and started.endswith("WIB")


def test_the_scheduler_process_lists_its_jobs_and_stops_cleanly_on_sigterm(app, tmp_path):
    out = tmp_path / "scheduler.out"
    with open(out, "w") as stdout:
        proc = subprocess.Popen([str(FLASK), "--app", "wsgi", "scheduler", "run"], cwd=ROOT,
                                env=cli_env(app, tmp_path), stdout=stdout, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Scheduler started" not in out.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert all(name in text for name in tasks.JOBS) and "Scheduler started" in text, text


# ------------------------------------------------------------------ the real jobs


def test_the_existing_jobs_do_nothing_the_second_time(app, factory, mailbox):
    from scm.core.services import queue_email
    from scm.stamping.services import StampInput, reserve_stamp
    from tests.integration.api_helpers import balances, give_quota

    wapu = factory.wapu()
    give_quota(app, wapu["id"], 5)
    app.config["MAIL_SEND_ON_COMMIT"] = False
    with app.app_context(), unit_of_work():
        reserve_stamp(wapu["id"], None, data=StampInput("JOB-1", "surat_perjanjian"), now=utcnow() - timedelta(hours=1))
        queue_email("budi@example.com", "registration_rejected", reason="alasan",
                    registration=type("R", (), {"reference": "REG-X", "name": "PT X"})(),
                    contact=type("C", (), {"name": "Budi"})())
    mailbox.clear()
    with app.app_context():
        assert tasks.run_job("expire-reservations") == {"released": 1}
        assert tasks.run_job("expire-reservations") == {"released": 0}
        assert tasks.run_job("send-outbox") == {"sent": 1, "failed": 0}
        assert tasks.run_job("send-outbox") == {"sent": 0, "failed": 0}
    assert balances(app, wapu["id"])["available"] == 5 and len(mailbox.to("budi@example.com")) == 1


def test_the_nightly_ledger_check_fails_its_run_when_the_books_do_not_balance(app, factory):
    from scm.quota.models import QuotaAccount
    from tests.integration.api_helpers import give_quota

    wapu = factory.wapu(771)
    give_quota(app, wapu["id"], 10)
    with app.app_context():
        assert tasks.run_job("verify-quota") == {"mismatches": 0}
        with unit_of_work():
            db.session.execute(update(QuotaAccount).where(QuotaAccount.wapu_id == wapu["id"])
                               .values(available=QuotaAccount.available - 1))
        with pytest.raises(RuntimeError, match=r"2 mismatch\(es\)"):  # the account and its balance
            tasks.run_job("verify-quota")
        runs = db.session.execute(select(JobRun.outcome, JobRun.error).where(JobRun.name == "verify-quota")
                                  .order_by(JobRun.id)).all()
        assert [r.outcome for r in runs] == [JobOutcome.SUCCESS, JobOutcome.FAILED]
        assert "do NOT balance" in runs[1].error
        with unit_of_work():  # put the books back for the fixtures' own checks
            db.session.execute(update(QuotaAccount).where(QuotaAccount.wapu_id == wapu["id"])
                               .values(available=QuotaAccount.available + 1))


def test_every_registered_job_can_be_imported():
    pytest.importorskip("scm.billing.tasks")
    for name in tasks.JOBS:
        assert callable(tasks.job_function(name)), name


def test_schedules_in_words(app):
    with app.test_request_context(), force_locale("en"):
        words = {name: tasks.describe_schedule(tasks.job_trigger(name)) for name in tasks.JOBS}
        app.config["TASK_SWEEP_SECONDS"] = 5  # a schedule that is a setting
        assert tasks.describe_schedule(tasks.job_trigger("requeue-tasks")) == "every 5 seconds"
    assert words == {"expire-reservations": "every minute", "send-outbox": "every minute", "requeue-tasks": "every minute",
                     "draft-billing": "monthly on day 1 at 01:00 WIB", "minimum-warnings": "daily at 08:00 WIB",
                     "mark-overdue": "daily at 00:15 WIB", "dunning": "daily at 08:30 WIB", "verify-quota": "daily at 02:00 WIB",
                     "prune-records": "daily at 03:30 WIB", "contract-expiry": "daily at 07:30 WIB"}


# ------------------------------------------------------------------ the page


def _page(client, query=""):
    """The page's text, its history rows as (job, outcome), and its jobs table rows by job name."""
    response = client.get(f"/admin/jobs{query}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    history = re.findall(r'<tr data-run="\d+"><td><code>([^<]+)</code>.*?data-outcome="(\w+)"', body, re.S)
    jobs = dict(re.findall(r'<tr data-job="([^"]+)">(.*?)</tr>', body, re.S))
    return body, history, jobs


def test_the_jobs_page_shows_schedules_last_runs_leases_and_a_filtered_history(app, login_as, sample_jobs):
    with app.app_context():
        tasks.run_job("send-outbox")
        with pytest.raises(RuntimeError):
            tasks.run_job("test-fail")
    hold(app, "expire-reservations", "other-host:5:live", utcnow() + timedelta(minutes=10))
    with app.app_context():
        assert tasks.run_job("expire-reservations") is None
    admin = login_as(Role.DIST_ADMIN)

    body, history, jobs = _page(admin)
    assert history == [("expire-reservations", "skipped"), ("test-fail", "failed"), ("send-outbox", "success")]
    assert 'href="/admin/jobs"' in body, "the menu links the page"
    assert set(jobs) == set(tasks.JOBS)
    outbox = jobs["send-outbox"]
    assert 'data-outcome="success"' in outbox and " WIB" in outbox and 'data-lease="free"' in outbox
    assert re.findall(r"<li>([^<]+)</li>", outbox) == ["sent: 0", "failed: 0"]
    assert 'data-outcome="failed"' in jobs["test-fail"] and "RuntimeError: the printer is on fire" in jobs["test-fail"]
    expiring = jobs["expire-reservations"]  # only skipped so far: no last run, but a lease held
    assert "data-outcome" not in expiring and 'data-lease="held"' in expiring and "other-host:5:live" in expiring

    assert _page(admin, "?job=send-outbox")[1] == [("send-outbox", "success")]
    assert _page(admin, "?outcome=skipped")[1] == [("expire-reservations", "skipped")]
    assert _page(admin, "?job=send-outbox&outcome=failed")[1] == []


@pytest.mark.parametrize("role", [Role.DIST_FIN, Role.DIST_SPV, Role.WAPU_SPV, Role.WAPU_FIN, Role.WAPU_STAFF])
def test_only_the_distributor_admin_sees_the_jobs_page(login_as, role):
    assert login_as(role).get("/admin/jobs").status_code == 403


def test_every_minute_jobs_hold_a_short_lease(app):
    from datetime import timedelta

    from scm.core.tasks import lease_for

    assert lease_for("send-outbox") == lease_for("expire-reservations") == timedelta(minutes=5)
    assert lease_for("draft-billing") == lease_for("mark-overdue") == timedelta(minutes=30)


def test_the_procfile_starts_the_web_app_the_scheduler_and_a_worker_and_ctrl_c_stops_them(app, tmp_path):
    """What `make run` does after loading the demo: honcho runs the Procfile until Ctrl+C."""
    import http.client

    from tests.fixtures import free_port
    from tests.integration.api_helpers import wait_for_port

    port = free_port()
    env = {**cli_env(app, tmp_path), "PATH": f"{FLASK.parent}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1",
           "FLASK_APP": "wsgi.py", "SCM_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.sqlite3'}"}
    out = tmp_path / "honcho.out"
    with open(out, "w") as stdout:
        proc = subprocess.Popen([str(FLASK.with_name("honcho")), "start", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for_port(port, timeout=60, alive=lambda: proc.poll() is None), out.read_text()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()
        deadline = time.monotonic() + 60
        while not ("Scheduler started" in out.read_text() and "Queue worker" in out.read_text()) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Scheduler started" in out.read_text() and "Queue worker" in out.read_text(), out.read_text()
        proc.send_signal(signal.SIGINT)  # Ctrl+C
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with socket.socket() as probe:  # the web app is gone with honcho
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    text = out.read_text()
    assert "web.1" in text and "scheduler.1" in text and "worker.1" in text, text
    assert "worker.1 stopped" in text, text
    assert re.search(r"scheduler\.1 +\| .*Scheduler started", text) and "scheduler.1 stopped" in text, text
