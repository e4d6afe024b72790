"""Registration pages: the public form, the correction link, the reviewers' queue and decisions."""

import io
from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, send_file, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from scm.auth.decorators import roles_required
from scm.auth.models import DISTRIBUTOR_ROLES, REVIEWER_ROLES, Role
from scm.auth.scoping import can_see, get_scoped_or_404
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError, ValidationErrors
from scm.core.formatting import today_wib
from scm.core.uploads import hold_upload, read_pdf_upload, release_held_upload, stored_bytes, take_held_upload
from scm.core.views import field_error, no_store, paginate, show_decision_error
from scm.extensions import db
from scm.registration import bp, services
from scm.registration.forms import (
    CompanyChangeForm,
    ContractForm,
    CoretaxDetailsForm,
    DecisionForm,
    RegistrationForm,
    StatusForm,
    TerminateForm,
)
from scm.registration.models import (
    ChangeState,
    CompanyChange,
    Contract,
    Registration,
    RegistrationState,
    Wapu,
    WapuStatus,
)

HELD_KIND = "contracts"  # contracts held between two tries of a form


def _read_upload(form, required):
    """The contract from this request, or the one held from an earlier try; ServiceError if bad."""
    file = form.contract_file.data
    if file and getattr(file, "filename", ""):
        return read_pdf_upload(file)
    held = take_held_upload(form.held_upload.data, HELD_KIND)
    if held is None and required:
        raise ServiceError(_("Upload the contract as a PDF."), field="contract_file")
    return held


def _save_registration(form, action, *, required_file, exclude_id=None):
    """Run ``action(data, upload)`` in one transaction; returns its result, or None after showing
    every error beside its field. A valid upload is held so the user need not send it again."""
    upload = None
    errors = {}
    try:
        upload = _read_upload(form, required_file)
    except ServiceError as error:
        errors[error.field] = error.message
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            form.form_errors.append(_("Your session has expired. Please submit the form again."))
        try:
            services.clean_registration(form.to_input(), exclude_id=exclude_id)
        except ValidationErrors as error:
            errors = error.errors | errors
    elif not errors:
        try:
            with unit_of_work():
                result = action(form.to_input(), upload)
        except ValidationErrors as error:
            errors = error.errors
        except ServiceError as error:
            errors = {error.field or "": error.message}
        else:
            release_held_upload(form.held_upload.data, HELD_KIND)
            return result
    else:
        try:
            services.clean_registration(form.to_input(), exclude_id=exclude_id)
        except ValidationErrors as error:
            errors = error.errors | errors
    form.show_errors(errors)
    file = form.contract_file.data
    if upload is not None and file and getattr(file, "filename", ""):  # a new valid file replaces a held one
        release_held_upload(form.held_upload.data, HELD_KIND)
        form.held_upload.data = hold_upload(upload, HELD_KIND)
    return None


