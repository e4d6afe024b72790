"""WAPU registration: submit, review (approve / reject / send back), correct and resubmit."""

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager, joinedload

from scm.auth.models import REVIEWER_ROLES, Role
from scm.auth.services import active_users, check_email, create_user, email_in_use
from scm.core.database import next_number, utcnow
from scm.core.errors import ServiceError, ValidationErrors
from scm.core.formatting import format_day, to_wib, today_wib
from scm.core.services import notify, queue_email, record_audit, register_audit_action, register_notification
from scm.core.uploads import Upload, store_upload
from scm.extensions import db
from scm.registration.models import (
    APPLICANT,
    CORETAX_TRANSACTION_CODES,
    REGISTRATION_WORKFLOW,
    ChangeState,
    CompanyChange,
    ContactKind,
    Contract,
    ContractEnd,
    ContractKind,
    ContractWarning,
    Registration,
    RegistrationContact,
    RegistrationEvent,
    RegistrationState,
    Wapu,
    WapuKind,
    WapuStatus,
    npwp_forms,
)
from scm.registration.validators import (
    LATITUDE_RANGE,
    LONGITUDE_RANGE,
    clean_coordinate,
    clean_mobile,
    clean_nib,
    clean_nitku,
    clean_npwp,
    format_npwp,
)

register_audit_action("registration.submit", _l("Registration submitted"), _l("%(name)s, NPWP %(npwp)s"))
register_audit_action("wapu.create", _l("WAPU created"), _l("%(name)s, from %(registration)s"))

@dataclass
class ContactInput:
    name: str = ""
    email: str = ""
    phone: str = ""


@dataclass
class RegistrationInput:
    """What an applicant typed, before cleaning."""

    name: str = ""
    address: str = ""
    latitude: object = None
    longitude: object = None
    npwp: str = ""
    nib: str = ""
    contacts: dict = field(default_factory=dict)  # ContactKind -> ContactInput
    contract_number: str = ""
    contract_start: date | None = None
    contract_end: date | None = None


def clean_registration(data: RegistrationInput, exclude_id=None) -> dict:
    """Every rule of a registration at once; raises ``ValidationErrors`` naming each bad field."""
    errors, clean = {}, {}

    def attempt(name, fn, *args):
        try:
            clean[name] = fn(*args)
        except ServiceError as error:
            errors[error.field or name] = error.message

    def required(name, value, max_len):
        value = (value or "").strip()
        if not value:
            errors[name] = _l("This field is required.")
        elif len(value) > max_len:
            errors[name] = _l("At most %(n)d characters.", n=max_len)
        return value

    clean["name"] = required("name", data.name, 200)
    clean["address"] = required("address", data.address, 2000)
    attempt("latitude", clean_coordinate, data.latitude, "latitude", LATITUDE_RANGE)
    attempt("longitude", clean_coordinate, data.longitude, "longitude", LONGITUDE_RANGE)
    if (clean.get("latitude") is None) != (clean.get("longitude") is None) and not (
        "latitude" in errors or "longitude" in errors
    ):
        errors["longitude" if clean.get("latitude") is not None else "latitude"] = _l(
            "Give both latitude and longitude, or neither."
        )
    attempt("npwp", clean_npwp, data.npwp)
    attempt("nib", clean_nib, data.nib)

    contacts, seen_emails = {}, {}
    for kind in ContactKind:
        prefix = kind.value.lower()
        given = data.contacts.get(kind) or ContactInput()
        contact = {"name": required(f"{prefix}_name", given.name, 200)}
        try:
            contact["email"] = check_email(given.email)
        except ServiceError as error:
            errors[f"{prefix}_email"] = error.message
        try:
            contact["phone"] = clean_mobile(given.phone, f"{prefix}_phone")
        except ServiceError as error:
            errors[f"{prefix}_phone"] = error.message
        email = contact.get("email")
        if email:
            if email in seen_emails:
                errors[f"{prefix}_email"] = _l("Each contact needs a different email address.")
            # Whether an email already has an account is not told here: the public form would
            # reveal who has one. Reviewers see it (``emails_with_accounts``); approval refuses it.
            seen_emails[email] = kind
        contacts[kind] = contact
    clean["contacts"] = contacts

    clean["contract_number"] = required("contract_number", data.contract_number, 100)
    if not data.contract_start:
        errors["contract_start"] = _l("This field is required.")
    if not data.contract_end:
        errors["contract_end"] = _l("This field is required.")
    elif data.contract_start and data.contract_end <= data.contract_start:
        errors["contract_end"] = _l("The contract must end after it starts.")
    clean["contract_start"], clean["contract_end"] = data.contract_start, data.contract_end

    if "npwp" in clean and npwp_taken(clean["npwp"], exclude_id):
        errors["npwp"] = _l("This NPWP is already registered. Contact the distributor if this is a mistake.")
    if errors:
        raise ValidationErrors(errors)
    return clean


