"""WAPU registration: submit, review (approve / reject / send back), correct and resubmit."""

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from scm.auth.models import REVIEWER_ROLES, Role, User
from scm.auth.services import check_email, create_user, email_in_use
from scm.core.database import next_number, utcnow
from scm.core.errors import ServiceError, ValidationErrors
from scm.core.formatting import to_wib
from scm.core.services import queue_email, record_audit, register_audit_action
from scm.core.uploads import Upload, store_upload
from scm.extensions import db
from scm.registration.models import (
    APPLICANT,
    REGISTRATION_WORKFLOW,
    ContactKind,
    Contract,
    Registration,
    RegistrationContact,
    RegistrationEvent,
    RegistrationState,
    Wapu,
)
from scm.registration.validators import (
    LATITUDE_RANGE,
    LONGITUDE_RANGE,
    clean_coordinate,
    clean_mobile,
    clean_nib,
    clean_npwp,
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


def npwp_taken(npwp: str, exclude_id=None) -> bool:
    """An NPWP registers once: taken by a WAPU or by a registration that was not rejected."""
    open_regs = select(func.count()).select_from(Registration).where(
        Registration.npwp == npwp, Registration.state != RegistrationState.REJECTED
    )
    if exclude_id is not None:
        open_regs = open_regs.where(Registration.id != exclude_id)
    wapus = select(func.count()).select_from(Wapu).where(Wapu.npwp == npwp)
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
    reviewers = db.session.execute(
        select(User).where(User.role.in_(REVIEWER_ROLES), User.active.is_(True))
    ).scalars()
    for reviewer in reviewers:
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
    if db.session.execute(select(func.count()).select_from(Wapu).where(Wapu.npwp == reg.npwp)).scalar():
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
    """The registration part of a distributor's dashboard: registrations per state."""
    return {"registration_counts": registration_counts()} if user.is_distributor else {}


def list_wapus():
    return db.session.execute(select(Wapu).order_by(Wapu.code)).scalars().all()
