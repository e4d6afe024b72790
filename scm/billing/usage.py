"""Counting use per WIB calendar month, the minimum that applies, and the month-end projection.

A stamp belongs to the WIB month of its ``stamped_at``: 2026-11-30 23:30 WIB is November. The counts
come from the usage summary (``scm.stamping.summary``: stamps per WAPU, WIB day and state), so
they cost the same whatever the number of stamps.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from flask import current_app
from sqlalchemy import Row, func, select

from scm.billing.models import ContractTerms, FirstMonth, MinimumPolicy
from scm.core.errors import ServiceError
from scm.core.formatting import WIB
from scm.extensions import db
from scm.registration.models import Contract, Wapu, WapuStatus, contract_last_day, joined_day
from scm.stamping import summary
from scm.stamping.models import Stamp, StampState

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_of(day: date) -> date:
    """The first day of ``day``'s month (how periods are stored)."""
    return day.replace(day=1)


def add_months(month: date, count: int) -> date:
    """``month`` moved by ``count`` months (negative goes back)."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_end(month: date) -> date:
    """The last calendar day of the month."""
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def parse_month(text: str) -> date:
    """'2026-11' -> date(2026, 11, 1); a clear error otherwise."""
    from flask_babel import gettext as _

    found = _MONTH.match((text or "").strip())
    if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 2000:
        raise ServiceError(_("Give the month as YYYY-MM, for example 2026-11."), field="month", code="invalid_month")
    return date(int(found.group(1)), int(found.group(2)), 1)


def month_key(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The UTC instants where the WIB month starts and the next one starts."""
    start = datetime.combine(month, time(), WIB).astimezone(timezone.utc)
    end = datetime.combine(add_months(month, 1), time(), WIB).astimezone(timezone.utc)
    return start, end


def usage_by_wapu(month: date, *, until: datetime | None = None, wapu_id: int | None = None) -> dict[int, int]:
    """Stamped e-Meterai per WAPU in ``month`` (optionally only up to ``until``).

    Whole WIB days come from the usage summary; only when ``until`` falls inside a day are that
    day's stamps before it counted from the stamps themselves."""
    start, end = month_bounds(month)
    if until is not None:
        end = min(end, until)
    if end <= start:
        return {}
    cut = end.astimezone(WIB)
    whole_days_end = cut.date()  # the days before this one are whole
    counts = summary.stamped_by_wapu(month, whole_days_end, wapu_id=wapu_id)
    if cut.time() != time():
        tail_start = max(start, datetime.combine(whole_days_end, time(), WIB).astimezone(timezone.utc))
        query = (select(Stamp.wapu_id, func.count())
                 .where(Stamp.state == StampState.STAMPED, Stamp.stamped_at >= tail_start, Stamp.stamped_at < end)
                 .group_by(Stamp.wapu_id))
        if wapu_id is not None:
            query = query.where(Stamp.wapu_id == wapu_id)
        for wapu, count in db.session.execute(query).all():
            counts[wapu] = counts.get(wapu, 0) + count
    return counts


def usage_by_month(first: date, last: date, *, wapu_id: int | None = None) -> dict[tuple[int, date], int]:
    """Stamped e-Meterai per (WAPU, month) for the months ``first`` … ``last``, from the usage summary."""
    counts = summary.stamped_by_month(first, add_months(last, 1), wapu_id=wapu_id)
    return {(wapu, parse_month(key)): count for (wapu, key), count in counts.items()}


@dataclass(frozen=True)
class Terms:
    """The billing terms that apply to one contract in one month."""

    monthly_minimum: int
    minimum_policy: MinimumPolicy
    first_month: FirstMonth
    due_day: int


def default_terms() -> Terms:
    config = current_app.config
    return Terms(config["MONTHLY_MINIMUM"], MinimumPolicy.REPORT, FirstMonth.EXEMPT, config["PAYMENT_DUE_DAY"])


def terms_for(contract: Contract | None, month: date) -> Terms:
    """The newest terms of ``contract`` in effect in ``month`` (the defaults when none were set)."""
    return terms_of(load_terms([c.id for c in contract.wapu.contracts]) if contract else {}, contract, month)


