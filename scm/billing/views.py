"""Billing pages: the month (run, issue, downloads), invoices, payments, credit notes, reports,
settings and contract terms. Exports are built by ``scm.billing.exports``; views only send them."""

from datetime import date
from io import BytesIO

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from scm.auth.decorators import roles_required
from scm.auth.models import DISTRIBUTOR_ROLES, Role
from scm.auth.scoping import get_scoped_or_404, scope_query
from scm.billing import bp, documents, exports, payments, reports, services, statements
from scm.billing.forms import (
    ConfirmForm,
    CreditNoteForm,
    InvoiceFilterForm,
    PaymentForm,
    SettingsForm,
    StatementForm,
    TermsForm,
)
from scm.billing.models import BillingRun, BillingSettings, CreditNote, Invoice, InvoiceState, Payment
from scm.billing.usage import add_months, month_key, month_of, parse_month, terms_for
from scm.core.background import start_task
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.formatting import format_month, today_wib
from scm.core.views import field_error, paginate
from scm.extensions import db
from scm.registration.models import Contract, Wapu

MONTH_PAGE = 50  # WAPUs per page of the month and of the shortfall report (a distributor has about 400)
FINANCE_READERS = (*DISTRIBUTOR_ROLES, Role.WAPU_FIN, Role.WAPU_SPV)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _month_or_404(text: str) -> date:
    try:
        return parse_month(text)
    except ServiceError:
        abort(404)


def _download(data: bytes, name: str, mimetype: str):
    return send_file(BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=name)


# ----------------------------------------------------------------------------- the month


@bp.route("/billing")
@roles_required(*DISTRIBUTOR_ROLES)
def index():
    """The billing desk opens on last month (the one to bill)."""
    return redirect(url_for("billing.month", month=month_key(add_months(month_of(today_wib()), -1))))


@bp.route("/billing/months/<month>")
@roles_required(*DISTRIBUTOR_ROLES)
def month(month):
    """One month: use against the minimum per WAPU, its invoices, the run and the downloads."""
    period, today = _month_or_404(month), today_wib()
    page = paginate(reports.month_wapus(period), per_page=MONTH_PAGE, rows=True)
    rows = reports.month_overview(period, today, wapu_ids=[row.id for row in page.items])
    last_run = db.session.execute(
        select(BillingRun).where(BillingRun.period == period).order_by(BillingRun.id.desc()).limit(1)).scalar()
    return render_template(
        "billing/month.html", period=period, rows=rows, page=page, last_run=last_run, form=ConfirmForm(),
        can_run=period < month_of(today), **reports.month_totals(period),
        previous=month_key(add_months(period, -1)), next=month_key(add_months(period, 1)),
    )


def _start(month, kind):
    """Start the month's heavy work ``kind`` in the queue and show its progress page."""
    period = _month_or_404(month)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    with unit_of_work():
        task = start_task(kind, current_user, key=month_key(period), params={"month": month_key(period)})
    return redirect(url_for("home.task", task_id=task.id))


@bp.route("/billing/months/<month>/run", methods=["POST"])
@roles_required(Role.DIST_FIN)
def run_month(month):
    """Draft (or refresh the drafts of) the month's invoices, in the queue."""
    period = _month_or_404(month)
    if period >= month_of(today_wib()):
        flash(_("%(month)s has not ended yet: it can be billed from the 1st of the next month.",
                month=format_month(period)), "danger")
        return redirect(url_for("billing.month", month=month))
    return _start(month, "billing.run")


def _has_issued(month, kind):
    """Start ``kind`` if the month has issued invoices; else say so on the month page."""
    period = _month_or_404(month)
    issued = select(Invoice.id).where(Invoice.period == period, Invoice.state != InvoiceState.DRAFT).limit(1)
    if db.session.execute(issued).first() is None:  # one row looked at, not the month's 400 invoices and lines
        flash(_("No invoice of %(month)s has been issued yet.", month=format_month(period)), "warning")
        return redirect(url_for("billing.month", month=month))
    return _start(month, kind)


@bp.route("/billing/months/<month>/issue", methods=["POST"])
@roles_required(Role.DIST_FIN)
def issue_month(month):
    """Issue every draft of the month, in the queue (numbers, PDFs, mail)."""
    return _start(month, "billing.issue")


