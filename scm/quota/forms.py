"""The distributor admin's quota adjustment form."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, Length

REQUIRED = _l("This field is required.")


class AdjustForm(FlaskForm):
    delta = IntegerField(_l("Change (negative to take away)"), validators=[DataRequired(REQUIRED)])
    reason = StringField(_l("Reason"), validators=[DataRequired(REQUIRED), Length(max=200)])
