"""Reminder pages: the dunning schedule (``DIST_ADMIN`` edits it), disputes of an invoice
(``DIST_FIN``), the reminders on the invoice page and one outbox mail. Services in
``scm.billing.dunning``."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from scm.auth.decorators import roles_required
from scm.auth.models import DISTRIBUTOR_ROLES, Role
from scm.billing import bp, dunning
from scm.billing.forms import ConfirmForm, DisputeForm, DunningStepForm, ResolveDisputeForm
from scm.billing.models import DunningStep
from scm.billing.views import _invoice_for, _invoice_form_page
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.models import OutboxEmail
from scm.core.views import field_error
from scm.extensions import db

OUTBOX_READERS = (Role.DIST_ADMIN, Role.DIST_FIN)


@bp.app_template_global()
def invoice_dunning(invoice) -> dict:
    """What the invoice page shows of reminders and disputes."""
    disputes = dunning.disputes(invoice)
    return {"timeline": dunning.timeline(invoice), "disputes": disputes,
            "open": next((d for d in disputes if d.is_open), None),
            "dispute_form": DisputeForm(formdata=None), "resolve_form": ResolveDisputeForm(formdata=None)}


@bp.app_template_global()
def disputed_invoice_ids(invoices) -> set:
    """Which of ``invoices`` are disputed now (the invoice list's badge)."""
    return dunning.open_dispute_ids(invoice.id for invoice in invoices)


# ----------------------------------------------------------------------------- the schedule


@bp.route("/billing/dunning")
@roles_required(*DISTRIBUTOR_ROLES)
def dunning_schedule():
    """The reminder schedule: its steps, earliest first."""
    with unit_of_work():  # the default schedule is written the first time it is asked for
        steps = dunning.schedule()
    return render_template("billing/dunning/schedule.html", steps=steps, placeholders=dunning.PLACEHOLDERS,
                           confirm=ConfirmForm())


def _step_page(form, step=None):
    return render_template("billing/dunning/step.html", form=form, step=step,
                           placeholders=dunning.PLACEHOLDERS), 422 if form.errors or form.form_errors else 200


@bp.route("/billing/dunning/steps/new", methods=["GET", "POST"])
@bp.route("/billing/dunning/steps/<int:step_id>", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def dunning_step(step_id=None):
    """Add a step or change one: its day, subject and text (placeholders checked)."""
    step = db.session.get(DunningStep, step_id) if step_id is not None else None
    if step_id is not None and (step is None or not step.active):
        abort(404)
    form = DunningStepForm(obj=step if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            with unit_of_work():
                dunning.save_step(current_user, step_id, name=form.name.data, offset_days=form.offset_days.data,
                                  subject=form.subject.data, body=form.body.data)
        except ServiceError as error:
            field_error(form, error)
        else:
            flash(_("The reminder step was saved."), "success")
            return redirect(url_for("billing.dunning_schedule"))
    return _step_page(form, step)


@bp.route("/billing/dunning/steps/<int:step_id>/remove", methods=["POST"])
@roles_required(Role.DIST_ADMIN)
def remove_dunning_step(step_id):
    """Take a step out of the schedule."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            dunning.remove_step(current_user, step_id)
    except ServiceError:
        abort(404)
    flash(_("The reminder step was removed."), "success")
    return redirect(url_for("billing.dunning_schedule"))


# ----------------------------------------------------------------------------- disputes


def _on_dispute(invoice_id, form, form_name, change, done):
    """``change(text)`` with the text the form holds (the reason or the resolution); back to the
    invoice page, or the page again with the error beside the field."""
    _invoice_for(invoice_id)
    if form.validate_on_submit():
        try:
            with unit_of_work():
                change(getattr(form, form.text_field).data)
        except ServiceError as error:
            field_error(form, error)
        else:
            flash(done, "success")
            return redirect(url_for("billing.invoice", invoice_id=invoice_id))
    return _invoice_form_page(invoice_id, form, form_name)


@bp.route("/billing/invoices/<int:invoice_id>/dispute", methods=["POST"])
@roles_required(Role.DIST_FIN)
def open_dispute(invoice_id):
    """Mark the invoice disputed: its reminders pause."""
    return _on_dispute(invoice_id, DisputeForm(), "dispute_form",
                       lambda reason: dunning.open_dispute(invoice_id, current_user, reason),
                       _("The invoice is marked disputed; reminders pause until the dispute is resolved."))


@bp.route("/billing/invoices/<int:invoice_id>/dispute/resolve", methods=["POST"])
@roles_required(Role.DIST_FIN)
def resolve_dispute(invoice_id):
    """Resolve the invoice's open dispute; reminders resume."""
    return _on_dispute(invoice_id, ResolveDisputeForm(), "resolve_form",
                       lambda note: dunning.resolve_dispute(invoice_id, current_user, note),
                       _("The dispute was resolved; reminders resume."))


# ----------------------------------------------------------------------------- the outbox


@bp.route("/admin/outbox/<int:mail_id>")
@roles_required(*OUTBOX_READERS)
def outbox_mail(mail_id):
    """One mail of the outbox, read-only (a one-time password's text is never shown)."""
    mail = db.get_or_404(OutboxEmail, mail_id)
    return render_template("billing/dunning/outbox_mail.html", mail=mail)
