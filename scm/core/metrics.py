"""Prometheus metrics at ``/metrics`` (prometheus-client), closed to everyone but the configured scrapers.

Two kinds:
- counters and histograms kept by the web processes (requests by endpoint and status, their
  latency, API answers by machine code). Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` (an
  empty folder; ``gunicorn.conf.py`` clears it at start and reaps dead workers) so that every
  worker's counts add up in one scrape;
- gauges read from the database at scrape time, which every node agrees on: the features
  register them with :func:`register_gauges` (open reservations, outbox, job runs and leases,
  the last ledger check).
"""

import ipaddress
import logging
import os
import time

from flask import abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from scm.core.database import utcnow
from scm.core.models import JobLock, JobOutcome, JobRun, OutboxEmail, OutboxState
from scm.extensions import db

log = logging.getLogger(__name__)
disable_created_metrics()  # no *_created series: they double the output and nobody graphs them

REQUESTS = Counter("scm_http_requests_total", "HTTP requests answered, by endpoint and status.",
                   ["method", "endpoint", "status"])
LATENCY = Histogram("scm_http_request_duration_seconds", "Time to answer an HTTP request.", ["method", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
API_ANSWERS = Counter("scm_api_responses_total", "Stamping API answers by machine code (ok for a success).",
                      ["code"])

# name -> function(session, now) yielding metric families; registered by the features' init_app.
_GAUGES = {}


def register_gauges(name, function):
    """Add ``function(now)``, yielding prometheus metric families read from the database, to every scrape."""
    _GAUGES[name] = function


class _DatabaseGauges:
    """The registered database gauges, plus ``scm_database_up`` (0 when the database did not answer)."""

    def collect(self):
        now = utcnow()
        families = []
        up = 1
        try:
            for function in _GAUGES.values():
                families.extend(function(now))
        except Exception:  # the scrape still answers, saying the database is down
            log.exception("metrics: the database gauges could not be read")
            db.session.rollback()
            families, up = [], 0
        finally:
            db.session.remove()
        up_gauge = GaugeMetricFamily("scm_database_up", "1 when the database answered this scrape.")
        up_gauge.add_metric([], up)
        return [up_gauge, *families]


def _outbox_gauges(now):
    counts = dict(db.session.execute(
        select(OutboxEmail.state, func.count())
        .where(OutboxEmail.state.in_((OutboxState.PENDING, OutboxState.SENDING, OutboxState.FAILED)))
        .group_by(OutboxEmail.state)).all())
    family = GaugeMetricFamily("scm_outbox_emails", "Email in the outbox not (yet) delivered, by state.",
                               labels=["state"])
    for state in (OutboxState.PENDING, OutboxState.SENDING, OutboxState.FAILED):
        family.add_metric([state.value], counts.get(state, 0))
    yield family


def _job_gauges(now):
    from scm.core.tasks import JOBS, last_run_ids

    runs = {run.name: run for run in db.session.execute(
        select(JobRun).where(JobRun.id.in_(last_run_ids()))).scalars()}
    outcome = GaugeMetricFamily("scm_job_last_outcome", "1 for the outcome of each job's latest run.",
                                labels=["job", "outcome"])
    started = GaugeMetricFamily("scm_job_last_started_timestamp_seconds", "When each job's latest run started.",
                                labels=["job"])
    for name in sorted(set(JOBS) | set(runs)):
        run = runs.get(name)
        for each in (JobOutcome.RUNNING, JobOutcome.SUCCESS, JobOutcome.FAILED):
            outcome.add_metric([name, each.value], 1 if run is not None and run.outcome == each else 0)
        if run is not None:
            started.add_metric([name], run.started_at.timestamp())
    leases = GaugeMetricFamily("scm_job_lease_held", "1 for each job lease held now, labelled by its holder.",
                               labels=["job", "holder"])
    for lock in db.session.execute(select(JobLock).where(JobLock.holder.is_not(None),
                                                         JobLock.locked_until > now)).scalars():
        leases.add_metric([lock.name, lock.holder], 1)
    yield from (outcome, started, leases)


register_gauges("outbox", _outbox_gauges)
register_gauges("jobs", _job_gauges)


def _scraper_allowed():
    token = current_app.config["METRICS_TOKEN"]
    if token and request.headers.get("Authorization", "") == f"Bearer {token}":
        return True
    allowed = [n.strip() for n in current_app.config["METRICS_ALLOW"].split(",") if n.strip()]
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(network, strict=False) for network in allowed)


def metrics_view():
    if not _scraper_allowed():
        abort(404)  # the endpoint does not exist for the public
    process_registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # gunicorn: every worker's counts, from their files
        process_registry = CollectorRegistry()
        MultiProcessCollector(process_registry)
    database_registry = CollectorRegistry(auto_describe=False)
    database_registry.register(_DatabaseGauges())
    body = generate_latest(process_registry) + generate_latest(database_registry)
    return body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}


def init_metrics(app):
    app.add_url_rule("/metrics", "metrics", metrics_view)

    @app.after_request
    def count_request(response):
        endpoint = request.endpoint or "unmatched"  # a route's name, never the raw path: bounded labels
        if endpoint == "metrics":
            return response
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        if "request_started" in g:  # set by scm.core.logs, the app's first hook
            LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - g.request_started)
        if request.path.startswith("/api/"):
            API_ANSWERS.labels(g.get("api_code") or ("ok" if response.status_code < 400
                                                       else str(response.status_code))).inc()
        return response
