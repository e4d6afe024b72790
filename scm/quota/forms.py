"""The distributor admin's quota adjustment form."""

from flask_babel import lazy_gettext as _l
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from scm.core.fields import WholeNumberField
from scm.core.forms import Form

REQUIRED = _l("This field is required.")


class AdjustForm(Form):
    delta = WholeNumberField(_l("Change (negative to take away)"), validators=[DataRequired(REQUIRED)], signed=True,
                             render_kw={"placeholder": "-1.000"})
    reason = StringField(_l("Reason"), validators=[DataRequired(REQUIRED), Length(max=200)])