@bp.route("/billing/months/<month>/workbook", methods=["POST"])
@roles_required(*DISTRIBUTOR_ROLES)
def month_workbook(month):
    """Prepare the month's workbook (a summary per WAPU and every stamp) in the queue."""
    return _start(month, "billing.workbook")


@bp.route("/billing/months/<month>/invoices-zip", methods=["POST"])
@roles_required(*DISTRIBUTOR_ROLES)
def month_zip(month):
    """Prepare a ZIP of every issued invoice of the month as PDF, in the queue."""
    return _has_issued(month, "billing.zip")


@bp.route("/billing/months/<month>/invoices-pdf", methods=["POST"])
@roles_required(*DISTRIBUTOR_ROLES)
def month_pdf(month):
    """Prepare every issued invoice of the month in one PDF (one invoice per page), in the queue."""
    return _has_issued(month, "billing.pdf")


# ----------------------------------------------------------------------------- invoices


@bp.route("/billing/invoices")
@roles_required(*FINANCE_READERS)
def invoices():
    """Invoices: the WAPU's own, or all of them for the distributor, filtered."""
    form = InvoiceFilterForm(request.args)
    stmt = scope_query(select(Invoice), Invoice, current_user).options(joinedload(Invoice.wapu))
    if current_user.is_wapu:
        stmt = stmt.where(Invoice.state != InvoiceState.DRAFT)
    if form.validate():
        if form.month.data:
            try:
                stmt = stmt.where(Invoice.period == parse_month(form.month.data))
            except ServiceError as error:
                field_error(form, error)
        if form.state.data:
            stmt = stmt.where(Invoice.state == form.state.data)
        if form.wapu.data and current_user.is_distributor:
            text = f"%{form.wapu.data.strip()}%"
            stmt = stmt.join(Wapu, Invoice.wapu_id == Wapu.id).where(or_(Wapu.code.ilike(text), Wapu.name.ilike(text)))
    stmt = stmt.order_by(Invoice.period.desc(), Invoice.id.desc())
    return render_template("billing/invoices.html", form=form, page=paginate(stmt))


def _invoice_for(invoice_id) -> Invoice:
    invoice = get_scoped_or_404(Invoice, invoice_id, current_user)
    if invoice.is_draft and not current_user.is_distributor:
        abort(404)  # a WAPU sees its invoice once it is issued
    return invoice


@bp.route("/billing/invoices/<int:invoice_id>")
@roles_required(*FINANCE_READERS)
def invoice(invoice_id):
    """One invoice: lines, totals, payments, credit notes; finance acts on it here."""
    invoice = _invoice_for(invoice_id)
    return render_template("billing/invoice.html", invoice=invoice, confirm=ConfirmForm(),
                           issued_late=services.issued_late(invoice),
                           payment_form=PaymentForm(formdata=None, paid_on=today_wib()),
                           credit_form=CreditNoteForm(formdata=None))


