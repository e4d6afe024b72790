"""Language and time zone choice: Bahasa Indonesia first, English on request; always WIB."""

from flask import current_app, has_request_context, request, session
from flask_babel import lazy_gettext as _l


def select_locale():
    if not has_request_context():  # commands and jobs speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if request.path.startswith("/api/v1/") and request.path != "/api/v1/docs":
        return "en"  # API problems are for machines and their developers: one stable language
    lang = session.get("lang")
    if lang in current_app.config["LANGUAGES"]:
        return lang
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone():
    return "Asia/Jakarta"


# Messages that WTForms and Flask-WTF produce themselves; listed here so that `make
# extract-messages` keeps them in the catalog (Flask-WTF translates them through Flask-Babel).
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
)
