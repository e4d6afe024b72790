"""Monthly billing: settings and terms, the billing run (drafts), issuing with gapless numbers.

Quantities are counted, never flagged on stamps: an invoice line bills ``quantity`` e-Meterai of
its ``usage_month``. What a month still owes is what was stamped in it less what issued lines
already billed for it (usage, late usage and true-up). That makes re-runs, refreshes and late
stamps exact: nothing is billed twice and nothing stamped is left out.
"""

import string
from collections import defaultdict
from datetime import date, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import selectinload

from scm.auth.models import Role
from scm.billing.models import (
    QUANTITY_LINES,
    BillingRun,
    BillingSettings,
    ContractTerms,
    FirstMonth,
    Invoice,
    InvoiceLine,
    InvoiceState,
    MinimumPolicy,
)
from scm.billing.pricing import price_invoice
from scm.billing.usage import (
    add_months,
    contract_for_month,
    load_terms,
    minimum_for,
    month_key,
    month_of,
    price_segments,
    terms_for,
    terms_of,
    usage_by_month,
    usage_by_wapu,
    usage_in_segments,
)
from scm.core.database import next_number, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import format_day, format_month, format_rupiah, today_wib
from scm.core.services import notify, record_audit, register_audit_action, register_notification
from scm.extensions import db
from scm.registration.models import Contract, Wapu, WapuStatus
from scm.registration.validators import clean_npwp

register_audit_action("billing.settings_saved", _l("Billing settings saved"),
                      _l("unit price %(unit_price)s, service fee %(fee)s"), unit_price="rupiah", fee="rupiah")
register_audit_action("billing.terms_saved", _l("Billing terms saved"),
                      _l("from %(month)s: minimum %(minimum)s, %(policy)s; first month: %(first_month)s; "
                         "due on day %(due_day)s"), month="month", policy=MinimumPolicy, first_month=FirstMonth)
register_audit_action("billing.run", _l("Billing run"),
                      _l("%(month)s: %(created)s drafts created, %(refreshed)s refreshed, %(unchanged)s unchanged"),
                      month="month")
register_audit_action("invoice.issued", _l("Invoice issued"), _l("%(wapu)s, total due %(total)s"), total="rupiah")
register_notification("invoice_issued", _l("Invoice %(number)s for %(period)s was issued: %(amount)s, due on %(due)s."))

NUMBER_FIELDS = {"year", "month", "seq"}
DEFAULT_INVOICE_FORMAT = "INV/{year}/{month:02d}/{seq:05d}"
DEFAULT_CREDIT_NOTE_FORMAT = "NK/{year}/{month:02d}/{seq:05d}"


# --- settings and terms -------------------------------------------------------------------------

def current_settings() -> BillingSettings:
    """The newest saved billing settings, or (before the first save) the configured defaults."""
    row = db.session.execute(select(BillingSettings).order_by(BillingSettings.id.desc()).limit(1)).scalar()
    if row is not None:
        return row
    config = current_app.config
    return BillingSettings(
        distributor_name=config["DISTRIBUTOR_NAME"], distributor_address=config["DISTRIBUTOR_ADDRESS"],
        distributor_npwp=config["DISTRIBUTOR_NPWP"], bank_name=config["DISTRIBUTOR_BANK_NAME"],
        bank_account_number=config["DISTRIBUTOR_BANK_ACCOUNT"], bank_account_name=config["DISTRIBUTOR_BANK_HOLDER"],
        unit_price=config["DEFAULT_UNIT_PRICE"], service_fee_per_unit=0, ppn_rate=12, ppn_dpp_other_value=True,
        invoice_number_format=DEFAULT_INVOICE_FORMAT, credit_note_number_format=DEFAULT_CREDIT_NOTE_FORMAT,
        warning_days="15,25",
    )


def finance_contacts(wapu: Wapu):
    """Who hears about a WAPU's invoices and minimum: its SPV and FIN users."""
    return [user for user in wapu.users if user.role in (Role.WAPU_SPV, Role.WAPU_FIN)]


