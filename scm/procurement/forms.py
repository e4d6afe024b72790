"""Purchase request form, decision form and list filters."""

from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from scm.core.fields import WholeNumberField
from scm.core.forms import Form
from scm.procurement.models import POState, PRState

REQUIRED = _l("This field is required.")


class PurchaseRequestForm(Form):
    quantity = WholeNumberField(_l("Quantity of e-Meterai"), validators=[InputRequired(REQUIRED)],
                                render_kw={"placeholder": "5.000"})
    needed_by = DateField(_l("Needed by (optional)"), validators=[Optional()])
    purpose = TextAreaField(_l("Purpose / note"), validators=[Length(max=1000)])


class DecisionForm(Form):
    comment = TextAreaField(_l("Reason / note"), validators=[Length(max=2000)])


def _state_choices(states):
    return [("", _l("All states"))] + [(s.value, s.label) for s in states]


class ListFilterForm(Form):
    class Meta:
        csrf = False  # a GET filter changes nothing

    state = SelectField(_l("State"), validators=[Optional()])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])

    @classmethod
    def for_states(cls, states, formdata):
        form = cls(formdata)
        form.state.choices = _state_choices(states)
        return form


PR_STATES = list(PRState)
PO_STATES = list(POState)