def _held_name(form):
    held = take_held_upload(form.held_upload.data, HELD_KIND)
    return held.original_name if held else None


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Daftar sebagai Pemungut: the public registration form (also used by distributor staff)."""
    form = RegistrationForm()
    entered_by = current_user if current_user.is_authenticated and current_user.is_distributor else None
    if current_user.is_authenticated and not entered_by:
        flash(_("Your company is already registered."), "info")
        return redirect(url_for("home.index"))
    if request.method == "POST":
        reg = _save_registration(
            form, lambda data, upload: services.submit_registration(entered_by, data=data, upload=upload),
            required_file=True,
        )
        if reg is not None:
            session["submitted_reference"] = reg.reference
            return redirect(url_for("registration.submitted"))
    return render_template("registration/form.html", form=form, held_name=_held_name(form),
                           entered_by=entered_by)


@bp.route("/register/submitted")
def submitted():
    """The reference number of the registration just submitted."""
    reference = session.get("submitted_reference")
    if not reference:
        return redirect(url_for("registration.register"))
    return render_template("registration/submitted.html", reference=reference)


@bp.route("/register/correct/<token>", methods=["GET", "POST"])
def correct(token):
    """The private correction link: edit a registration that was sent back, and resubmit it."""
    reg = services.registration_for_correction(token)
    if reg is None:
        return render_template("registration/link_invalid.html"), 404
    form = RegistrationForm()
    if request.method == "GET":
        form.fill_from(reg)
    else:
        reg_id = reg.id

        def resubmit(data, upload):
            return services.resubmit_registration(db.session.get(Registration, reg_id), None, data=data, upload=upload)

        done = _save_registration(form, resubmit, required_file=False, exclude_id=reg_id)
        if done is not None:
            session["submitted_reference"] = done.reference
            flash(_("Thank you: your corrected registration has been sent for review."), "success")
            return redirect(url_for("registration.submitted"))
    return render_template("registration/form.html", form=form, held_name=_held_name(form),
                           correcting=reg, last_reason=_last_reason(reg))


def _last_reason(reg):
    returned = [e for e in reg.events if e.action == "send_back"]
    return returned[-1].comment if returned else None


@bp.route("/review/registrations")
@roles_required(*REVIEWER_ROLES)
def queue():
    """The reviewers' queue, filtered by state (default: waiting for review)."""
    state = request.args.get("state", RegistrationState.SUBMITTED.value)
    stmt = select(Registration).order_by(Registration.created_at)
    if state != "all":
        try:
            stmt = stmt.where(Registration.state == RegistrationState(state))
        except ValueError:
            abort(404)
    return render_template("registration/queue.html", page=paginate(stmt), state=state,
                           counts=services.registration_counts(), states=list(RegistrationState),
                           open_company_changes=services.open_company_changes())


@bp.route("/registrations/<int:reg_id>")
@login_required
def detail(reg_id):
    """Everything a registration holds, its history and (for reviewers) the decision buttons."""
    reg = get_scoped_or_404(Registration, reg_id, current_user)
    actions = services.REGISTRATION_WORKFLOW.actions_for(reg, current_user.role)
    return render_template("registration/detail.html", reg=reg, form=DecisionForm(), actions=actions,
                           taken=services.emails_with_accounts(reg) if "approve" in actions else [])


@bp.route("/registrations/<int:reg_id>/<any(approve, reject, send_back):action>", methods=["POST"])
@roles_required(*REVIEWER_ROLES)
def decide(reg_id, action):
    """Approve, reject (reason required) or send back for correction (reason required)."""
    reg = get_scoped_or_404(Registration, reg_id, current_user)
    form = DecisionForm()
    if not form.validate_on_submit():
        return render_template("registration/detail.html", reg=reg, form=form,
                               actions=services.REGISTRATION_WORKFLOW.actions_for(reg, current_user.role)), 400
    try:
        with unit_of_work():
            reg = db.session.get(Registration, reg_id)
            if action == "approve":
                issued = services.approve_registration(reg, current_user)
            elif action == "reject":
                services.reject_registration(reg, current_user, reason=form.comment.data)
            else:
                services.send_back_registration(reg, current_user, reason=form.comment.data)
    except ServiceError as error:
        show_decision_error(form, error)
        reg = db.session.get(Registration, reg_id)
        return render_template("registration/detail.html", reg=reg, form=form,
                               actions=services.REGISTRATION_WORKFLOW.actions_for(reg, current_user.role)), 409
    if action == "approve":
        reg = db.session.get(Registration, reg_id)
        return no_store(render_template("registration/approved.html", reg=reg, issued=issued))
    flash(_("The registration was rejected.") if action == "reject"
          else _("The registration was sent back; the applicant has been emailed a correction link."), "success")
    return redirect(url_for("registration.queue"))


@bp.route("/registrations/<int:reg_id>/contract")
@login_required
def registration_contract(reg_id):
    """The contract PDF of a registration: distributor users and the WAPU's own users only."""
    reg = get_scoped_or_404(Registration, reg_id, current_user)
    return _send_stored(reg.contract_file)


@bp.route("/contracts/<int:contract_id>/file")
@login_required
def contract_file(contract_id):
    """A WAPU contract's PDF: distributor users and the WAPU's own users only."""
    contract = get_scoped_or_404(Contract, contract_id, current_user)
    return _send_stored(contract.file)


def _send_stored(stored):
    data = stored_bytes(stored)
    if data is None:
        abort(404)
    return send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=True, download_name=stored.original_name,
                     max_age=0)