def format_document_number(pattern: str, day: date, seq: int) -> str:
    """``INV/{year}/{month:02d}/{seq:05d}`` for the issue ``day`` and sequence number."""
    return pattern.format(year=day.year, month=day.month, seq=seq)


def _clean_number_format(pattern: str, field: str) -> str:
    pattern = (pattern or "").strip()
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
        format_document_number(pattern, date(2026, 11, 1), 1)
    except (ValueError, KeyError, IndexError, TypeError):
        names = None
    if not names or not names <= NUMBER_FIELDS or not {"year", "seq"} <= names or len(pattern) > 60:
        raise ServiceError(_l("Use {year}, {month} and {seq}, e.g. INV/{year}/{month:02d}/{seq:05d}; "
                              "{year} and {seq} are required."), field=field)
    return pattern


def _clean_warning_days(text: str) -> str:
    try:
        days = sorted({int(part) for part in (text or "").replace(" ", "").split(",") if part})
    except ValueError:
        days = None
    if not days or any(not 1 <= day <= 28 for day in days):
        raise ServiceError(_l("Give days of the month from 1 to 28, separated by commas (e.g. 15,25)."),
                           field="warning_days")
    return ",".join(str(day) for day in days)


def save_settings(actor, *, distributor_name, distributor_address, distributor_npwp, bank_name,
                  bank_account_number, bank_account_name, unit_price, service_fee_per_unit, ppn_rate,
                  ppn_dpp_other_value, invoice_number_format, credit_note_number_format, warning_days):
    """Save a new version of the billing settings (the old ones stay as history)."""
    for field, value in (("distributor_name", distributor_name), ("distributor_address", distributor_address),
                         ("bank_name", bank_name), ("bank_account_number", bank_account_number),
                         ("bank_account_name", bank_account_name)):
        if not (value or "").strip():
            raise ServiceError(_l("This field is required."), field=field)
    if not 1 <= unit_price <= 10_000_000:
        raise ServiceError(_l("The unit price must be between Rp1 and Rp10.000.000."), field="unit_price")
    if not 0 <= service_fee_per_unit <= 10_000_000:
        raise ServiceError(_l("The service fee must be between Rp0 and Rp10.000.000."), field="service_fee_per_unit")
    if not 0 <= ppn_rate <= 100:
        raise ServiceError(_l("The PPN rate is a percentage from 0 to 100."), field="ppn_rate")
    row = BillingSettings(
        changed_by_id=actor.id, distributor_name=distributor_name.strip(),
        distributor_address=distributor_address.strip(), distributor_npwp=clean_npwp(distributor_npwp, "distributor_npwp"),
        bank_name=bank_name.strip(), bank_account_number=bank_account_number.strip(),
        bank_account_name=bank_account_name.strip(), unit_price=unit_price, service_fee_per_unit=service_fee_per_unit,
        ppn_rate=ppn_rate, ppn_dpp_other_value=bool(ppn_dpp_other_value),
        invoice_number_format=_clean_number_format(invoice_number_format, "invoice_number_format"),
        credit_note_number_format=_clean_number_format(credit_note_number_format, "credit_note_number_format"),
        warning_days=_clean_warning_days(warning_days),
    )
    db.session.add(row)
    db.session.flush()
    record_audit(actor, "billing.settings_saved", row, f"unit price {unit_price}, fee {service_fee_per_unit}",
                 ref="", details={"unit_price": unit_price, "fee": service_fee_per_unit or 0})
    return row


