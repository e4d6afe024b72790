"""The registration form (public, correction and on-behalf) and the reviewer's decision form."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import Length, Optional

from scm.core.fields import RupiahField
from scm.core.forms import Form
from scm.registration.models import CORETAX_TRANSACTION_CODES, ContactKind, ContractKind, WapuKind
from scm.registration.services import ContactInput, RegistrationInput

DATE_ERROR = _l("Enter a date (dd/mm/yyyy).")


class RegistrationForm(Form):
    name = StringField(_l("Company name"))
    address = TextAreaField(_l("Address"))
    latitude = StringField(_l("Latitude (optional)"), description=_l("e.g. -6.208800"))
    longitude = StringField(_l("Longitude (optional)"), description=_l("e.g. 106.845600"))
    npwp = StringField(_l("NPWP"), description=_l("15 digits (99.999.999.9-999.999) or 16 digits"))
    nib = StringField(_l("NIB (TDP)"), description=_l("13 digits"))

    spv_name = StringField(_l("Name"))
    spv_email = EmailField(_l("Email"))
    spv_phone = TelField(_l("Mobile number"), description=_l("e.g. 0812 3456 7890"))
    fin_name = StringField(_l("Name"))
    fin_email = EmailField(_l("Email"))
    fin_phone = TelField(_l("Mobile number"), description=_l("e.g. 0812 3456 7890"))
    staff_name = StringField(_l("Name"))
    staff_email = EmailField(_l("Email"))
    staff_phone = TelField(_l("Mobile number"), description=_l("e.g. 0812 3456 7890"))

    contract_number = StringField(_l("Contract number"))
    contract_start = DateField(_l("Contract start"), validators=[Optional()])
    contract_end = DateField(_l("Contract end"), validators=[Optional()])
    contract_file = FileField(_l("Contract (PDF, at most 10 MB)"), render_kw={"accept": "application/pdf,.pdf"})
    held_upload = HiddenField()

    def to_input(self) -> RegistrationInput:
        contacts = {
            kind: ContactInput(
                name=self[f"{kind.value.lower()}_name"].data or "",
                email=self[f"{kind.value.lower()}_email"].data or "",
                phone=self[f"{kind.value.lower()}_phone"].data or "",
            )
            for kind in ContactKind
        }
        return RegistrationInput(
            name=self.name.data, address=self.address.data, latitude=self.latitude.data,
            longitude=self.longitude.data, npwp=self.npwp.data, nib=self.nib.data, contacts=contacts,
            contract_number=self.contract_number.data, contract_start=self.contract_start.data,
            contract_end=self.contract_end.data,
        )

    def fill_from(self, reg) -> None:
        """Pre-fill from a registration (the correction form)."""
        for name in ("name", "address", "nib", "contract_number", "contract_start", "contract_end"):
            self[name].data = getattr(reg, name)
        self.npwp.data = reg.npwp_formatted
        self.latitude.data = "" if reg.latitude is None else str(reg.latitude)
        self.longitude.data = "" if reg.longitude is None else str(reg.longitude)
        for contact in reg.contacts:
            prefix = contact.kind.value.lower()
            self[f"{prefix}_name"].data = contact.name
            self[f"{prefix}_email"].data = contact.email
            self[f"{prefix}_phone"].data = contact.phone

    def show_errors(self, errors: dict) -> None:
        for name, message in errors.items():
            field = self._fields.get(name)
            if field is None:
                self.form_errors.append(message)
            elif not field.errors:  # a field shows one message: the first problem found
                field.errors = [message]


class DecisionForm(Form):
    comment = TextAreaField(_l("Reason / note"), validators=[Length(max=2000)])


class ContractForm(Form):
    """``DIST_ADMIN`` adds a renewal or an amendment to a WAPU."""

    number = StringField(_l("Contract number"))
    kind = SelectField(_l("Kind"), choices=[(ContractKind.RENEWAL.value, ContractKind.RENEWAL.label),
                                            (ContractKind.AMENDMENT.value, ContractKind.AMENDMENT.label)])
    start_date = DateField(_l("Contract start"), validators=[Optional()])
    end_date = DateField(_l("Contract end"), validators=[Optional()])
    unit_price = RupiahField(_l("Unit price (optional)"), validators=[Optional()],
                             description=_l("Price of one e-Meterai under this contract; empty: the distributor's price."))
    supersede = BooleanField(_l("Supersedes the contract it overlaps, from its start date"))
    contract_file = FileField(_l("Contract (PDF, at most 10 MB)"), render_kw={"accept": "application/pdf,.pdf"})
    held_upload = HiddenField()


class TerminateForm(Form):
    from_date = DateField(_l("No longer applies from"), validators=[Optional()])
    reason = TextAreaField(_l("Reason"), validators=[Length(max=2000)])


class StatusForm(Form):
    reason = TextAreaField(_l("Reason / note"), validators=[Length(max=2000)])


class CompanyChangeForm(Form):
    name = StringField(_l("Company name"))
    address = TextAreaField(_l("Address"))
    npwp = StringField(_l("NPWP"), description=_l("15 digits (99.999.999.9-999.999) or 16 digits"))
    note = TextAreaField(_l("Note for the distributor (optional)"), validators=[Length(max=2000)])


class CoretaxDetailsForm(Form):
    """``DIST_ADMIN`` sets what the WAPU's tax invoices need in Coretax."""

    kind = SelectField(_l("Kind of VAT collector"),
                       choices=[("", _l("— not set —"))] + [(k.value, k.label) for k in WapuKind])
    nitku = StringField(_l("NITKU"), validators=[Length(max=40)],
                        description=_l("22 digits: the 16-digit NPWP and 6 digits for the place of business "
                                       "(000000 for the head office)"))
    coretax_transaction_code = SelectField(
        _l("Transaction code (kode transaksi)"),
        choices=[("", _l("By its kind (02 for a government treasurer, else 03)"))]
        + list(CORETAX_TRANSACTION_CODES.items()))
