"""Stamping history filters and the usage-report upload."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from scm.core.forms import Form
from scm.stamping.usage_import import REASON_MAX


class UsageFilterForm(Form):
    """Filters of the stamping history (a GET form)."""

    class Meta:
        csrf = False

    state = SelectField(_l("State"), validators=[Optional()])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])
    document_type = SelectField(_l("Document type"), validators=[Optional()])
    serial = StringField(_l("Serial"), validators=[Optional(), Length(max=64)])
    wapu = StringField(_l("WAPU code"), validators=[Optional(), Length(max=20)])


class OldUsageMixin:
    """Importing stamps older than the look-back, deliberately: only with a reason (the reason field
    has no ``Optional()``, which would stop the chain before this check)."""

    def validate_reason(self, field):
        if self.allow_old.data and not (field.data or "").strip():
            raise ValidationError(_l("Give the reason for importing stamps older than the look-back."))


class UsageImportForm(OldUsageMixin, Form):
    """The distributor admin's upload of a usage report."""

    file = FileField(_l("Usage report (CSV or XLSX)"), validators=[FileRequired(_l("Choose a file to upload."))],
                     render_kw={"accept": ".csv,.xlsx,text/csv,"
                                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    allow_old = BooleanField(_l("Also import stamps older than the look-back (deliberately)"))
    reason = TextAreaField(_l("Reason for importing older stamps"), validators=[Length(max=REASON_MAX)],
                           render_kw={"rows": 2})


class UsageApplyForm(OldUsageMixin, Form):
    """Apply the file held under ``token`` (after its preview), with the override chosen on upload."""

    token = HiddenField(validators=[DataRequired()])
    allow_old = BooleanField()  # sent as a hidden input when chosen on upload
    reason = HiddenField(validators=[Length(max=REASON_MAX)])
