"""Reminders (dunning) and disputes.

**The schedule.** One distributor-wide list of steps (``DunningStep``), each an offset in days from
an invoice's due date (negative: before it) with its own Indonesian subject and text. The text may
use the placeholders of :data:`PLACEHOLDERS` only; it is filled with ``str.format_map`` over plain
strings, never rendered as a template. The default schedule is created on first use.

**Sending** (:func:`send_reminders`, the daily ``dunning`` job). A step is due for an open invoice
with a balance and no open dispute when ``today >= due_date + offset``. Each invoice is handled in a
transaction of its own: the unique ``dunning_sent`` (invoice, step) row and the queued mail are
written together, so a re-run, a second scheduler or a run killed half-way never sends a step twice.
When several steps are due at once (the job did not run for a while, or a dispute just ended) only
the latest is sent and the earlier ones are recorded as skipped: a customer never gets a pile of
mails on one morning. A step is never sent after a later one has been.

**Disputes** (``InvoiceDispute``): ``DIST_FIN`` opens one with a reason, which pauses the reminders,
and resolves it with a note; the invoice's state is not touched.
"""

import string
from datetime import date, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from scm.billing.models import (
    OPEN_STATES,
    DunningOutcome,
    DunningSent,
    DunningStep,
    Invoice,
    InvoiceDispute,
)
from scm.billing.services import finance_contacts
from scm.core.database import next_number, unit_of_work, utcnow
from scm.core.errors import ServiceError
from scm.core.formatting import format_day, format_rupiah, today_wib
from scm.core.services import queue_email, record_audit, register_audit_action
from scm.extensions import db

register_audit_action("dunning.step_saved", _l("Reminder step saved"),
                      _l("%(name)s, %(offset)s days from the due date"), offset="signed")
register_audit_action("dunning.step_removed", _l("Reminder step removed"), _l("%(name)s"))
register_audit_action("invoice.reminder_sent", _l("Reminder sent"), _l("%(step)s to %(to)s"))
register_audit_action("invoice.dispute_opened", _l("Invoice disputed"), None)
register_audit_action("invoice.dispute_resolved", _l("Dispute resolved"), None)

PLACEHOLDERS = {
    "nomor_faktur": _l("the invoice number"),
    "jumlah": _l("the invoice's total due"),
    "jatuh_tempo": _l("the due date"),
    "sisa_tagihan": _l("the balance still to pay"),
    "nama_wapu": _l("the WAPU's name"),
}
MAX_OFFSET = 365
MAX_TEXT = 5000
MAX_REASON = 1000

DEFAULT_STEPS = (
    ("Pengingat ramah", -7, "Pengingat: faktur {nomor_faktur} jatuh tempo {jatuh_tempo}",
     "Yth. Bagian Keuangan {nama_wapu},\n\n"
     "Kami mengingatkan bahwa faktur {nomor_faktur} sebesar {jumlah} akan jatuh tempo pada {jatuh_tempo}. "
     "Sisa tagihan saat ini {sisa_tagihan}.\n\n"
     "Apabila pembayaran sudah dilakukan, mohon abaikan pesan ini. Terima kasih atas kerja samanya."),
    ("Pemberitahuan pertama", 1, "Faktur {nomor_faktur} telah jatuh tempo",
     "Yth. Bagian Keuangan {nama_wapu},\n\n"
     "Faktur {nomor_faktur} sebesar {jumlah} telah jatuh tempo pada {jatuh_tempo} dan sisa tagihan "
     "{sisa_tagihan} belum kami terima.\n\n"
     "Mohon segera melakukan pembayaran. Apabila pembayaran sudah dilakukan, mohon abaikan pesan ini."),
    ("Pemberitahuan kedua", 14, "Pemberitahuan kedua: faktur {nomor_faktur} belum dibayar",
     "Yth. Bagian Keuangan {nama_wapu},\n\n"
     "Hingga hari ini faktur {nomor_faktur} yang jatuh tempo pada {jatuh_tempo} masih menyisakan tagihan "
     "{sisa_tagihan}.\n\n"
     "Mohon pembayaran dilakukan dalam waktu dekat atau hubungi kami bila ada yang perlu dibicarakan."),
    ("Pemberitahuan terakhir", 30, "Pemberitahuan terakhir: faktur {nomor_faktur}",
     "Yth. Bagian Keuangan {nama_wapu},\n\n"
     "Ini adalah pemberitahuan terakhir untuk faktur {nomor_faktur} sebesar {jumlah} yang jatuh tempo "
     "pada {jatuh_tempo}. Sisa tagihan {sisa_tagihan} belum kami terima.\n\n"
     "Mohon segera melunasi tagihan ini agar layanan e-Meterai tetap berjalan tanpa gangguan."),
)