def npwp_taken(npwp: str, exclude_id=None, *, exclude_wapu_id=None) -> bool:
    """An NPWP registers once: taken by a WAPU or by a registration that was not rejected.

    Its 15-digit and 16-digit forms (``0`` + the 15) are the same taxpayer, so either form counts.
    ``exclude_wapu_id``: the WAPU itself (and its own registration) when it changes its NPWP."""
    forms = npwp_forms(npwp)
    open_regs = select(func.count()).select_from(Registration).where(
        Registration.npwp.in_(forms), Registration.state != RegistrationState.REJECTED
    )
    if exclude_id is not None:
        open_regs = open_regs.where(Registration.id != exclude_id)
    wapus = select(func.count()).select_from(Wapu).where(Wapu.npwp.in_(forms))
    if exclude_wapu_id is not None:
        open_regs = open_regs.where((Registration.wapu_id.is_(None)) | (Registration.wapu_id != exclude_wapu_id))
        wapus = wapus.where(Wapu.id != exclude_wapu_id)
    return bool(db.session.execute(open_regs).scalar() or db.session.execute(wapus).scalar())


def _apply_clean(reg: Registration, clean: dict) -> None:
    for name in ("name", "address", "latitude", "longitude", "npwp", "nib",
                 "contract_number", "contract_start", "contract_end"):
        setattr(reg, name, clean[name])
    existing = {c.kind: c for c in reg.contacts}
    for kind, values in clean["contacts"].items():
        contact = existing.get(kind)
        if contact is None:
            contact = RegistrationContact(kind=kind)
            reg.contacts.append(contact)
        contact.name, contact.email, contact.phone = values["name"], values["email"], values["phone"]


def _flush_or_duplicate():
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent registration of the same NPWP won the race
        raise ValidationErrors(
            {"npwp": _l("This NPWP is already registered. Contact the distributor if this is a mistake.")}
        ) from None


def submit_registration(entered_by, *, data: RegistrationInput, upload: Upload) -> Registration:
    """A new registration, from the public form (``entered_by`` None) or entered by a distributor user."""
    clean = clean_registration(data)
    stored = store_upload(upload)
    year = to_wib(utcnow()).year
    reg = Registration(
        reference=f"REG-{year}-{next_number(f'registration-{year}'):06d}",
        state=RegistrationState.SUBMITTED,
        contract_file=stored,
        entered_by=entered_by,
    )
    _apply_clean(reg, clean)
    db.session.add(reg)
    _flush_or_duplicate()
    db.session.add(RegistrationEvent(registration_id=reg.id, action="submit", from_state=None,
                                     to_state=RegistrationState.SUBMITTED, actor_id=getattr(entered_by, "id", None)))
    record_audit(entered_by, "registration.submit", reg, f"{reg.reference} {reg.name} NPWP {reg.npwp_formatted}",
                 actor_label=None if entered_by else "public", details={"name": reg.name, "npwp": reg.npwp_formatted})
    for contact in reg.contacts:
        queue_email(contact.email, "registration_received", registration=reg, contact=contact)
    _notify_reviewers(reg, "registration_new")
    return reg