def terms_of(loaded: dict[int, list], contract: Contract | None, month: date, contracts=None) -> Terms:
    """``terms_for`` from terms already loaded with ``load_terms`` (one query for many contracts).

    A renewal or amendment without terms of its own carries over the terms of the WAPU's latest
    earlier contract that has some (load that contract's terms too), until its own are saved.
    ``contracts``: the WAPU's contracts when ``contract`` is a row (``contract.wapu.contracts`` otherwise)."""
    if contract is None:
        return default_terms()
    rows = loaded.get(contract.id)
    if not rows:
        siblings = contract.wapu.contracts if contracts is None else contracts
        earlier = sorted((c for c in siblings if c.start_date < contract.start_date and loaded.get(c.id)),
                         key=lambda c: c.start_date)
        if earlier:
            rows = loaded[earlier[-1].id]
    return terms_in(rows or [], month)


def load_terms(contract_ids) -> dict[int, list]:
    """Every terms row of the given contracts, oldest first, in one query (rows of the columns
    ``terms_in`` reads, not objects)."""
    rows = {}
    for row in db.session.execute(
        select(ContractTerms.contract_id, ContractTerms.effective_from, ContractTerms.monthly_minimum,
               ContractTerms.minimum_policy, ContractTerms.first_month, ContractTerms.due_day)
        .where(ContractTerms.contract_id.in_(list(contract_ids)))
        .order_by(ContractTerms.effective_from, ContractTerms.id)
    ):
        rows.setdefault(row.contract_id, []).append(row)
    return rows


def terms_in(rows: list, month: date) -> Terms:
    """The last of ``rows`` (oldest first) in effect in ``month``, or the defaults."""
    applying = [row for row in rows if row.effective_from <= month]
    if not applying:
        return default_terms()
    row = applying[-1]
    return Terms(row.monthly_minimum, row.minimum_policy, row.first_month, row.due_day)


def contract_for_month(wapu: Wapu, month: date) -> Contract | None:
    """The contract that covers the month (the one in force at its end, else the last one in it):
    its terms (minimum, policy, due day) apply to the month. Prices go by day: ``price_segments``."""
    return covering_contract(wapu.contracts, month)


def covering_contract(contracts, month: date):
    """``contract_for_month`` among ``contracts`` (objects or rows with ``start_date`` and ``last_day``)."""
    last = month_end(month)
    covering = [c for c in contracts if c.start_date <= last and c.last_day >= month and c.last_day >= c.start_date]
    return max(covering, key=lambda c: c.start_date) if covering else None


def price_segments(wapu: Wapu, month: date, default_price: int) -> list[tuple[date, date, int]]:
    """The month cut where the unit price changes: ``(first day, last day, unit price)`` in day order.

    Each WIB day is priced by the contract in force on it (its unit price, else ``default_price``);
    a day without a contract (stamps reported after it ended) at the contract covering the month,
    else the default."""
    covering = contract_for_month(wapu, month)
    fallback = (covering.unit_price if covering else None) or default_price
    segments = []
    day, last = month, month_end(month)
    while day <= last:
        contract = wapu.contract_on(day)
        price = (contract.unit_price or default_price) if contract else fallback
        if segments and segments[-1][2] == price:
            segments[-1] = (segments[-1][0], day, price)
        else:
            segments.append((day, day, price))
        day += timedelta(days=1)
    return segments


def usage_in_segments(wapu_id: int, segments) -> list[int]:
    """Stamped e-Meterai of ``wapu_id`` in each segment (WIB days ``first`` … ``last``): one query."""
    if not segments:
        return []
    per_day = summary.stamped_by_day(wapu_id, segments[0][0], segments[-1][1] + timedelta(days=1))
    return [sum(count for day, count in per_day.items() if first <= day <= last) for first, last, _ in segments]


