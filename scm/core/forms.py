"""The base of every form, and the language switch."""

from flask_babel import get_translations
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import HiddenField


class _CatalogTranslations:
    """WTForms' own messages ("Not a valid date value.", "Field cannot be longer than …") looked
    up in the application's catalog: WTForms ships no Indonesian one."""

    def gettext(self, string):
        return _(string)

    def ngettext(self, singular, plural, n):
        return get_translations().ungettext(singular, plural, n)


class Form(FlaskForm):
    """Every form of the application derives from this one (CSRF from Flask-WTF)."""

    class Meta:
        def get_translations(self, form):
            return _CatalogTranslations()


class LanguageForm(Form):
    lang = HiddenField()
    next = HiddenField()