def _notify_reviewers(reg, template):
    for reviewer in active_users(REVIEWER_ROLES):
        queue_email(reviewer.email, template, registration=reg, reviewer=reviewer,
                    link=f"{current_app.config['PUBLIC_BASE_URL']}/review/registrations/{reg.id}")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def registration_for_correction(token: str):
    """The registration a private correction link opens, or None (unknown, used or expired)."""
    if not token or len(token) > 100:
        return None
    reg = db.session.execute(
        select(Registration).where(Registration.correction_token_hash == _token_hash(token))
    ).scalar_one_or_none()
    if reg is None or reg.state != RegistrationState.RETURNED or reg.correction_expires_at < utcnow():
        return None
    return reg


def resubmit_registration(reg: Registration, actor, *, data: RegistrationInput, upload: Upload | None):
    """The applicant corrects a registration that was sent back and submits it again."""
    clean = clean_registration(data, exclude_id=reg.id)
    if upload is not None:
        reg.contract_file = store_upload(upload)
    _apply_clean(reg, clean)
    reg.correction_token_hash = None
    reg.correction_expires_at = None
    _flush_or_duplicate()
    REGISTRATION_WORKFLOW.apply(reg, "resubmit", actor, APPLICANT,
                                summary=f"{reg.reference} corrected and resubmitted")
    _notify_reviewers(reg, "registration_resubmitted")
    return reg


def send_back_registration(reg: Registration, actor, *, reason: str) -> str:
    """Return a registration for correction; mails the applicant a private link (returned)."""
    REGISTRATION_WORKFLOW.apply(reg, "send_back", actor, actor.role, comment=reason)
    token = secrets.token_urlsafe(32)
    reg.correction_token_hash = _token_hash(token)
    reg.correction_expires_at = utcnow() + timedelta(days=current_app.config["CORRECTION_LINK_DAYS"])
    link = f"{current_app.config['PUBLIC_BASE_URL']}/register/correct/{token}"
    for contact in reg.contacts:
        queue_email(contact.email, "registration_returned", registration=reg, contact=contact,
                    reason=reason, link=link, sensitive=True)
    db.session.flush()
    return token


def reject_registration(reg: Registration, actor, *, reason: str) -> None:
    """Refuse a registration, with the reason the applicant will read."""
    REGISTRATION_WORKFLOW.apply(reg, "reject", actor, actor.role, comment=reason)
    reg.correction_token_hash = None
    reg.correction_expires_at = None
    for contact in reg.contacts:
        queue_email(contact.email, "registration_rejected", registration=reg, contact=contact, reason=reason)


@dataclass
class IssuedCredential:
    kind: ContactKind
    name: str
    email: str
    role: Role
    password: str


def emails_with_accounts(reg: Registration) -> list[str]:
    """The contact emails of ``reg`` that already belong to a user (for the reviewers' eyes only)."""
    return [c.email for c in reg.contacts if email_in_use(c.email)]


def approve_registration(reg: Registration, actor) -> list:
    """Approve: in one transaction create the WAPU, its contract and one user per PIC.

    Returns the issued one-time passwords, to show once; each PIC also gets theirs by email.
    """
    REGISTRATION_WORKFLOW.apply(reg, "approve", actor, actor.role)
    taken = emails_with_accounts(reg)
    if taken:
        raise ServiceError(
            _l("These emails got an account since the registration was submitted: %(emails)s. "
               "Send the registration back for correction.", emails=", ".join(taken))
        )
    if db.session.execute(select(func.count()).select_from(Wapu).where(Wapu.npwp.in_(npwp_forms(reg.npwp)))).scalar():
        raise ServiceError(_l("A WAPU with this NPWP already exists."))
    wapu = Wapu(
        code=f"W{next_number('wapu'):04d}",
        name=reg.name, address=reg.address, latitude=reg.latitude, longitude=reg.longitude,
        npwp=reg.npwp, nib=reg.nib,
    )
    db.session.add(wapu)
    db.session.flush()
    contract = Contract(wapu_id=wapu.id, number=reg.contract_number, start_date=reg.contract_start,
                        end_date=reg.contract_end, file_id=reg.contract_file_id)
    db.session.add(contract)
    reg.wapu_id = wapu.id
    record_audit(actor, "wapu.create", wapu, f"{wapu.code} {wapu.name} from {reg.reference}",
                 details={"name": wapu.name, "registration": reg.reference})
    issued = []
    for contact in reg.contacts:
        user, password = create_user(wapu, actor, email=contact.email, name=contact.name,
                                     role=contact.kind.role, phone=contact.phone)
        issued.append(IssuedCredential(contact.kind, user.name, user.email, user.role, password))
        queue_email(user.email, "credentials_issued", sensitive=True, user=user, wapu=wapu,
                    password=password, login_url=f"{current_app.config['PUBLIC_BASE_URL']}/login")
    db.session.flush()
    return issued