def save_contract_terms(contract: Contract, actor, *, effective_from: date, monthly_minimum: int,
                        minimum_policy: str, first_month: str, due_day: int, note: str = "") -> ContractTerms:
    """Record new billing terms for a contract from a month on (history is kept)."""
    if not 0 <= monthly_minimum <= 10_000_000:
        raise ServiceError(_l("The minimum must be a whole number from 0 to 10.000.000."), field="monthly_minimum")
    if not 1 <= due_day <= 28:
        raise ServiceError(_l("The due day must be from 1 to 28."), field="due_day")
    try:
        policy, first = MinimumPolicy(minimum_policy), FirstMonth(first_month)
    except ValueError:
        raise ServiceError(_l("Choose one of the listed options."), field="minimum_policy") from None
    row = ContractTerms(
        contract_id=contract.id, effective_from=month_of(effective_from), monthly_minimum=monthly_minimum,
        minimum_policy=policy, first_month=first, due_day=due_day, note=(note or "").strip(), changed_by_id=actor.id,
    )
    db.session.add(row)
    db.session.flush()
    record_audit(actor, "billing.terms_saved", contract,
                 f"from {month_key(row.effective_from)}: minimum {monthly_minimum}, {policy.value}, "
                 f"first month {first.value}, due day {due_day}",
                 details={"month": month_key(row.effective_from), "minimum": monthly_minimum, "policy": policy.value,
                          "first_month": first.value, "due_day": due_day})
    return row


def terms_history(contract: Contract) -> list[ContractTerms]:
    return list(db.session.execute(
        select(ContractTerms).where(ContractTerms.contract_id == contract.id)
        .order_by(ContractTerms.effective_from.desc(), ContractTerms.id.desc())
    ).scalars())


# --- what is still to bill ----------------------------------------------------------------------

def billed_quantities(first: date, last: date, *, wapu_id=None) -> dict[tuple[int, date], int]:
    """e-Meterai already billed per (WAPU, usage month) by issued invoices, months first … last."""
    query = (
        select(Invoice.wapu_id, InvoiceLine.usage_month, func.sum(InvoiceLine.quantity))
        .join(Invoice, InvoiceLine.invoice_id == Invoice.id)
        .where(Invoice.state != InvoiceState.DRAFT, InvoiceLine.kind.in_(QUANTITY_LINES),
               InvoiceLine.usage_month >= first, InvoiceLine.usage_month <= last)
        .group_by(Invoice.wapu_id, InvoiceLine.usage_month)
    )
    if wapu_id is not None:
        query = query.where(Invoice.wapu_id == wapu_id)
    return {(wapu, month): int(total) for wapu, month, total in db.session.execute(query).all()}


def closed_months(before: date) -> list[date]:
    """Months before ``before`` that billing has run for (their late stamps go on later invoices)."""
    return list(db.session.execute(
        select(BillingRun.period).where(BillingRun.period < before).distinct().order_by(BillingRun.period)
    ).scalars())


def late_usage(period: date, *, wapu_id=None) -> dict[int, list[tuple[date, int]]]:
    """Per WAPU, stamps of closed earlier months that no issued invoice has billed yet."""
    closed = set(closed_months(period))
    if not closed:
        return {}
    first, last = min(closed), add_months(period, -1)
    counts = usage_by_month(first, last, wapu_id=wapu_id)
    billed = billed_quantities(first, last, wapu_id=wapu_id)
    drafts_query = select(Invoice.wapu_id, Invoice.period).where(
        Invoice.state == InvoiceState.DRAFT, Invoice.period >= first, Invoice.period <= last)
    if wapu_id is not None:
        drafts_query = drafts_query.where(Invoice.wapu_id == wapu_id)
    drafts = set(db.session.execute(drafts_query).all())  # those months bill themselves when issued
    late = defaultdict(list)
    for (wapu, month), count in sorted(counts.items(), key=lambda item: item[0][1]):
        owed = count - billed.get((wapu, month), 0)
        if month in closed and (wapu, month) not in drafts and owed > 0:
            late[wapu].append((month, owed))
    return dict(late)