@bp.route("/billing/invoices/<int:invoice_id>/issue", methods=["POST"])
@roles_required(Role.DIST_FIN)
def issue(invoice_id):
    """Issue one draft: it gets its number now."""
    _invoice_for(invoice_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            invoice = services.issue_invoice(invoice_id, current_user)
            number = invoice.number
    except ServiceError as error:
        flash(error.message, "danger")
    else:
        documents.store_after_issue(invoice)
        flash(_("Invoice %(number)s was issued.", number=number), "success")
    return redirect(url_for("billing.invoice", invoice_id=invoice_id))


def _invoice_form_page(invoice_id, form, name):
    invoice = db.session.get(Invoice, invoice_id)
    forms = {"payment_form": PaymentForm(formdata=None, paid_on=today_wib()), "credit_form": CreditNoteForm(formdata=None)}
    forms[name] = form
    return render_template("billing/invoice.html", invoice=invoice, confirm=ConfirmForm(), **forms), 422


@bp.route("/billing/invoices/<int:invoice_id>/payments", methods=["POST"])
@roles_required(Role.DIST_FIN)
def record_payment(invoice_id):
    """Record a payment (partial payments allowed)."""
    _invoice_for(invoice_id)
    form = PaymentForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                payment = payments.record_payment(invoice_id, current_user, paid_on=form.paid_on.data,
                                                  amount=form.amount.data, reference=form.reference.data)
        except ServiceError as error:
            field_error(form, error)
        else:
            documents.store_after_issue(payment)  # its receipt, rendered once
            flash(_("The payment was recorded."), "success")
            return redirect(url_for("billing.invoice", invoice_id=invoice_id))
    return _invoice_form_page(invoice_id, form, "payment_form")


@bp.route("/billing/invoices/<int:invoice_id>/credit-notes", methods=["POST"])
@roles_required(Role.DIST_FIN)
def credit_note(invoice_id):
    """Correct an issued invoice with a credit note."""
    _invoice_for(invoice_id)
    form = CreditNoteForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                note = payments.issue_credit_note(invoice_id, current_user, amount=form.credit_amount.data,
                                                  reason=form.reason.data)
                number = note.number
        except ServiceError as error:
            field_error(form, error)
        else:
            documents.store_after_issue(note)
            flash(_("Credit note %(number)s was issued.", number=number), "success")
            return redirect(url_for("billing.invoice", invoice_id=invoice_id))
    return _invoice_form_page(invoice_id, form, "credit_form")


@bp.route("/billing/invoices/<int:invoice_id>.pdf")
@roles_required(*FINANCE_READERS)
def invoice_pdf(invoice_id):
    """The invoice as a print-ready PDF (a draft is marked as such)."""
    invoice = _invoice_for(invoice_id)
    return _download(documents.document_pdf(invoice), exports.invoice_file_name(invoice), "application/pdf")


@bp.route("/billing/invoices/<int:invoice_id>.xlsx")
@roles_required(*FINANCE_READERS)
def invoice_xlsx(invoice_id):
    """The invoice as a workbook for the WAPU's finance staff."""
    invoice = _invoice_for(invoice_id)
    name = exports.invoice_file_name(invoice).removesuffix(".pdf") + ".xlsx"
    return _download(exports.build_invoice_xlsx(invoice), name, XLSX)


@bp.route("/billing/credit-notes/<int:note_id>.pdf")
@roles_required(*FINANCE_READERS)
def credit_note_pdf(note_id):
    """A credit note as PDF."""
    note = get_scoped_or_404(CreditNote, note_id, current_user)
    return _download(documents.document_pdf(note), documents.file_name(note), "application/pdf")


@bp.route("/billing/payments/<int:payment_id>/receipt.pdf")
@roles_required(*FINANCE_READERS)
def receipt_pdf(payment_id):
    """A payment's receipt (kuitansi) as PDF, as stored when the payment was recorded."""
    payment = get_scoped_or_404(Payment, payment_id, current_user)
    if not payment.receipt_number:  # recorded before receipts were numbered
        abort(404)
    return _download(documents.document_pdf(payment), documents.file_name(payment), "application/pdf")


# ----------------------------------------------------------------------------- reports


@bp.route("/billing/shortfall")
@roles_required(*DISTRIBUTOR_ROLES)
def shortfall():
    """WAPUs below their minimum in a month (projected while the month runs)."""
    today = today_wib()
    period = _month_or_404(request.args.get("month") or month_key(add_months(month_of(today), -1)))
    page = paginate(reports.shortfall_rows(period, today), per_page=MONTH_PAGE)
    return render_template("billing/shortfall.html", period=period, running=period == month_of(today), page=page,
                           rows=page.items)


@bp.route("/billing/shortfall.xlsx")
@roles_required(*DISTRIBUTOR_ROLES)
def shortfall_xlsx():
    """The shortfall report as a workbook."""
    period = _month_or_404(request.args.get("month", ""))
    return _download(exports.build_shortfall_xlsx(period, reports.shortfall_rows(period, today_wib())),
                     f"kekurangan-minimum-{month_key(period)}.xlsx", XLSX)


def _statement_request():
    """(form, Statement or None) from the query string: a WAPU user's own WAPU, or the WAPU the
    distributor picked; the range defaults to this year up to today."""
    form = StatementForm(request.args)
    today = today_wib()
    if not request.args:
        form.date_from.data, form.date_to.data = today.replace(month=1, day=1), today
    if current_user.is_distributor:
        form.wapu.choices = [("", _("Choose a WAPU"))] + [
            (w.code, f"{w.code} · {w.name}") for w in db.session.execute(select(Wapu).order_by(Wapu.code)).scalars()]
    else:
        del form.wapu
    if request.args and not form.validate():
        return form, None
    start, end = form.date_from.data or today.replace(month=1, day=1), form.date_to.data or today
    if start > end:
        form.date_to.errors = [_("The end of the range is before its start.")]
        return form, None
    if current_user.is_distributor:
        wapu = db.session.execute(select(Wapu).where(Wapu.code == (form.wapu.data or ""))).scalar()
        if wapu is None:
            return form, None
    else:
        wapu = current_user.wapu
    return form, statements.statement_of_account(wapu, start, end)


@bp.route("/billing/statement")
@roles_required(*FINANCE_READERS)
def statement():
    """The statement of account (Rekapitulasi tagihan) of a WAPU for a date range."""
    form, found = _statement_request()
    args = {k: v for k, v in request.args.items() if k != "wapu" or current_user.is_distributor}
    return render_template("billing/statement.html", form=form, statement=found, args=args,
                           buckets=payments.BUCKETS), 422 if form.errors else 200


@bp.route("/billing/statement.<any(pdf, xlsx):fmt>")
@roles_required(*FINANCE_READERS)
def statement_file(fmt):
    """The statement of account as PDF (the invoice's look) or XLSX."""
    _form, found = _statement_request()
    if found is None:
        abort(404)
    name = f"rekapitulasi-{found.wapu.code}-{found.start:%Y%m%d}-{found.end:%Y%m%d}.{fmt}"
    if fmt == "pdf":
        return _download(exports.render_statement_pdf(found), name, "application/pdf")
    return _download(exports.build_statement_xlsx(found), name, XLSX)


@bp.route("/billing/aging")
@roles_required(*DISTRIBUTOR_ROLES)
def aging():
    """Open balances by days past due."""
    rows, totals = payments.aging()
    return render_template("billing/aging.html", rows=rows, totals=totals, buckets=payments.BUCKETS)


# ----------------------------------------------------------------------------- settings and terms


@bp.route("/billing/settings", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def settings():
    """The distributor's identity and pricing on invoices (each save is kept as history)."""
    current = services.current_settings()
    form = SettingsForm(obj=current if request.method == "GET" else None)
    if form.validate_on_submit():
        values = {name: field.data for name, field in form._fields.items() if name != "csrf_token"}
        values["service_fee_per_unit"] = values["service_fee_per_unit"] or 0
        try:
            with unit_of_work():
                services.save_settings(current_user, **values)
        except ServiceError as error:
            field_error(form, error)
        else:
            flash(_("The billing settings were saved."), "success")
            return redirect(url_for("billing.settings"))
    history = db.session.execute(select(BillingSettings).order_by(BillingSettings.id.desc()).limit(20)).scalars()
    return render_template("billing/settings.html", form=form, history=list(history)), 422 if form.errors else 200


@bp.route("/billing/contracts/<int:contract_id>/terms", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def terms(contract_id):
    """A contract's billing terms: minimum, policy, first month, payment terms — with history."""
    contract = db.get_or_404(Contract, contract_id)
    today = today_wib()
    current = terms_for(contract, month_of(today))
    form = TermsForm(data=None if request.method == "POST" else dict(
        effective_from=month_of(today), monthly_minimum=current.monthly_minimum,
        minimum_policy=current.minimum_policy.value, first_month=current.first_month.value, due_day=current.due_day))
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.save_contract_terms(db.session.get(Contract, contract_id), current_user,
                                             effective_from=form.effective_from.data,
                                             monthly_minimum=form.monthly_minimum.data,
                                             minimum_policy=form.minimum_policy.data,
                                             first_month=form.first_month.data, due_day=form.due_day.data,
                                             note=form.note.data)
        except ServiceError as error:
            field_error(form, error)
        else:
            flash(_("The contract terms were saved."), "success")
            return redirect(url_for("billing.terms", contract_id=contract_id))
    return render_template("billing/terms.html", contract=contract, form=form, current=current,
                           history=services.terms_history(contract)), 422 if form.errors else 200