def registration_counts() -> dict:
    """Registrations per state, for the reviewers' queue and dashboard."""
    rows = db.session.execute(select(Registration.state, func.count()).group_by(Registration.state)).all()
    counts = {state: 0 for state in RegistrationState}
    counts.update({state: n for state, n in rows})
    return counts


def dashboard_panel(user, today) -> dict:
    """The registration part of a distributor's dashboard: registrations per state and the
    contracts ending within 60 days."""
    if not user.is_distributor:
        return {}
    return {"registration_counts": registration_counts(), "contracts_ending": contracts_ending(today)}


def list_wapus():
    return db.session.execute(select(Wapu).order_by(Wapu.code)).scalars().all()


# --- a WAPU's life: contracts, status, company details ------------------------------------------

register_audit_action("contract.add", _l("Contract added"), _l("%(number)s (%(kind)s), %(start)s – %(end)s"),
                      kind=ContractKind, start="day", end="day")
register_audit_action("contract.superseded", _l("Contract superseded"), _l("%(number)s, by %(by)s from %(day)s"),
                      day="day")
register_audit_action("contract.terminate", _l("Contract terminated"), _l("%(number)s, from %(day)s"), day="day")
register_audit_action("wapu.suspend", _l("WAPU suspended"), _l("%(name)s"))
register_audit_action("wapu.reactivate", _l("WAPU reactivated"), _l("%(name)s"))
register_audit_action("company_change.request", _l("Company change requested"), _l("%(name)s, NPWP %(npwp)s"))
register_audit_action("company_change.approve", _l("Company change approved"), _l("%(name)s, NPWP %(npwp)s"))
register_audit_action("company_change.reject", _l("Company change rejected"), _l("%(name)s, NPWP %(npwp)s"))
register_notification("wapu_suspended", _l(
    "%(wapu)s was suspended by the distributor: %(reason)s. You can still log in, see your data and download "
    "invoices; new purchase requests, purchase orders and API reservations are refused."))
register_notification("wapu_reactivated", _l("%(wapu)s was reactivated: ordering and stamping work again."))
register_notification("contract_added", _l("A new contract %(number)s for %(wapu)s runs from %(start)s to %(end)s."))
register_notification("contract_terminated", _l("The contract %(number)s of %(wapu)s ends early, from %(day)s: %(reason)s"))
register_notification("contract_expiring", _l(
    "The contract %(number)s of %(wapu)s ends on %(day)s (in %(days)s days). Without a renewal, ordering and "
    "stamping stop after that day."))
register_notification("company_change_requested", _l("%(wapu)s asks to change its company name, address or NPWP."))
register_notification("company_change_approved", _l(
    "The change of company details of %(wapu)s was approved: invoices from now on use %(name)s, NPWP %(npwp)s."))
register_notification("company_change_rejected", _l("The change of company details of %(wapu)s was rejected: %(reason)s"))

EXPIRY_THRESHOLDS = (60, 30, 7)  # days before the last contract ends


def _require(actor, roles, message=None):
    if actor is None or actor.role not in roles:
        raise ServiceError(message or _l("You may not do this."), code="forbidden")


def _clean_reason(reason, field="reason"):
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_l("Give a reason."), field=field)
    if len(reason) > 2000:
        raise ServiceError(_l("At most %(n)d characters.", n=2000), field=field)
    return reason