class _Inputs:
    """Everything a billing run reads once for all WAPUs of a period."""

    def __init__(self, period: date, wapu_id=None, contract_ids=(), used=None, late=None):
        self.period = period
        self.terms = load_terms(contract_ids)
        self.settings = current_settings()
        self.used = used if used is not None else usage_by_wapu(period, wapu_id=wapu_id)
        self.billed = billed_quantities(period, period, wapu_id=wapu_id)
        self.late = late if late is not None else late_usage(period, wapu_id=wapu_id)

    def price(self, wapu: Wapu):
        """The pricing of ``wapu``'s invoice for the period, with the contract and terms behind it."""
        contract = contract_for_month(wapu, self.period)
        terms = terms_of(self.terms, contract, self.period)
        minimum = minimum_for(contract, terms, self.period, wapu.joined_on) if wapu.status == WapuStatus.ACTIVE else 0
        used = self.used.get(wapu.id, 0)
        unit_price = (contract and contract.unit_price) or self.settings.unit_price
        usage = used - self.billed.get((wapu.id, self.period), 0)
        pricing = price_invoice(
            self.period, usage=usage, late=self.late.get(wapu.id, []),
            used=used, minimum=minimum, policy=terms.minimum_policy, unit_price=unit_price,
            service_fee=self.settings.service_fee_per_unit, ppn_rate=self.settings.ppn_rate,
            dpp_other_value=self.settings.ppn_dpp_other_value, usage_parts=self._usage_parts(wapu, usage),
        )
        return contract, terms, minimum, used, unit_price, pricing


    def _usage_parts(self, wapu: Wapu, usage: int):
        """Per price, when the unit price changes within the month (None otherwise): each part
        billed at the price of the contract in force on the day of its stamps. Anything already
        billed for the month is taken off the earliest parts first."""
        if usage <= 0:
            return None
        segments = price_segments(wapu, self.period, self.settings.unit_price)
        if len(segments) < 2:
            return None
        counts = usage_in_segments(wapu.id, segments)
        billed = sum(counts) - usage
        parts = []
        for count, (_first, _last, price) in zip(counts, segments, strict=True):
            taken = min(count, max(billed, 0))
            billed -= taken
            parts.append((count - taken, price))
        return parts


def _figures(inputs: _Inputs, wapu: Wapu):
    """A draft's current figures: (column values, pricing)."""
    contract, terms, minimum, used, unit_price, pricing = inputs.price(wapu)
    settings = inputs.settings
    values = dict(
        contract_id=contract.id if contract else None, contract_number=contract.number if contract else "",
        seller_name=settings.distributor_name, seller_address=settings.distributor_address,
        seller_npwp=settings.distributor_npwp, bank_name=settings.bank_name,
        bank_account_number=settings.bank_account_number, bank_account_name=settings.bank_account_name,
        buyer_name=wapu.name, buyer_address=wapu.address, buyer_npwp=wapu.npwp,
        used=used, minimum=minimum, shortfall=max(0, minimum - used), minimum_policy=terms.minimum_policy,
        unit_price=unit_price, subtotal=pricing.subtotal, ppn_rate=pricing.ppn_rate, ppn_base=pricing.ppn_base,
        ppn_amount=pricing.ppn_amount, total_due=pricing.total_due,
    )
    return values, pricing


def _fill(invoice: Invoice, inputs: _Inputs, wapu: Wapu) -> tuple[bool, bool]:
    """Write the current figures into a draft: (anything to bill?, did anything change?)."""
    values, pricing = _figures(inputs, wapu)
    new_lines = [(line.kind, line.usage_month, line.quantity, line.unit_price) for line in pricing.lines]
    old_lines = [(line.kind, line.usage_month, line.quantity, line.unit_price) for line in invoice.lines]
    changed = new_lines != old_lines or any(getattr(invoice, key) != value for key, value in values.items())
    for key, value in values.items():
        setattr(invoice, key, value)
    if new_lines != old_lines:
        invoice.lines.clear()
        for position, line in enumerate(pricing.lines, start=1):
            invoice.lines.append(InvoiceLine(position=position, kind=line.kind, usage_month=line.usage_month,
                                             quantity=line.quantity, unit_price=line.unit_price, amount=line.amount))
    if changed:
        invoice.updated_at = utcnow()
    return bool(pricing.lines), changed


# --- the billing run ----------------------------------------------------------------------------

