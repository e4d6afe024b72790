"""Billing forms: payments, credit notes, settings, contract terms and the invoice filter."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from scm.billing.models import FirstMonth, InvoiceState, MinimumPolicy
from scm.core.fields import RupiahField, WholeNumberField
from scm.core.forms import Form

REQUIRED = _l("This field is required.")


class ConfirmForm(Form):
    """A button that only needs the CSRF token (run billing, issue)."""


class PaymentForm(Form):
    paid_on = DateField(_l("Payment date"), validators=[InputRequired(REQUIRED)])
    amount = RupiahField(_l("Amount (Rp)"), validators=[InputRequired(REQUIRED)], render_kw={"placeholder": "1.500.000"})
    reference = StringField(_l("Transfer reference"), validators=[InputRequired(REQUIRED), Length(max=100)])


class CreditNoteForm(Form):
    credit_amount = RupiahField(_l("Amount to credit (Rp)"), validators=[InputRequired(REQUIRED)])
    reason = TextAreaField(_l("Reason for the correction"), validators=[InputRequired(REQUIRED), Length(max=1000)])


class SettingsForm(Form):
    distributor_name = StringField(_l("Distributor name"), validators=[InputRequired(REQUIRED), Length(max=200)])
    distributor_address = TextAreaField(_l("Address"), validators=[InputRequired(REQUIRED), Length(max=500)])
    distributor_npwp = StringField("NPWP", validators=[InputRequired(REQUIRED), Length(max=30)])
    bank_name = StringField(_l("Bank"), validators=[InputRequired(REQUIRED), Length(max=100)])
    bank_account_number = StringField(_l("Account number"), validators=[InputRequired(REQUIRED), Length(max=40)])
    bank_account_name = StringField(_l("Account holder"), validators=[InputRequired(REQUIRED), Length(max=200)])
    unit_price = RupiahField(_l("Unit price per e-Meterai (Rp)"), validators=[InputRequired(REQUIRED)])
    service_fee_per_unit = RupiahField(_l("Service fee per e-Meterai (Rp, 0 for none)"), validators=[Optional()])
    ppn_rate = WholeNumberField(_l("PPN rate on the service fee (%)"), validators=[InputRequired(REQUIRED),
                                                                             NumberRange(0, 100)])
    ppn_dpp_other_value = BooleanField(_l("PPN on a DPP of 11/12 of the fee (other value, from 2025)"))
    invoice_number_format = StringField(_l("Invoice number format"), validators=[InputRequired(REQUIRED)])
    credit_note_number_format = StringField(_l("Credit note number format"), validators=[InputRequired(REQUIRED)])
    warning_days = StringField(_l("Minimum-use warning days (day of month)"), validators=[InputRequired(REQUIRED)])


class TermsForm(Form):
    effective_from = DateField(_l("In effect from (month)"), format="%Y-%m", validators=[InputRequired(REQUIRED)],
                               render_kw={"type": "month"})
    monthly_minimum = WholeNumberField(_l("Monthly minimum (e-Meterai)"), validators=[InputRequired(REQUIRED)],
                                       render_kw={"placeholder": "1.000"})
    minimum_policy = SelectField(_l("When the minimum is not reached"),
                                 choices=[(p.value, p.label) for p in MinimumPolicy])
    first_month = SelectField(_l("A partial first month"), choices=[(f.value, f.label) for f in FirstMonth])
    due_day = WholeNumberField(_l("Payment due on this day of the following month"),
                               validators=[InputRequired(REQUIRED)])
    note = TextAreaField(_l("Note (e.g. the contract amendment)"), validators=[Length(max=1000)])


class InvoiceFilterForm(Form):
    class Meta:
        csrf = False  # a GET filter changes nothing

    month = StringField(_l("Month"), validators=[Optional()], render_kw={"type": "month"})
    state = SelectField(_l("State"), validators=[Optional()],
                        choices=[("", _l("All states"))] + [(s.value, s.label) for s in InvoiceState])
    wapu = StringField("WAPU", validators=[Optional(), Length(max=200)])


class StatementForm(Form):
    """The statement of account's WAPU (the distributor picks one) and date range (a GET form)."""

    class Meta:
        csrf = False  # a GET filter changes nothing

    wapu = SelectField(_l("WAPU"), default="", validate_choice=False)
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])


class DunningStepForm(Form):
    name = StringField(_l("Name of the step"), validators=[InputRequired(REQUIRED), Length(max=100)],
                       render_kw={"placeholder": "Pemberitahuan pertama"})
    offset_days = WholeNumberField(_l("Days from the due date (negative: before it)"), signed=True,
                                   validators=[InputRequired(REQUIRED)], render_kw={"placeholder": "-7"})
    subject = StringField(_l("Subject of the mail"), validators=[InputRequired(REQUIRED), Length(max=200)])
    body = TextAreaField(_l("Text of the mail"), validators=[InputRequired(REQUIRED), Length(max=5000)])


class DisputeForm(Form):
    text_field = "reason"
    reason = TextAreaField(_l("Reason for the dispute"), validators=[InputRequired(REQUIRED), Length(max=1000)])


class ResolveDisputeForm(Form):
    text_field = "resolution"
    resolution = TextAreaField(_l("How it was resolved"), validators=[InputRequired(REQUIRED), Length(max=1000)])

class CoretaxExportForm(Form):
    month = StringField(_l("Month"), validators=[InputRequired(REQUIRED)], render_kw={"type": "month"})


class FakturNumberForm(Form):
    faktur_number = StringField(_l("Faktur number (from Coretax)"), validators=[Length(max=40)],
                                render_kw={"placeholder": "04002500000000123", "inputmode": "numeric"})

class BankUploadForm(Form):
    """A bank statement: its format (the bank), the account where the file does not name it, the file."""

    bank_format = SelectField(_l("Format (bank)"), validators=[InputRequired(REQUIRED)])
    account = StringField(_l("Account number (if the file does not name it)"), validators=[Length(max=40)])
    statement = FileField(_l("Bank statement (CSV or MT940)"),
                          validators=[FileRequired(_l("Choose a file to upload."))])


class UnmatchForm(Form):
    reason = StringField(_l("Reason for the reversal"), validators=[InputRequired(REQUIRED), Length(max=500)])