def add_contract(wapu: Wapu, actor, *, number: str, start_date: date, end_date: date, upload: Upload,
                 kind=ContractKind.RENEWAL, unit_price: int | None = None, supersede=False, today=None) -> Contract:
    """``DIST_ADMIN`` adds a renewal or an amendment to a WAPU.

    Contracts of one WAPU may not overlap, unless the new one explicitly supersedes the ones it
    overlaps from its start date (which must not be in the past: billed days are not rewritten)."""
    _require(actor, {Role.DIST_ADMIN})
    today = today or today_wib()
    errors = {}
    number = (number or "").strip()
    if not number:
        errors["number"] = _l("This field is required.")
    elif len(number) > 100:
        errors["number"] = _l("At most %(n)d characters.", n=100)
    elif any(c.number == number for c in wapu.contracts):
        errors["number"] = _l("This WAPU already has a contract with this number.")
    if not start_date:
        errors["start_date"] = _l("This field is required.")
    if not end_date:
        errors["end_date"] = _l("This field is required.")
    elif start_date and end_date <= start_date:
        errors["end_date"] = _l("The contract must end after it starts.")
    if unit_price is not None and not 1 <= unit_price <= 10_000_000:
        errors["unit_price"] = _l("The unit price must be between Rp1 and Rp10.000.000.")
    try:
        kind = ContractKind(kind)
    except ValueError:
        errors["kind"] = _l("Choose one of the listed options.")
    if errors:
        raise ValidationErrors(errors)
    overlapping = [c for c in wapu.contracts
                   if c.last_day >= c.start_date and c.start_date <= end_date and c.last_day >= start_date]
    if overlapping and not supersede:
        first = min(overlapping, key=lambda c: c.start_date)
        raise ValidationErrors({"start_date": _l(
            "It overlaps contract %(number)s (%(start)s – %(end)s). Start it after %(end)s, or tick "
            "“supersedes” to end the overlapped contract from this start date.",
            number=first.number, start=format_day(first.start_date), end=format_day(first.last_day))})
    if overlapping:
        if start_date < today:
            raise ValidationErrors({"start_date": _l(
                "A contract can supersede another only from today or a later day.")})
        if any(c.start_date >= start_date for c in overlapping):
            raise ValidationErrors({"start_date": _l(
                "It would supersede a contract that starts on or after its own start; terminate that "
                "contract instead.")})
    contract = Contract(wapu_id=wapu.id, number=number, start_date=start_date, end_date=end_date,
                        file=store_upload(upload), unit_price=unit_price, kind=kind)
    db.session.add(contract)
    for old in overlapping:
        old.ended_from, old.ended_how = start_date, ContractEnd.SUPERSEDED
        old.ended_reason = f"{number}"
        record_audit(actor, "contract.superseded", old, f"{old.number} superseded by {number} from {start_date}",
                     details={"number": old.number, "by": number, "day": start_date.isoformat()})
    db.session.flush()
    db.session.refresh(wapu, ["contracts"])
    record_audit(actor, "contract.add", contract,
                 f"{wapu.code} {number} ({kind.value}) {start_date} – {end_date}",
                 details={"number": number, "kind": kind.value, "start": start_date.isoformat(),
                          "end": end_date.isoformat(), "wapu": wapu.code})
    notify(active_users({Role.WAPU_SPV, Role.WAPU_FIN}, wapu_id=wapu.id), "contract_added", f"/wapus/{wapu.id}",
           number=number, wapu=wapu.name, start=format_day(start_date), end=format_day(end_date))
    return contract