# --------------------------------------------------------------------------- the schedule


def schedule() -> list[DunningStep]:
    """The active steps, earliest first; the default schedule is created the first time it is asked
    for (once ever: a counter row serialises two first callers)."""
    if db.session.execute(select(func.count()).select_from(DunningStep)).scalar() == 0:
        if next_number("dunning:default-schedule") == 1:
            for name, offset, subject, body in DEFAULT_STEPS:
                db.session.add(DunningStep(name=name, offset_days=offset, subject=subject, body=body, active=True))
            db.session.flush()
    return list(db.session.execute(
        select(DunningStep).where(DunningStep.active.is_(True)).order_by(DunningStep.offset_days, DunningStep.id)
    ).scalars())


def check_text(text: str, field: str) -> str:
    """``text`` if every ``{...}`` in it is one of the placeholders (``{{`` and ``}}`` are braces);
    a field error otherwise."""
    known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        raise ServiceError(_l("Unbalanced braces: write {{ and }} for a brace. Placeholders: %(known)s.",
                              known=known), field=field) from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise ServiceError(_l("Unknown placeholder {%(name)s}. Use only %(known)s.", name=name, known=known),
                               field=field)
    return text


def _clean_step(name, offset_days, subject, body) -> dict:
    name, subject = (name or "").strip(), " ".join((subject or "").split())
    body = (body or "").replace("\r\n", "\n").strip()
    if not name or len(name) > 100:
        raise ServiceError(_l("Give the step a name (at most 100 characters)."), field="name")
    if offset_days is None or not -MAX_OFFSET <= offset_days <= MAX_OFFSET:
        raise ServiceError(_l("The offset must be between -365 and 365 days."), field="offset_days")
    if not subject or len(subject) > 200:
        raise ServiceError(_l("Give the subject (at most 200 characters)."), field="subject")
    if not body or len(body) > MAX_TEXT:
        raise ServiceError(_l("Give the text of the mail (at most 5,000 characters)."), field="body")
    return {"name": name, "offset_days": offset_days, "subject": check_text(subject, "subject"),
            "body": check_text(body, "body")}


def save_step(actor, step_id=None, *, name, offset_days, subject, body) -> DunningStep:
    """Add a step (``step_id`` None) or change one; audited."""
    values = _clean_step(name, offset_days, subject, body)
    schedule()
    clash = select(DunningStep.id).where(DunningStep.active.is_(True), DunningStep.offset_days == values["offset_days"])
    if step_id is not None:
        clash = clash.where(DunningStep.id != step_id)
    if db.session.execute(clash).first():
        raise ServiceError(_l("Another step is already sent on that day."), field="offset_days")
    if step_id is None:
        step = DunningStep(active=True, **values)
        db.session.add(step)
    else:
        step = db.session.get(DunningStep, step_id)
        if step is None or not step.active:
            raise ServiceError(_l("No such reminder step."), code="not_found")
        for key, value in values.items():
            setattr(step, key, value)
    step.changed_by_id, step.updated_at = getattr(actor, "id", None), utcnow()
    db.session.flush()
    record_audit(actor, "dunning.step_saved", step, f"{step.name}: {step.offset_days:+d} days",
                 details={"name": step.name, "offset": step.offset_days})
    return step


def remove_step(actor, step_id) -> DunningStep:
    """Take a step out of the schedule (kept, inactive, for the reminders it already sent)."""
    step = db.session.get(DunningStep, step_id)
    if step is None or not step.active:
        raise ServiceError(_l("No such reminder step."), code="not_found")
    step.active, step.changed_by_id, step.updated_at = False, getattr(actor, "id", None), utcnow()
    db.session.flush()
    record_audit(actor, "dunning.step_removed", step, f"{step.name} removed", details={"name": step.name})
    return step