def _bill_one(run: BillingRun, inputs: _Inputs, wapu: Wapu, invoice: Invoice | None, new_drafts: list) -> None:
    """Create (into ``new_drafts``), refresh or leave alone one WAPU's invoice of the run's period;
    count what happened."""
    if invoice is not None and not invoice.is_draft:
        run.unchanged += 1
    elif invoice is not None:
        billable, changed = _fill(invoice, inputs, wapu)
        if not billable:
            db.session.delete(invoice)
        run.refreshed += changed
        run.unchanged += not changed
    else:
        values, pricing = _figures(inputs, wapu)
        if pricing.lines:
            new_drafts.append((dict(values, wapu_id=wapu.id, period=run.period, state=InvoiceState.DRAFT),
                               pricing.lines))
            run.created += 1


def _insert_drafts(drafts: list) -> None:
    """Write new drafts and their lines with two bulk INSERTs (Core: no ORM object per row)."""
    if not drafts:
        return
    now = utcnow()
    ids = db.session.execute(
        insert(Invoice).returning(Invoice.id, sort_by_parameter_order=True),
        [dict(values, created_at=now, updated_at=now) for values, _ in drafts],
    ).scalars().all()
    lines = [dict(invoice_id=invoice_id, position=position, kind=line.kind, usage_month=line.usage_month,
                  quantity=line.quantity, unit_price=line.unit_price, amount=line.amount)
             for invoice_id, (_, priced) in zip(ids, drafts, strict=True)
             for position, line in enumerate(priced, start=1)]
    db.session.execute(insert(InvoiceLine), lines)


def run_billing(period: date, actor=None, *, source="web", today=None, progress=None) -> BillingRun:
    """Create (or refresh) the draft invoice of every WAPU with usage or a billable shortfall.

    Running a month again creates nothing new: one invoice per WAPU and month; drafts are
    brought up to date, issued invoices are left alone.
    """
    today = today or today_wib()
    if period >= month_of(today):
        raise ServiceError(_("%(month)s has not ended yet: it can be billed from the 1st of the next month.",
                             month=format_month(period)), field="month", code="month_not_ended")
    used, late = usage_by_wapu(period), late_usage(period)
    wanted = set(used) | set(late)
    wapus = db.session.execute(
        select(Wapu).where((Wapu.status == WapuStatus.ACTIVE) | Wapu.id.in_(wanted) if wanted else
                           Wapu.status == WapuStatus.ACTIVE)
        .options(selectinload(Wapu.contracts)).order_by(Wapu.code)
    ).scalars().all()
    inputs = _Inputs(period, contract_ids={c.id for wapu in wapus for c in wapu.contracts}, used=used, late=late)
    existing = {inv.wapu_id: inv for inv in db.session.execute(
        select(Invoice).where(Invoice.period == period).options(selectinload(Invoice.lines))).scalars()}
    run = BillingRun(period=period, source=source, actor_id=getattr(actor, "id", None), created=0, refreshed=0,
                     unchanged=0)
    new_drafts = []
    with db.session.no_autoflush:  # one flush at the end: the changes go out in batches
        for done, wapu in enumerate(wapus, start=1):
            _bill_one(run, inputs, wapu, existing.get(wapu.id), new_drafts)
            if progress:
                progress(done, len(wapus))
    db.session.flush()
    _insert_drafts(new_drafts)
    run.finished_at = utcnow()
    db.session.add(run)
    db.session.flush()
    record_audit(actor, "billing.run", run, f"{month_key(period)} ({source}): {run.created} created, "
                 f"{run.refreshed} refreshed, {run.unchanged} unchanged", actor_label=None if actor else source,
                 details={"month": month_key(period), "created": run.created, "refreshed": run.refreshed,
                          "unchanged": run.unchanged})
    return run


# --- issuing ------------------------------------------------------------------------------------

LATE_ISSUE_DAYS = 14


def _due_date(period: date, terms, issued: date) -> date:
    """The terms' day of the month after the period; an invoice issued after that day falls due
    ``LATE_ISSUE_DAYS`` after its issue date (the invoice page says so: ``issued_late``)."""
    due = add_months(period, 1).replace(day=terms.due_day)
    return due if due >= issued else issued + timedelta(days=LATE_ISSUE_DAYS)


