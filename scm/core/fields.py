"""Form fields for numbers as Indonesians type them: ``5.000``, ``1.500.000``, ``Rp 1.500.000``."""

import re

from flask_babel import lazy_gettext as _l
from wtforms import IntegerField
from wtforms.widgets import TextInput

_GROUPED = r"\d{1,3}(\.\d{3})+|\d+"


class WholeNumberField(IntegerField):
    """A whole number written with Indonesian thousands dots (``5.000``) or plain digits (``5000``).

    A text input (a number input refuses the dots), with the numeric keyboard on phones.
    ``signed`` fields also take a leading minus (a quota adjustment).
    """

    widget = TextInput()
    message = _l("Enter a whole number, e.g. 5.000.")

    def __init__(self, label=None, validators=None, signed=False, **kwargs):
        render_kw = {"inputmode": "text" if signed else "numeric", **(kwargs.pop("render_kw", None) or {})}
        super().__init__(label, validators, render_kw=render_kw, **kwargs)
        self.signed = signed

    def _clean(self, text):
        return text.replace(" ", "")

    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        text = self._clean(valuelist[0].strip())
        sign = ""
        if self.signed and text[:1] in "+-":
            sign, text = text[0], text[1:]
        if not re.fullmatch(_GROUPED, text):
            self.data = None
            raise ValueError(self.message)
        self.data = int(sign + text.replace(".", ""))

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)


class RupiahField(WholeNumberField):
    """Whole Rupiah as people type it: ``1.500.000``, ``Rp 1.500.000`` or ``1500000``."""

    message = _l("Give a whole amount in Rupiah, e.g. 1.500.000.")

    def _clean(self, text):
        return re.sub(r"^rp\.?", "", text, flags=re.IGNORECASE).replace(" ", "")
