"""Filters of the audit log and of the scheduled jobs' runs (GET forms: no CSRF, they change nothing)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Optional

from scm.core.models import JobOutcome


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    action = StringField(_l("Action"), validators=[Optional()])
    actor = StringField(_l("Actor"), validators=[Optional()])
    object_type = StringField(_l("Object"), validators=[Optional()])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])


class JobRunFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    job = SelectField(_l("Job"), default="")  # choices: the registered jobs, set per request
    outcome = SelectField(_l("Outcome"), default="", choices=[("", _l("All outcomes"))] + JobOutcome.choices())