# --------------------------------------------------------------------------- the mail


class _Values(dict):
    """The placeholders' values; an unknown name (a step saved before a placeholder was renamed)
    stays as written."""

    def __missing__(self, key):
        return "{" + key + "}"


def placeholder_values(invoice: Invoice) -> dict:
    with force_locale("id"):
        return {"nomor_faktur": invoice.number or "", "jumlah": format_rupiah(invoice.total_due),
                "jatuh_tempo": format_day(invoice.due_date) if invoice.due_date else "",
                "sisa_tagihan": format_rupiah(invoice.balance), "nama_wapu": invoice.buyer_name}


def fill(text: str, values: dict) -> str:
    """``text`` with its placeholders filled; text that no longer parses is sent as written."""
    try:
        return text.format_map(_Values(values))
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return text


# --------------------------------------------------------------------------- sending


def open_dispute_of(invoice_id: int) -> InvoiceDispute | None:
    return db.session.execute(select(InvoiceDispute).where(InvoiceDispute.open_invoice_id == invoice_id)).scalar()


def _lock_invoice(invoice_id: int) -> Invoice | None:
    """The invoice as committed now, its row locked until the transaction ends (PostgreSQL; SQLite's
    write transaction already excludes every other writer): a payment or a dispute recorded at the
    same moment waits for this reminder, or this reminder sees it."""
    return db.session.execute(select(Invoice).where(Invoice.id == invoice_id).with_for_update()
                              .execution_options(populate_existing=True)).scalar()


def step_to_send(invoice: Invoice, steps: list[DunningStep], done: dict, today: date):
    """(the step to send, the earlier due steps to record as skipped) for ``invoice`` today.
    ``done`` maps step id to its DunningSent row for this invoice."""
    due = [step for step in steps if today >= invoice.due_date + timedelta(days=step.offset_days)]
    if not due:
        return None, []
    latest = due[-1]
    if latest.id in done or any(row.step.offset_days >= latest.offset_days for row in done.values()):
        return None, []
    return latest, [step for step in due[:-1] if step.id not in done]


def remind_invoice(invoice_id: int, steps: list[DunningStep], today: date) -> int:
    """Send the invoice's due step, if any (in the caller's transaction); returns the mails queued."""
    invoice = _lock_invoice(invoice_id)
    if (invoice is None or invoice.state not in OPEN_STATES or invoice.balance <= 0 or invoice.due_date is None
            or open_dispute_of(invoice_id) is not None):
        return 0
    done = {row.step_id: row for row in db.session.execute(
        select(DunningSent).where(DunningSent.invoice_id == invoice_id)).scalars()}
    step, skipped = step_to_send(invoice, steps, done, today)
    contacts = [user for user in finance_contacts(invoice.wapu) if user.active]
    if step is None or not contacts:
        return 0
    try:
        with db.session.begin_nested():
            sent = DunningSent(invoice_id=invoice_id, step_id=step.id, outcome=DunningOutcome.SENT, day=today, mails=[])
            db.session.add(sent)
            for earlier in skipped:
                db.session.add(DunningSent(invoice_id=invoice_id, step_id=earlier.id, outcome=DunningOutcome.SKIPPED,
                                           day=today, mails=[]))
    except IntegrityError:  # another run sent it just now
        return 0
    values = placeholder_values(invoice)
    link = f"{current_app.config['PUBLIC_BASE_URL']}/billing/invoices/{invoice.id}"
    mails = []
    for user in contacts:
        message = queue_email(user.email, "dunning", subject=" ".join(fill(step.subject, values).split()),
                              body=fill(step.body, values), link=link)
        mails.append({"id": message.id, "to": user.email})
    sent.mails = mails
    db.session.flush()
    to = ", ".join(mail["to"] for mail in mails)
    record_audit(None, "invoice.reminder_sent", invoice, f"{invoice.number}: {step.name} to {to}",
                 actor_label="scheduler", details={"step": step.name, "to": to})
    return len(mails)