def issued_late(invoice) -> bool:
    """Whether ``invoice`` was issued after its terms' due day, so that it falls due 14 days after issue."""
    if invoice.issue_date is None:
        return False
    usual = add_months(invoice.period, 1).replace(day=terms_for(invoice.contract, invoice.period).due_day)
    return invoice.issue_date > usual


def _issue_one(invoice_id: int, actor, today: date, seq: int) -> Invoice:
    actor_id = getattr(actor, "id", None)  # read first: a stale actor reloads, and that autoflushes
    claimed = db.session.execute(
        update(Invoice).where(Invoice.id == invoice_id, Invoice.state == InvoiceState.DRAFT)
        .values(updated_at=utcnow())
    ).rowcount
    if not claimed:
        raise ServiceError(_("This invoice has already been issued."), code="already_issued")
    invoice = db.session.execute(
        select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True)
    ).scalar_one()
    inputs = _Inputs(invoice.period, wapu_id=invoice.wapu_id, contract_ids=[c.id for c in invoice.wapu.contracts])
    settings = inputs.settings
    if not all((settings.distributor_npwp, settings.bank_name, settings.bank_account_number, settings.bank_account_name)):
        raise ServiceError(_("Complete the billing settings first: the distributor's NPWP and bank account "
                             "appear on every invoice."), code="settings_incomplete")
    if not _fill(invoice, inputs, invoice.wapu)[0]:
        raise ServiceError(_("Nothing is left to bill on this draft: run the month's billing again."),
                           code="nothing_to_bill")
    db.session.flush()
    invoice.number = format_document_number(inputs.settings.invoice_number_format, today, seq)
    invoice.issue_date = today
    invoice.due_date = _due_date(invoice.period, terms_of(inputs.terms, invoice.contract, invoice.period), today)
    invoice.state = InvoiceState.ISSUED
    invoice.issued_at = utcnow()
    invoice.issued_by_id = actor_id
    db.session.flush()
    record_audit(actor, "invoice.issued", invoice, f"{invoice.number}: {invoice.total_due}",
                 details={"total": invoice.total_due, "wapu": invoice.wapu.code})
    notify(finance_contacts(invoice.wapu), "invoice_issued", f"/billing/invoices/{invoice.id}", number=invoice.number,
           period=month_key(invoice.period), amount=format_rupiah(invoice.total_due), due=format_day(invoice.due_date))
    return invoice


def issue_invoice(invoice_id: int, actor, *, today=None) -> Invoice:
    """Issue one draft: refresh its figures and give it the next gapless number, in one transaction.

    The year's counter row is locked first, so issuing is serialised: two people issuing at the
    same time get consecutive numbers, and a refused issue gives its number back on rollback.
    """
    today = today or today_wib()
    return _issue_one(invoice_id, actor, today, next_number(f"invoice:{today.year}"))


def draft_ids(period: date) -> list[int]:
    """The ids of ``period``'s drafts, in WAPU order (the order they are issued in)."""
    return db.session.execute(
        select(Invoice.id).join(Wapu, Invoice.wapu_id == Wapu.id)
        .where(Invoice.period == period, Invoice.state == InvoiceState.DRAFT).order_by(Wapu.code)
    ).scalars().all()


def issue_draft(invoice_id: int, actor, today: date) -> Invoice | None:
    """Issue one draft of a month's run; a draft with nothing left to bill is removed (None)."""
    try:
        with db.session.begin_nested():  # a refusal rolls back to here, number included
            return _issue_one(invoice_id, actor, today, next_number(f"invoice:{today.year}"))
    except ServiceError as error:
        if error.code != "nothing_to_bill":
            raise
        db.session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id))
        db.session.execute(delete(Invoice).where(Invoice.id == invoice_id))
        return None


def issue_drafts(period: date, actor, *, today=None) -> list[Invoice]:
    """Issue every draft of ``period`` (in WAPU order); drafts with nothing left are removed."""
    today = today or today_wib()
    issued = [issue_draft(invoice_id, actor, today) for invoice_id in draft_ids(period)]
    return [invoice for invoice in issued if invoice is not None]
