"""Login, password and user-management forms."""

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from scm.auth.models import DISTRIBUTOR_ROLES, Role
from scm.core.forms import Form

REQUIRED = _l("This field is required.")


class LoginForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(REQUIRED), Length(max=255)])
    password = PasswordField(_l("Password"), validators=[DataRequired(REQUIRED)])


class ChangePasswordForm(Form):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(REQUIRED)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(REQUIRED)])
    confirm_password = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(REQUIRED), EqualTo("new_password", _l("The passwords do not match."))],
    )


class DistributorUserForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(REQUIRED), Length(max=200)])
    email = EmailField(_l("Email"), validators=[DataRequired(REQUIRED), Length(max=255)])
    role = SelectField(
        _l("Role"),
        choices=[(r.value, r.label) for r in Role if r in DISTRIBUTOR_ROLES],
        validators=[DataRequired(REQUIRED)],
    )


class ConfirmForm(Form):
    """An empty form: a button that changes something carries a CSRF token through it."""


class ForgotPasswordForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(REQUIRED), Length(max=255)])


class ResetPasswordForm(Form):
    new_password = PasswordField(_l("New password"), validators=[DataRequired(REQUIRED)])
    confirm_password = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(REQUIRED), EqualTo("new_password", _l("The passwords do not match."))],
    )
