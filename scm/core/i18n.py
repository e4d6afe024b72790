"""Language and time zone choice: Bahasa Indonesia first, English on request; always WIB."""

from flask import current_app, has_request_context, request, session
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext as _ln


def select_locale():
    if not has_request_context():  # commands and jobs speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if request.path.startswith("/api/v1/"):
        return "en"  # the API, its problems and its documentation are for developers: one stable language
    lang = session.get("lang")
    if lang in current_app.config["LANGUAGES"]:
        return lang
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone():
    return "Asia/Jakarta"


# Messages that WTForms and Flask-WTF produce themselves; listed here so that `make
# extract-messages` keeps them in the catalog. `scm.core.forms.Form` makes WTForms look them up
# there (WTForms ships no Indonesian catalog of its own).
WTFORMS_MESSAGES = (
    _l("Not a valid date value."),
    _l("This field is required."),
    _l("Field must be equal to %(other_name)s."),
    _l("Invalid email address."),
    _l("The CSRF token is missing."),
    _l("The CSRF token is invalid."),
    _l("The CSRF session token is missing."),
    _l("The CSRF token has expired."),
    _l("Not a valid choice."),
    _l("Not a valid integer value."),
    _l("Not a valid decimal value."),
    _l("Not a valid float value."),
    _l("Not a valid datetime value."),
    _l("Invalid input."),
    _l("Number must be at least %(min)s."),
    _l("Number must be at most %(max)s."),
    _l("Number must be between %(min)s and %(max)s."),
    _l("Field must be between %(min)d and %(max)d characters long."),
    _ln("Field must be at least %(min)d character long.", "Field must be at least %(min)d characters long.", 1),
    _ln("Field cannot be longer than %(max)d character.", "Field cannot be longer than %(max)d characters.", 1),
    _ln("Field must be exactly %(max)d character long.", "Field must be exactly %(max)d characters long.", 1),
)
