"""Rupiah, number and WIB formatting in the user's language (Babel)."""

import re
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.numbers import get_group_symbol, get_minus_sign_symbol
from flask_babel import get_locale
from markupsafe import Markup, escape

WIB = ZoneInfo("Asia/Jakarta")


def _locale():
    try:
        return str(get_locale() or "id")
    except RuntimeError:  # outside a request
        return "id"


@lru_cache(maxsize=16)
def _number_symbols(locale: str) -> tuple[str, str]:
    """The locale's group separator and minus sign (Babel's, read once per locale)."""
    return get_group_symbol(locale), get_minus_sign_symbol(locale)


def _grouped(value: int, locale: str) -> str:
    """``format_decimal(value, format="#,##0", locale=locale)`` for a whole number, without Babel's
    pattern machinery on every call (a page of 400 WAPUs formats thousands of numbers)."""
    group, minus = _number_symbols(locale)
    text = f"{abs(value):,}"
    if group != ",":
        text = text.replace(",", group)
    return minus + text if value < 0 else text


def format_rupiah(amount) -> str:
    """Integer Rupiah: ``Rp10.000`` (Indonesian) or ``Rp10,000`` (English); negative as ``-Rp…``."""
    if amount is None:
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp{_grouped(abs(int(amount)), _locale())}"


def format_number(value) -> str:
    """A whole number with the locale's grouping: ``1.000`` in Indonesian."""
    if value is None:
        return ""
    return _grouped(int(value), _locale())


def to_wib(moment: datetime) -> datetime:
    return moment.astimezone(WIB)


def today_wib() -> date:
    """Today's date in Jakarta (contract validity and billing months are WIB calendar days)."""
    return datetime.now(WIB).date()


def format_wib(moment: datetime | None, with_seconds=False) -> str:
    """A UTC timestamp shown in Jakarta time: ``23 Nov 2026 07.56 WIB`` (English: ``07:56``)."""
    if moment is None:
        return ""
    locale = _locale()
    sep = "." if locale == "id" else ":"  # Indonesian writes 20.24, English 20:24
    pattern = f"d MMM yyyy HH{sep}mm{sep}ss" if with_seconds else f"d MMM yyyy HH{sep}mm"
    return f"{_format_datetime(moment, pattern, tzinfo=WIB, locale=locale)} WIB"


def format_day(day: date | None) -> str:
    """A calendar date: ``23 November 2026``."""
    if day is None:
        return ""
    return _format_date(day, "d MMMM yyyy", locale=_locale())


def format_month(day: date | None) -> str:
    """A billing period: ``November 2026``."""
    if day is None:
        return ""
    return _format_date(day, "MMMM yyyy", locale=_locale())


def format_phone(e164: str | None) -> str:
    """E.164 as Indonesians write it: ``+62 812-3456-7890``."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, "ID")
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def upper_first(text) -> str:
    """Capitalise the first letter only (Jinja's ``capitalize`` lowercases the rest: 'SPV')."""
    text = str(text or "")
    return text[:1].upper() + text[1:]


def code_spans(text) -> Markup:
    """Text with Markdown code spans (`x`) shown as <code>x</code>; everything else escaped."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text or ""))))


def register_filters(app):
    app.jinja_env.filters.update(
        upper_first=upper_first,
        combine_state=lambda args, state: {**args, "state": state},
        rupiah=format_rupiah, number=format_number, wib=format_wib, day=format_day, month=format_month,
        phone=format_phone, code_spans=code_spans,
    )
