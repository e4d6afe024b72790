"""Field rules of a registration, built on the field's libraries.

Each ``clean_*`` returns the normalised value or raises ``ServiceError`` with a message for the
user. Forms and services both use them, so the rules live in one place.
"""

from decimal import Decimal, InvalidOperation

import phonenumbers
from flask_babel import lazy_gettext as _l
from stdnum.exceptions import InvalidChecksum, InvalidLength, ValidationError
from stdnum.id import npwp as stdnum_npwp

from scm.core.errors import ServiceError

LATITUDE_RANGE = (Decimal("-11"), Decimal("6"))
LONGITUDE_RANGE = (Decimal("95"), Decimal("141"))
_MOBILE_TYPES = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


def clean_npwp(value: str, field="npwp") -> str:
    """NPWP digits (15 legacy or 16 since 2024), validated by ``stdnum.id.npwp``."""
    if not (value or "").strip():
        raise ServiceError(_l("This field is required."), field=field)
    try:
        return stdnum_npwp.validate(value or "")
    except InvalidChecksum:
        raise ServiceError(
            _l("This NPWP has a wrong check digit: check the number on the NPWP card."), field=field
        ) from None
    except InvalidLength:
        raise ServiceError(_l("An NPWP has 15 or 16 digits."), field=field) from None
    except ValidationError:
        raise ServiceError(_l("This is not a valid NPWP."), field=field) from None


def format_npwp(digits: str) -> str:
    """An NPWP as it is written: ``99.999.999.9-999.999`` (15 digits, the legacy form) or
    ``0999 9999 9999 9999`` (16 digits, in four groups of four as on DJP's cards)."""
    if not digits:
        return ""
    if len(digits) == 15:
        return stdnum_npwp.format(digits)
    digits = stdnum_npwp.compact(digits)
    if len(digits) == 16 and digits.isdigit():
        return " ".join(digits[i:i + 4] for i in range(0, 16, 4))
    return digits


def clean_nib(value: str, field="nib") -> str:
    """NIB: exactly 13 digits (it has no public check digit)."""
    digits = "".join((value or "").split())
    if not digits.isdigit() or len(digits) != 13:
        raise ServiceError(_l("An NIB is exactly 13 digits."), field=field)
    return digits


def clean_mobile(value: str, field) -> str:
    """An Indonesian mobile number in any usual spelling, as E.164 (``+62812…``)."""
    try:
        number = phonenumbers.parse((value or "").strip(), "ID")
    except phonenumbers.NumberParseException:
        raise ServiceError(_l("Enter a mobile number, e.g. 0812 3456 7890."), field=field) from None
    if (
        not phonenumbers.is_valid_number(number)
        or phonenumbers.region_code_for_number(number) != "ID"
        or phonenumbers.number_type(number) not in _MOBILE_TYPES
    ):
        raise ServiceError(_l("Enter a valid Indonesian mobile number, e.g. 0812 3456 7890."), field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_coordinate(value, field, bounds):
    """An optional decimal coordinate within ``bounds`` (Indonesia); None when empty."""
    if value is None or str(value).strip() == "":
        return None
    try:
        number = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        raise ServiceError(_l("Enter a number, e.g. -6.2088."), field=field) from None
    low, high = bounds
    if not number.is_finite() or not low <= number <= high:
        if field == "latitude":
            raise ServiceError(_l("Latitude must be between -11 and 6 (Indonesia)."), field=field)
        raise ServiceError(_l("Longitude must be between 95 and 141 (Indonesia)."), field=field)
    return number.quantize(Decimal("0.000001"))


def clean_nitku(value: str, npwp: str, field="nitku") -> str | None:
    """A NITKU: 22 digits, the WAPU's 16-digit NPWP and a 6-digit place of business (``000000``
    for the head office); separators are ignored; None when empty (not set yet)."""
    digits = "".join(ch for ch in (value or "") if ch not in " .-")
    if not digits:
        return None
    if not digits.isdigit() or len(digits) != 22:
        raise ServiceError(_l("A NITKU is exactly 22 digits: the 16-digit NPWP and 6 digits for the place of "
                              "business."), field=field)
    npwp16 = "0" + npwp if len(npwp) == 15 else npwp
    if digits[:16] != npwp16:
        raise ServiceError(_l("A NITKU starts with the WAPU's 16-digit NPWP (%(npwp)s).", npwp=npwp16), field=field)
    return digits