@bp.route("/wapus")
@roles_required(*DISTRIBUTOR_ROLES)
def wapus():
    """Every WAPU, for distributor users."""
    stmt = select(Wapu).order_by(Wapu.code)
    return render_template("registration/wapus.html", page=paginate(stmt))


@bp.route("/wapus/<int:wapu_id>")
@login_required
def wapu(wapu_id):
    """A WAPU's company data, contacts and contracts (its own users, or the distributor)."""
    wapu = get_scoped_or_404(Wapu, wapu_id, current_user)
    return render_template("registration/wapu.html", wapu=wapu, **_life_context(wapu))


# --- a WAPU's life: contracts, status, company details ------------------------------------------

def _life_context(wapu):
    """What the WAPU page's section on contracts, status and company details shows."""
    changes = db.session.execute(select(CompanyChange).where(CompanyChange.wapu_id == wapu.id)
                                 .order_by(CompanyChange.id.desc()).limit(5)).scalars().all()
    today = today_wib()
    return {"today": today, "company_changes": changes, "inactive_reason": wapu.inactive_reason(today),
            "open_change": next((c for c in changes if c.state == ChangeState.SUBMITTED), None)}


def _show_error(form, error):
    """A refusal beside its field(s): each of several field errors, or one ServiceError."""
    if isinstance(error, ValidationErrors):
        for name, message in error.errors.items():
            form[name].errors = [message]
    else:
        field_error(form, error)


