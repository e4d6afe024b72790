"""Language and time zone choice: Bahasa Indonesia first, English on request; always WIB."""

from flask import current_app, session


def select_locale():
    lang = session.get("lang")
    if lang in current_app.config["LANGUAGES"]:
        return lang
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone():
    return "Asia/Jakarta"