def terminate_contract(contract: Contract, actor, *, from_date: date, reason: str, today=None) -> Contract:
    """``DIST_ADMIN`` ends a contract early: from ``from_date`` on it no longer applies."""
    _require(actor, {Role.DIST_ADMIN})
    today = today or today_wib()
    reason = _clean_reason(reason)
    if not from_date:
        raise ServiceError(_l("This field is required."), field="from_date")
    if from_date < today:
        raise ServiceError(_l("A contract can be terminated from today or a later day."), field="from_date")
    if from_date > contract.last_day:
        raise ServiceError(_l("The contract already ends before that day (%(day)s).", day=format_day(contract.last_day)),
                           field="from_date")
    contract.ended_from, contract.ended_how, contract.ended_reason = from_date, ContractEnd.TERMINATED, reason
    db.session.flush()
    wapu = contract.wapu
    record_audit(actor, "contract.terminate", contract, f"{wapu.code} {contract.number} from {from_date}: {reason}",
                 details={"number": contract.number, "day": from_date.isoformat(), "note": reason})
    notify(active_users({Role.WAPU_SPV, Role.WAPU_FIN}, wapu_id=wapu.id), "contract_terminated", f"/wapus/{wapu.id}",
           number=contract.number, wapu=wapu.name, day=format_day(from_date), reason=reason)
    return contract


STATUS_ROLES = {Role.DIST_ADMIN, Role.DIST_SPV}


def suspend_wapu(wapu: Wapu, actor, *, reason: str) -> Wapu:
    """Suspend a WAPU (reason required): its users still log in and see their data; new PRs,
    POs and API reservations are refused; open reservations may still be settled; billing runs."""
    _require(actor, STATUS_ROLES)
    reason = _clean_reason(reason)
    if wapu.status == WapuStatus.SUSPENDED:
        raise ServiceError(_l("This WAPU is already suspended."), code="already_suspended")
    wapu.status, wapu.status_reason = WapuStatus.SUSPENDED, reason
    db.session.flush()
    record_audit(actor, "wapu.suspend", wapu, f"{wapu.code} suspended: {reason}",
                 details={"name": wapu.name, "note": reason})
    notify(active_users(wapu_id=wapu.id), "wapu_suspended", f"/wapus/{wapu.id}", wapu=wapu.name, reason=reason)
    return wapu


def reactivate_wapu(wapu: Wapu, actor, *, note: str = "") -> Wapu:
    """Lift a suspension."""
    _require(actor, STATUS_ROLES)
    if wapu.status == WapuStatus.ACTIVE:
        raise ServiceError(_l("This WAPU is not suspended."), code="not_suspended")
    wapu.status, wapu.status_reason = WapuStatus.ACTIVE, None
    db.session.flush()
    note = (note or "").strip()[:2000]
    record_audit(actor, "wapu.reactivate", wapu, f"{wapu.code} reactivated" + (f": {note}" if note else ""),
                 details={"name": wapu.name, **({"note": note} if note else {})})
    notify(active_users(wapu_id=wapu.id), "wapu_reactivated", f"/wapus/{wapu.id}", wapu=wapu.name)
    return wapu


def _changed_fields(change: CompanyChange) -> str:
    names = {"name": "name", "address": "address", "npwp": "NPWP"}
    return ", ".join(names[field] for field, _, _ in change.changes())


