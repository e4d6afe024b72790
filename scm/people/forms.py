"""A WAPU user's form (new or contact details) and the stand-in form."""

from flask_babel import lazy_gettext as _l
from wtforms import DateField, EmailField, SelectField, StringField, TelField
from wtforms.validators import DataRequired, InputRequired, Length

from scm.core.forms import Form

REQUIRED = _l("This field is required.")


class ContactForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(REQUIRED), Length(max=200)])
    email = EmailField(_l("Email"), validators=[DataRequired(REQUIRED), Length(max=255)])
    phone = TelField(_l("Mobile number"), validators=[DataRequired(REQUIRED), Length(max=40)],
                     description=_l("e.g. 0812 3456 7890"))


class WapuUserForm(ContactForm):
    role = SelectField(_l("Role"), validators=[DataRequired(REQUIRED)])


class StandInForm(Form):
    substitute = SelectField(_l("Stand-in"), coerce=int, validators=[InputRequired(REQUIRED)])
    start_date = DateField(_l("From"), validators=[InputRequired(REQUIRED)])
    end_date = DateField(_l("Until (included)"), validators=[InputRequired(REQUIRED)])
