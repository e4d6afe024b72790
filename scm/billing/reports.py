"""Read-only views of billing: a month's overview, the rows the exports take, dashboard figures."""

from datetime import date

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import selectinload

from scm.billing.models import OPEN_STATES, Invoice, InvoiceState
from scm.billing.usage import (
    add_months,
    check_month,
    month_bounds,
    month_of,
    parse_month,
    shortfall_report,
    usage_by_month,
)
from scm.core.database import wib_month
from scm.extensions import db
from scm.quota.models import EntryKind, QuotaEntry
from scm.registration.models import Wapu, WapuStatus
from scm.stamping.models import Stamp, StampState
from scm.stamping.summary import stamped_per_month


def month_invoices(period: date, *, wapu_ids=None, lines=True) -> list[Invoice]:
    """The month's invoices in WAPU order (only those of ``wapu_ids``), lines loaded unless ``lines`` is False."""
    query = (select(Invoice).join(Wapu, Invoice.wapu_id == Wapu.id).where(Invoice.period == period)
             .options(selectinload(Invoice.wapu)).order_by(Wapu.code))
    if lines:
        query = query.options(selectinload(Invoice.lines))
    if wapu_ids is not None:
        query = query.where(Invoice.wapu_id.in_(list(wapu_ids)))
    return list(db.session.execute(query).scalars())


def month_wapus(period: date):
    """SELECT (id, code) of the WAPUs the month page lists (active, or with an invoice), in code order:
    the page pages it."""
    invoiced = select(Invoice.wapu_id).where(Invoice.period == period)
    return (select(Wapu.id, Wapu.code).where(or_(Wapu.status == WapuStatus.ACTIVE, Wapu.id.in_(invoiced)))
            .order_by(Wapu.code))


def month_totals(period: date) -> dict:
    """The month's drafts and issued invoices: how many and their total, in one query."""
    totals = dict(drafts=0, drafts_total=0, issued=0, issued_total=0)
    is_draft = Invoice.state == InvoiceState.DRAFT
    for draft, count, total in db.session.execute(
        select(is_draft, func.count(), func.coalesce(func.sum(Invoice.total_due), 0))
        .where(Invoice.period == period).group_by(is_draft)
    ).all():
        prefix = "drafts" if draft else "issued"
        totals[prefix], totals[f"{prefix}_total"] = count, int(total)
    return totals


def month_overview(period: date, today: date, *, wapu_ids=None) -> list[dict]:
    """One row per WAPU (active, or with an invoice; or only those of ``wapu_ids``): use against the
    minimum and its invoice."""
    invoices = {invoice.wapu_id: invoice for invoice in month_invoices(period, wapu_ids=wapu_ids, lines=False)}
    rows = {}
    for check in check_month(period, today, wapu_ids=wapu_ids):
        rows[check.wapu.id] = dict(wapu_id=check.wapu.id, wapu_code=check.wapu.code, wapu_name=check.wapu.name,
                                   npwp=check.wapu.npwp, used=check.used, minimum=check.minimum,
                                   shortfall=check.shortfall, projected=check.projected)
    for wapu_id, invoice in invoices.items():
        if wapu_id not in rows or not invoice.is_draft:  # an issued invoice shows what it billed
            rows[wapu_id] = dict(wapu_id=wapu_id, wapu_code=invoice.wapu.code, wapu_name=invoice.buyer_name,
                                 npwp=invoice.buyer_npwp, used=invoice.used, minimum=invoice.minimum,
                                 shortfall=invoice.shortfall, projected=invoice.used)
    result = []
    for row in sorted(rows.values(), key=lambda r: r["wapu_code"]):
        invoice = invoices.get(row["wapu_id"])
        row.update(invoice=invoice, amount=invoice.total_due if invoice else 0,
                   invoice_number=invoice.number if invoice else None,
                   status=str(invoice.state.label) if invoice else "", due_date=invoice.due_date if invoice else None)
        result.append(row)
    return result


def stamp_rows(period: date, yield_per: int = 5000):
    """Every stamp of the month for the workbook, streamed: (code, serial, stamped_at, type, number, source)."""
    start, end = month_bounds(period)
    query = (
        select(Wapu.code, Stamp.serial, Stamp.stamped_at, Stamp.document_type, Stamp.document_number, Stamp.source)
        .join(Wapu, Stamp.wapu_id == Wapu.id)
        .where(Stamp.state == StampState.STAMPED, Stamp.stamped_at >= start, Stamp.stamped_at < end)
        .order_by(Wapu.code, Stamp.stamped_at, Stamp.id)
        .execution_options(yield_per=yield_per)
    )
    for row in db.session.execute(query):
        yield tuple(row)


def months_back(today: date, count: int) -> list[date]:
    """The ``count`` months ending with this one, oldest first."""
    current = month_of(today)
    return [add_months(current, offset) for offset in range(1 - count, 1)]


def wapu_dashboard(wapu: Wapu, today: date) -> dict:
    """A WAPU's billing picture: this month against the minimum, 12 months of use, open invoices
    (the quota balance is already on the dashboard, from the quota panel)."""
    months = months_back(today, 12)
    counts = usage_by_month(months[0], months[-1], wapu_id=wapu.id)
    check = next(iter(check_month(month_of(today), today, wapu_id=wapu.id)), None)
    open_invoices = list(db.session.execute(
        select(Invoice).where(Invoice.wapu_id == wapu.id, Invoice.state.in_(OPEN_STATES)).order_by(Invoice.period)
    ).scalars())
    return dict(
        months=[(month, counts.get((wapu.id, month), 0)) for month in months],
        check=check, open_invoices=open_invoices,
        open_total=sum(invoice.balance for invoice in open_invoices),
    )