def request_company_change(wapu: Wapu, actor, *, name: str, address: str, npwp: str, note: str = "") -> CompanyChange:
    """The WAPU's SPV asks to change its company name, address or NPWP; the distributor reviews it."""
    _require(actor, {Role.WAPU_SPV})
    if actor.wapu_id != wapu.id:
        raise ServiceError(_l("This belongs to another WAPU."), code="forbidden")
    errors, clean = {}, {}
    for key, value, limit in (("name", name, 200), ("address", address, 2000)):
        value = (value or "").strip()
        if not value:
            errors[key] = _l("This field is required.")
        elif len(value) > limit:
            errors[key] = _l("At most %(n)d characters.", n=limit)
        clean[key] = value
    try:
        clean["npwp"] = clean_npwp(npwp)
    except ServiceError as error:
        errors["npwp"] = error.message
    else:
        if clean["npwp"] not in npwp_forms(wapu.npwp) and npwp_taken(clean["npwp"], exclude_wapu_id=wapu.id):
            errors["npwp"] = _l("This NPWP is already registered to another company.")
    if not errors and (clean["name"], clean["address"], clean["npwp"]) == (wapu.name, wapu.address, wapu.npwp):
        errors["name"] = _l("Nothing changes: edit the name, the address or the NPWP.")
    if errors:
        raise ValidationErrors(errors)
    if db.session.execute(select(func.count()).select_from(CompanyChange).where(
            CompanyChange.wapu_id == wapu.id, CompanyChange.state == ChangeState.SUBMITTED)).scalar():
        raise ServiceError(_l("A change of company details is already waiting for review."), code="already_open")
    change = CompanyChange(wapu_id=wapu.id, old_name=wapu.name, old_address=wapu.address, old_npwp=wapu.npwp,
                           name=clean["name"], address=clean["address"], npwp=clean["npwp"],
                           note=(note or "").strip()[:2000], requested_by_id=actor.id, state=ChangeState.SUBMITTED)
    db.session.add(change)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise ServiceError(_l("A change of company details is already waiting for review."), code="already_open") from None
    fields = _changed_fields(change)
    record_audit(actor, "company_change.request", change, f"{wapu.code} asks to change {fields}",
                 details={"name": change.name, "npwp": format_npwp(change.npwp)})
    notify(active_users(REVIEWER_ROLES), "company_change_requested", f"/company-changes/{change.id}",
           wapu=wapu.name)
    return change


def decide_company_change(change: CompanyChange, actor, *, action: str, reason: str = "") -> CompanyChange:
    """A distributor reviewer approves (the WAPU's details change now; issued invoices keep theirs)
    or rejects (reason required) a change of company details."""
    _require(actor, REVIEWER_ROLES)
    if action not in ("approve", "reject"):
        raise ServiceError(_l("Unknown decision."))
    claimed = db.session.execute(
        update(CompanyChange).where(CompanyChange.id == change.id, CompanyChange.state == ChangeState.SUBMITTED)
        .values(state=ChangeState.APPROVED if action == "approve" else ChangeState.REJECTED)
    ).rowcount
    if not claimed:
        raise ServiceError(_l("This request has already been decided."), code="transition_not_allowed")
    db.session.refresh(change)
    wapu = change.wapu
    fields = _changed_fields(change)
    if action == "reject":
        change.decision_reason = _clean_reason(reason, "comment")
    else:
        if change.npwp not in npwp_forms(wapu.npwp) and npwp_taken(change.npwp, exclude_wapu_id=wapu.id):
            raise ServiceError(_l("This NPWP is already registered to another company."), field="comment")
        wapu.name, wapu.address, wapu.npwp = change.name, change.address, change.npwp
        change.decision_reason = (reason or "").strip()[:2000] or None
    change.decided_by_id, change.decided_at = actor.id, utcnow()
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:  # another WAPU took this taxpayer's NPWP at the same instant
        raise ServiceError(_l("This NPWP is already registered to another company."), field="comment") from None
    record_audit(actor, f"company_change.{action}", change, f"{wapu.code} {action} change of {fields}",
                 details={"name": change.name, "npwp": format_npwp(change.npwp),
                          **({"note": change.decision_reason} if change.decision_reason else {})})
    recipients = active_users({Role.WAPU_SPV, Role.WAPU_FIN}, wapu_id=wapu.id)
    if action == "approve":
        notify(recipients, "company_change_approved", f"/wapus/{wapu.id}", wapu=wapu.name, name=wapu.name,
               npwp=wapu.npwp_formatted)
    else:
        notify(recipients, "company_change_rejected", f"/wapus/{wapu.id}", wapu=wapu.name, reason=change.decision_reason)
    return change


def open_company_changes():
    """Changes of company details waiting for review, oldest first (the reviewers' queue)."""
    return db.session.execute(select(CompanyChange).where(CompanyChange.state == ChangeState.SUBMITTED)
                              .options(joinedload(CompanyChange.wapu)).order_by(CompanyChange.created_at)).scalars().all()


