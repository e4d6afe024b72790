"""Stamping gauges for ``/metrics``: the reservations still open, and how old the oldest is."""

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from scm.extensions import db
from scm.stamping.models import Stamp, StampState


def reservation_gauges(now):
    count, oldest = db.session.execute(
        select(func.count(), func.min(Stamp.reserved_at)).where(Stamp.state == StampState.RESERVED)).one()
    open_reservations = GaugeMetricFamily("scm_open_reservations", "Reservations neither committed nor released.")
    open_reservations.add_metric([], count)
    age = GaugeMetricFamily("scm_oldest_reservation_age_seconds",
                            "Age of the oldest open reservation (0 when none is open).")
    age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
    yield from (open_reservations, age)