def minimum_for(contract: Contract | None, terms: Terms, month: date, joined: date | None = None,
                contracts=None) -> int:
    """The minimum that applies in ``month``: none without a contract; a partial first month per terms.

    The first month is the one the WAPU became a customer in: its contract's start, or the day it
    was approved (``joined``) when that came later (a contract signed in January, approved in
    November: November is the partial first month). ``contracts`` as for ``terms_of``."""
    if contract is None:
        return 0
    siblings = contract.wapu.contracts if contracts is None else contracts
    first = min(c.start_date for c in siblings)  # a renewal's month is no first month
    start = max(first, joined) if joined else first
    if month_of(start) != month or start.day == 1:
        return terms.monthly_minimum
    if terms.first_month == FirstMonth.EXEMPT:
        return 0
    if terms.first_month == FirstMonth.PRORATE:
        days = calendar.monthrange(month.year, month.month)[1]
        return terms.monthly_minimum * (days - start.day + 1) // days
    return terms.monthly_minimum


def projection(used: int, today: date) -> int:
    """Month-end total at the pace so far (today counts as a day gone)."""
    days = calendar.monthrange(today.year, today.month)[1]
    return used * days // today.day


@dataclass(frozen=True)
class MonthCheck:
    """One WAPU's minimum-use standing in one month; ``wapu`` is a row (id, code, name, npwp,
    created_at), not a ``Wapu``."""

    wapu: Row
    month: date
    minimum: int
    used: int
    projected: int
    policy: MinimumPolicy

    @property
    def shortfall(self) -> int:
        return max(0, self.minimum - self.used)

    @property
    def below(self) -> bool:
        return self.projected < self.minimum


@dataclass(frozen=True)
class ContractDates:
    """What the minimum check reads of a contract (loaded as columns, not as a ``Contract``)."""

    id: int
    start_date: date
    last_day: date


def contract_dates(wapu_ids) -> dict[int, list[ContractDates]]:
    """The contracts of ``wapu_ids`` per WAPU, newest start first (as ``Wapu.contracts``), in one query."""
    contracts = {}
    for row in db.session.execute(
        select(Contract.wapu_id, Contract.id, Contract.start_date, Contract.end_date, Contract.ended_from)
        .where(Contract.wapu_id.in_(list(wapu_ids))).order_by(Contract.wapu_id, Contract.start_date.desc())
    ):
        contracts.setdefault(row.wapu_id, []).append(
            ContractDates(row.id, row.start_date, contract_last_day(row.end_date, row.ended_from)))
    return contracts


def check_month(month: date, today: date, *, wapu_id: int | None = None, wapu_ids=None) -> list[MonthCheck]:
    """Every active WAPU's use against its minimum in ``month`` (or only those of ``wapu_ids``, a
    page of them); while it runs, use up to the end of ``today`` and the projection from it.

    Three queries of columns (WAPUs, their contracts, the contracts' terms) besides the counts: no
    objects are loaded, at 400 WAPUs that is most of the time of the dashboard and the reports."""
    running = month_of(today) == month
    until = datetime.combine(today + timedelta(days=1), time(), WIB).astimezone(timezone.utc) if running else None
    counts = usage_by_wapu(month, until=until, wapu_id=wapu_id)
    query = (select(Wapu.id, Wapu.code, Wapu.name, Wapu.npwp, Wapu.created_at)
             .where(Wapu.status == WapuStatus.ACTIVE).order_by(Wapu.code))
    if wapu_id is not None:
        query = query.where(Wapu.id == wapu_id)
    if wapu_ids is not None:
        query = query.where(Wapu.id.in_(list(wapu_ids)))
    wapus = db.session.execute(query).all()
    contracts = contract_dates(wapu.id for wapu in wapus) if wapus else {}
    loaded = load_terms(contract.id for listed in contracts.values() for contract in listed)
    checks = []
    for wapu in wapus:
        listed = contracts.get(wapu.id, [])
        contract = covering_contract(listed, month)
        terms = terms_of(loaded, contract, month, listed)
        used = counts.get(wapu.id, 0)
        checks.append(MonthCheck(
            wapu=wapu, month=month, minimum=minimum_for(contract, terms, month, joined_day(wapu.created_at), listed), used=used,
            projected=projection(used, today) if running else used, policy=terms.minimum_policy,
        ))
    return checks


def shortfall_report(month: date, today: date) -> list[MonthCheck]:
    """The WAPUs that used less than their minimum in ``month`` (projected if it is still running)."""
    return [check for check in check_month(month, today) if check.minimum and check.below]
