"""Filters of the audit log and of the scheduled jobs' runs (GET forms: no CSRF, they change nothing)."""

from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Optional

from scm.core.forms import Form
from scm.core.models import JobOutcome


class AuditFilterForm(Form):
    class Meta:
        csrf = False  # a GET filter changes nothing

    action = StringField(_l("Action"), validators=[Optional()], render_kw={"placeholder": "invoice."})
    actor = StringField(_l("Actor"), validators=[Optional()])
    object = StringField(_l("Object"), validators=[Optional()], render_kw={"placeholder": "W0001, PO/…, INV/…"})
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])


class JobRunFilterForm(Form):
    class Meta:
        csrf = False  # a GET filter changes nothing

    job = SelectField(_l("Job"), default="")  # choices: the registered jobs, set per request
    outcome = SelectField(_l("Outcome"), default="", choices=[("", _l("All outcomes"))] + JobOutcome.choices())
