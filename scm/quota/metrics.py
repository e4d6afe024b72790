"""Quota gauges for ``/metrics``: did the latest ledger check (job or ``flask quota verify``) balance?"""

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select

from scm.core.models import JobOutcome, JobRun
from scm.extensions import db
from scm.quota.tasks import VERIFY_JOB


def verification_gauges(now):
    run = db.session.execute(
        select(JobRun).where(JobRun.name == VERIFY_JOB, JobRun.outcome.in_((JobOutcome.SUCCESS, JobOutcome.FAILED)))
        .order_by(JobRun.id.desc()).limit(1)).scalar_one_or_none()
    balanced = GaugeMetricFamily("scm_quota_books_balanced",
                                 "1 when the latest quota verification found every account equal to its ledger.")
    checked = GaugeMetricFamily("scm_quota_verified_timestamp_seconds", "When the latest quota verification ended.")
    if run is not None:  # never checked yet (a new installation): no value rather than a false alarm
        balanced.add_metric([], 1 if run.outcome == JobOutcome.SUCCESS else 0)
        checked.add_metric([], run.finished_at.timestamp())
    yield from (balanced, checked)