DASHBOARD_BELOW, DASHBOARD_TOP = 10, 5  # WAPUs the dashboard shows; the shortfall report lists them all


def distributor_dashboard(today: date) -> dict:
    """This month's use against the minimum of the WAPUs furthest below it (``below``, of
    ``below_count``) and of the highest users (``top``): ``checks`` is both, for the table; quota
    issued against consumed per month; receivables."""
    months = months_back(today, 12)
    first, _ = month_bounds(months[0])
    issued_month = wib_month(QuotaEntry.created_at)
    issued = dict(db.session.execute(
        select(issued_month, func.sum(QuotaEntry.quantity))
        .where(QuotaEntry.kind == EntryKind.ISSUE, QuotaEntry.created_at >= first).group_by(issued_month)
    ).all())
    consumed = {parse_month(key): count
                for key, count in stamped_per_month(months[0], add_months(months[-1], 1)).items()}
    receivables = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Invoice.total_due - Invoice.paid_amount - Invoice.credited_amount), 0),
            func.coalesce(func.sum(case((Invoice.state == InvoiceState.OVERDUE, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Invoice.state == InvoiceState.OVERDUE,
                                         Invoice.total_due - Invoice.paid_amount - Invoice.credited_amount),
                                        else_=0)), 0),
        ).where(Invoice.state.in_(OPEN_STATES))
    ).one()
    checks = check_month(month_of(today), today)
    below = sorted((c for c in checks if c.minimum and c.below), key=lambda c: (c.projected - c.minimum, c.wapu.code))
    top = sorted((c for c in checks if c.projected), key=lambda c: (-c.projected, c.wapu.code))[:DASHBOARD_TOP]
    shown_below = below[:DASHBOARD_BELOW]
    listed = {c.wapu.id for c in shown_below}
    return dict(
        month=month_of(today), below=shown_below, below_count=len(below), top=top,
        checks=shown_below + [c for c in top if c.wapu.id not in listed],
        quota_months=[(month, int(issued.get(f"{month.year:04d}-{month.month:02d}", 0) or 0),
                       consumed.get(month, 0)) for month in months],
        open_count=receivables[0], open_total=int(receivables[1]), overdue_count=int(receivables[2]),
        overdue_total=int(receivables[3]),
    )


def shortfall_rows(period: date, today: date) -> list[dict]:
    """The shortfall report's rows: WAPUs below their minimum in ``period``."""
    return [dict(wapu_id=c.wapu.id, wapu_code=c.wapu.code, wapu_name=c.wapu.name, npwp=c.wapu.npwp,
                 minimum=c.minimum, used=c.used, projected=c.projected, shortfall=max(0, c.minimum - c.projected),
                 policy=c.policy) for c in shortfall_report(period, today)]


def dashboard_panel(user, today: date) -> dict:
    """The billing part of a user's dashboard, with its charts (server-rendered SVG)."""
    from flask_babel import format_date
    from flask_babel import gettext as _

    from scm.auth.models import Role
    from scm.core import charts
    from scm.core.formatting import format_number

    def label(month):
        return format_date(month, "MMM yy")

    if user.is_distributor:
        data = distributor_dashboard(today)

        def use_chart(checks, title, zeros=False):
            return charts.horizontal_bars(
                [(f"{c.wapu.code} {c.wapu.name}", c.projected, f"{c.wapu.code} {c.wapu.name}") for c in checks],
                minimum=max((c.minimum for c in checks), default=None) or None, title=title, fmt=format_number,
                zeros=zeros)

        data["below_chart"] = use_chart(data["below"], _("WAPUs below the minimum"), zeros=True)
        data["top_chart"] = use_chart(data["top"], _("Highest use"))
        data["quota_chart"] = charts.paired_bars(
            [(label(month), issued, consumed) for month, issued, consumed in data["quota_months"]],
            series=(_("Quota issued"), _("Consumed")), title=_("Quota issued and consumed per month"),
            fmt=format_number)
        return {"billing": data}
    if user.role not in (Role.WAPU_SPV, Role.WAPU_FIN, Role.WAPU_STAFF) or user.wapu is None:
        return {}
    data = wapu_dashboard(user.wapu, today)
    check = data["check"]
    minimum = check.minimum if check else 0
    data["gauge"] = charts.progress_gauge(check.used if check else 0, minimum,
                                          projected=check.projected if check else None,
                                          title=_("Use this month against the minimum"), fmt=format_number)
    data["months_chart"] = charts.monthly_bars([(label(m), count) for m, count in data["months"]],
                                               minimum=minimum or None, title=_("e-Meterai used per month"),
                                               fmt=format_number)
    data["show_invoices"] = user.role in (Role.WAPU_SPV, Role.WAPU_FIN)
    return {"billing": data}


def invoiced_months(pairs: set) -> set:
    """Those (wapu_id, month) pairs that have an issued invoice (one query): stamps reported for them
    now are billed as late usage on the next invoice."""
    if not pairs:
        return set()
    wapu_ids, months = {w for w, _ in pairs}, {m for _, m in pairs}
    found = db.session.execute(
        select(Invoice.wapu_id, Invoice.period)
        .where(Invoice.wapu_id.in_(wapu_ids), Invoice.period.in_(months), Invoice.state != InvoiceState.DRAFT)
    ).all()
    return {(wapu_id, period) for wapu_id, period in found} & pairs