@bp.route("/wapus/<int:wapu_id>/contracts/new", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def add_contract(wapu_id):
    """Add a renewal or an amendment (number, dates, signed PDF, optional unit price)."""
    wapu = db.get_or_404(Wapu, wapu_id)
    form = ContractForm()
    if request.method == "GET":
        last = max(wapu.contracts, key=lambda c: c.last_day, default=None)
        if last is not None:
            form.start_date.data = last.last_day + timedelta(days=1)
            form.end_date.data = last.last_day + timedelta(days=365)
    if form.validate_on_submit():
        errors, upload = {}, None
        try:
            upload = _read_upload(form, required=True)
        except ServiceError as error:
            errors[error.field] = error.message
        if not errors:
            try:
                with unit_of_work():
                    contract = services.add_contract(
                        db.session.get(Wapu, wapu_id), current_user, number=form.number.data,
                        start_date=form.start_date.data, end_date=form.end_date.data, upload=upload,
                        kind=form.kind.data, unit_price=form.unit_price.data, supersede=form.supersede.data)
            except ValidationErrors as error:
                errors = error.errors
            except ServiceError as error:
                errors = {error.field or "": error.message}
            else:
                release_held_upload(form.held_upload.data, HELD_KIND)
                flash(_("Contract %(number)s was added.", number=contract.number), "success")
                return redirect(url_for("registration.wapu", wapu_id=wapu_id))
        for name, message in errors.items():
            field = form._fields.get(name)
            if field is None:
                form.form_errors.append(message)
            else:
                field.errors = [message]
        file = form.contract_file.data
        if upload is not None and file and getattr(file, "filename", ""):
            release_held_upload(form.held_upload.data, HELD_KIND)
            form.held_upload.data = hold_upload(upload, HELD_KIND)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("registration/contract_form.html", wapu=wapu, form=form,
                           held_name=_held_name(form)), status


@bp.route("/contracts/<int:contract_id>/terminate", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def terminate_contract(contract_id):
    """End a contract early, from a date, with a reason."""
    contract = db.get_or_404(Contract, contract_id)
    form = TerminateForm()
    if request.method == "GET":
        form.from_date.data = today_wib()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.terminate_contract(db.session.get(Contract, contract_id), current_user,
                                            from_date=form.from_date.data, reason=form.reason.data)
        except ServiceError as error:
            field_error(form, error)
        else:
            flash(_("Contract %(number)s was terminated.", number=contract.number), "success")
            return redirect(url_for("registration.wapu", wapu_id=contract.wapu_id))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("registration/contract_terminate.html", contract=contract, form=form), status


@bp.route("/wapus/<int:wapu_id>/status", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN, Role.DIST_SPV)
def wapu_status(wapu_id):
    """Suspend a WAPU (reason required) or reactivate it."""
    wapu = db.get_or_404(Wapu, wapu_id)
    form = StatusForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                target = db.session.get(Wapu, wapu_id)
                if target.status == WapuStatus.ACTIVE:
                    services.suspend_wapu(target, current_user, reason=form.reason.data)
                    message = _("%(code)s was suspended; its users have been told.", code=target.code)
                else:
                    services.reactivate_wapu(target, current_user, note=form.reason.data)
                    message = _("%(code)s was reactivated; its users have been told.", code=target.code)
        except ServiceError as error:
            field_error(form, error)
        else:
            flash(message, "success")
            return redirect(url_for("registration.wapu", wapu_id=wapu_id))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("registration/wapu_status.html", wapu=wapu, form=form), status


@bp.route("/wapus/<int:wapu_id>/coretax", methods=["GET", "POST"])
@roles_required(Role.DIST_ADMIN)
def wapu_coretax(wapu_id):
    """The WAPU's Coretax e-Faktur details: kind of collector, NITKU and kode transaksi."""
    wapu = db.get_or_404(Wapu, wapu_id)
    form = CoretaxDetailsForm()
    if request.method == "GET":
        form.kind.data = wapu.kind.value if wapu.kind else ""
        form.nitku.data = wapu.nitku or ""
        form.coretax_transaction_code.data = wapu.coretax_transaction_code or ""
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.set_coretax_details(db.session.get(Wapu, wapu_id), current_user, kind=form.kind.data,
                                             nitku=form.nitku.data,
                                             transaction_code=form.coretax_transaction_code.data)
        except ServiceError as error:
            _show_error(form, error)
        else:
            flash(_("The Coretax details of %(code)s were saved.", code=wapu.code), "success")
            return redirect(url_for("registration.wapu", wapu_id=wapu_id))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("registration/wapu_coretax.html", wapu=wapu, form=form), status


@bp.route("/wapus/<int:wapu_id>/company-change", methods=["GET", "POST"])
@roles_required(Role.WAPU_SPV)
def request_company_change(wapu_id):
    """The WAPU's SPV asks to change the company name, address or NPWP."""
    wapu = get_scoped_or_404(Wapu, wapu_id, current_user)
    form = CompanyChangeForm()
    if request.method == "GET":
        form.name.data, form.address.data, form.npwp.data = wapu.name, wapu.address, wapu.npwp_formatted
    if form.validate_on_submit():
        try:
            with unit_of_work():
                change = services.request_company_change(
                    db.session.get(Wapu, wapu_id), current_user, name=form.name.data, address=form.address.data,
                    npwp=form.npwp.data, note=form.note.data)
        except ServiceError as error:
            _show_error(form, error)
        else:
            flash(_("Your request was sent to the distributor for review."), "success")
            return redirect(url_for("registration.company_change", change_id=change.id))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("registration/company_change_form.html", wapu=wapu, form=form), status


@bp.route("/company-changes/<int:change_id>")
@login_required
def company_change(change_id):
    """A request to change company details: what changes, and (for reviewers) the decision."""
    change = db.get_or_404(CompanyChange, change_id)
    if not can_see(change, current_user):
        abort(404)
    return render_template("registration/company_change.html", change=change, form=DecisionForm())


@bp.route("/company-changes/<int:change_id>/<any(approve, reject):action>", methods=["POST"])
@roles_required(*REVIEWER_ROLES)
def decide_company_change(change_id, action):
    """Approve (the details change now) or reject (reason required) a change of company details."""
    change = db.get_or_404(CompanyChange, change_id)
    form = DecisionForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                services.decide_company_change(db.session.get(CompanyChange, change_id), current_user,
                                               action=action, reason=form.comment.data)
        except ServiceError as error:
            show_decision_error(form, error)
        else:
            flash(_("The change was approved: new invoices use the new details.") if action == "approve"
                  else _("The change was rejected."), "success")
            return redirect(url_for("registration.wapu", wapu_id=change.wapu_id))
    change = db.session.get(CompanyChange, change_id)
    return render_template("registration/company_change.html", change=change, form=form), 409


@bp.route("/company")
@login_required
def my_company():
    """A WAPU user's own company page."""
    if not current_user.is_wapu:
        return redirect(url_for("registration.wapus"))
    return redirect(url_for("registration.wapu", wapu_id=current_user.wapu_id))