def contracts_ending(today, within=60) -> list[dict]:
    """WAPUs whose last contract ends within ``within`` days (soonest first), for the distributor.

    One query: a contract signed to end before today cannot be the one that ends last in the window."""
    last = {}
    for contract in db.session.execute(
            select(Contract).join(Wapu, Contract.wapu_id == Wapu.id).where(Contract.end_date >= today)
            .options(contains_eager(Contract.wapu))).scalars():
        if contract.wapu_id not in last or contract.last_day > last[contract.wapu_id].last_day:
            last[contract.wapu_id] = contract
    rows = [{"wapu": c.wapu, "contract": c, "last_day": c.last_day, "days": (c.last_day - today).days}
            for c in last.values() if 0 <= (c.last_day - today).days <= within]
    return sorted(rows, key=lambda row: (row["last_day"], row["wapu"].code))


def send_contract_expiry_warnings(today) -> int:
    """60, 30 and 7 days before a WAPU's last contract ends, tell its SPV and FIN and the distributor
    admins (bell and email), each threshold at most once per contract and end date. Safe to run again."""
    sent = 0
    admins = active_users({Role.DIST_ADMIN})
    for row in contracts_ending(today, max(EXPIRY_THRESHOLDS)):
        contract, wapu = row["contract"], row["wapu"]
        done = set(db.session.execute(select(ContractWarning.days).where(
            ContractWarning.contract_id == contract.id, ContractWarning.last_day == contract.last_day)).scalars())
        due = [days for days in EXPIRY_THRESHOLDS if row["days"] <= days and days not in done]
        if not due:
            continue
        try:
            with db.session.begin_nested():
                for days in due:
                    db.session.add(ContractWarning(contract_id=contract.id, wapu_id=wapu.id, days=days,
                                                   last_day=contract.last_day))
                db.session.flush()
        except IntegrityError:  # another scheduler warned it just now
            continue
        notify(active_users({Role.WAPU_SPV, Role.WAPU_FIN}, wapu_id=wapu.id) + list(admins), "contract_expiring",
               f"/wapus/{wapu.id}", number=contract.number, wapu=wapu.name, day=format_day(contract.last_day),
               days=row["days"])
        sent += 1
    return sent


# --- Coretax e-Faktur details: kind of collector, NITKU, kode transaksi ---------------------------

register_audit_action("wapu.coretax_details", _l("Coretax details changed"),
                      _l("kind %(kind)s, NITKU %(nitku)s, transaction code %(code)s"), kind=WapuKind)


def set_coretax_details(wapu: Wapu, actor, *, kind: str | None, nitku: str | None,
                        transaction_code: str | None) -> Wapu:
    """``DIST_ADMIN`` sets what a WAPU's tax invoices need in Coretax: its kind (the default kode
    transaksi: 02 for a government treasurer, 03 for other collectors), its NITKU (22 digits,
    starting with its 16-digit NPWP; empty until known) and, if it differs, its own kode transaksi."""
    _require(actor, {Role.DIST_ADMIN})
    errors = {}
    try:
        kind = WapuKind(kind) if kind else None
    except ValueError:
        errors["kind"] = _l("Choose one of the listed options.")
    transaction_code = transaction_code or None
    if transaction_code is not None and transaction_code not in CORETAX_TRANSACTION_CODES:
        errors["coretax_transaction_code"] = _l("Choose one of the listed options.")
    try:
        nitku = clean_nitku(nitku, wapu.npwp)
    except ServiceError as error:
        errors["nitku"] = error.message
    if errors:
        raise ValidationErrors(errors)
    before = (wapu.kind, wapu.nitku, wapu.coretax_transaction_code)
    wapu.kind, wapu.nitku, wapu.coretax_transaction_code = kind, nitku, transaction_code
    if before != (wapu.kind, wapu.nitku, wapu.coretax_transaction_code):
        record_audit(actor, "wapu.coretax_details", wapu,
                     f"{wapu.code}: kind {kind.value if kind else '-'}, NITKU {nitku or '-'}, "
                     f"code {wapu.transaction_code or '-'}",
                     details={"kind": kind.value if kind else "–", "nitku": nitku or "–",
                              "code": wapu.transaction_code or "–"})
    return wapu
