"""API token form."""

from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from scm.core.forms import Form

REQUIRED = _l("This field is required.")


class TokenForm(Form):
    name = StringField(_l("Name (e.g. the stamping system)"), validators=[DataRequired(REQUIRED), Length(max=100)])
    wapu_id = SelectField(_l("WAPU"), coerce=int, validate_choice=False)
