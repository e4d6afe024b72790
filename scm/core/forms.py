"""Core forms: the audit log filter and the language switch."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, StringField
from wtforms.validators import Optional


class LanguageForm(FlaskForm):
    lang = HiddenField()
    next = HiddenField()


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    action = StringField(_l("Action"), validators=[Optional()])
    actor = StringField(_l("Actor"), validators=[Optional()])
    object_type = StringField(_l("Object"), validators=[Optional()])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])
