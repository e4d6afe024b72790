"""Stamping history filters and the usage-report upload."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from scm.core.forms import Form


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


class UsageImportForm(Form):
    """The distributor admin's upload of a usage report."""

    file = FileField(_l("Usage report (CSV or XLSX)"), validators=[FileRequired(_l("Choose a file to upload."))],
                     render_kw={"accept": ".csv,.xlsx,text/csv,"
                                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})


class UsageApplyForm(Form):
    """Apply the file held under ``token`` (after its preview)."""

    token = HiddenField(validators=[DataRequired()])
