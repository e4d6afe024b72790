"""API token form."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

REQUIRED = _l("This field is required.")


class TokenForm(FlaskForm):
    name = StringField(_l("Name (e.g. the stamping system)"), validators=[DataRequired(REQUIRED), Length(max=100)])
    wapu_id = SelectField(_l("WAPU"), coerce=int, validate_choice=False)