def send_reminders(today=None) -> dict:
    """The daily job: each invoice in its own transaction (see the module's docstring)."""
    today = today or today_wib()
    with unit_of_work():
        steps = schedule()
        if not steps:
            return {"invoices": 0, "mails": 0}
        latest_due = today - timedelta(days=steps[0].offset_days)  # due dates the earliest step has reached
        candidates = db.session.execute(
            select(Invoice.id).where(Invoice.state.in_(OPEN_STATES), Invoice.due_date.is_not(None),
                                     Invoice.due_date <= latest_due,
                                     Invoice.total_due > Invoice.paid_amount + Invoice.credited_amount,
                                     Invoice.id.not_in(select(InvoiceDispute.invoice_id).where(
                                         InvoiceDispute.open_invoice_id.is_not(None))))
            .order_by(Invoice.id)
        ).scalars().all()
    invoices = mails = 0
    for invoice_id in candidates:
        with unit_of_work():
            queued = remind_invoice(invoice_id, schedule(), today)
        invoices, mails = invoices + bool(queued), mails + queued
    return {"invoices": invoices, "mails": mails}


def timeline(invoice: Invoice) -> list[DunningSent]:
    """The reminders of an invoice, oldest first."""
    return list(db.session.execute(
        select(DunningSent).where(DunningSent.invoice_id == invoice.id).order_by(DunningSent.id)).scalars())


# --------------------------------------------------------------------------- disputes


def disputes(invoice: Invoice) -> list[InvoiceDispute]:
    return list(db.session.execute(
        select(InvoiceDispute).where(InvoiceDispute.invoice_id == invoice.id).order_by(InvoiceDispute.id.desc())
    ).scalars())


def open_dispute_ids(invoice_ids) -> set[int]:
    """Which of ``invoice_ids`` have an open dispute (for a list's badge)."""
    ids = list(invoice_ids)
    if not ids:
        return set()
    return set(db.session.execute(select(InvoiceDispute.open_invoice_id).where(
        InvoiceDispute.open_invoice_id.in_(ids))).scalars())


def open_dispute(invoice_id: int, actor, reason: str) -> InvoiceDispute:
    """Mark an issued invoice disputed: its reminders pause until the dispute is resolved."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise ServiceError(_l("Give the reason for the dispute (at most 1,000 characters)."), field="reason")
    invoice = _lock_invoice(invoice_id)
    if invoice is None or invoice.is_draft:
        raise ServiceError(_l("Only an issued invoice can be disputed."), code="invoice_not_issued")
    if open_dispute_of(invoice_id) is not None:
        raise ServiceError(_l("This invoice is already disputed."), code="already_disputed")
    dispute = InvoiceDispute(invoice_id=invoice_id, open_invoice_id=invoice_id, reason=reason,
                             opened_by_id=getattr(actor, "id", None))
    try:
        with db.session.begin_nested():
            db.session.add(dispute)
    except IntegrityError:
        raise ServiceError(_l("This invoice is already disputed."), code="already_disputed") from None
    record_audit(actor, "invoice.dispute_opened", invoice, f"{invoice.number} disputed: {reason}",
                 details={"note": reason})
    return dispute


def resolve_dispute(invoice_id: int, actor, resolution: str) -> InvoiceDispute:
    """Close the invoice's open dispute with a note; reminders resume with the step due next."""
    resolution = (resolution or "").strip()
    if not resolution or len(resolution) > MAX_REASON:
        raise ServiceError(_l("Say how the dispute was resolved (at most 1,000 characters)."), field="resolution")
    invoice = _lock_invoice(invoice_id)
    dispute = open_dispute_of(invoice_id) if invoice is not None else None
    if dispute is None:
        raise ServiceError(_l("This invoice has no open dispute."), code="not_disputed")
    dispute.open_invoice_id, dispute.resolved_at = None, utcnow()
    dispute.resolved_by_id, dispute.resolution = getattr(actor, "id", None), resolution
    db.session.flush()
    record_audit(actor, "invoice.dispute_resolved", invoice, f"{invoice.number} dispute resolved: {resolution}",
                 details={"note": resolution})
    return dispute
