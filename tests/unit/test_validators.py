"""Field rules: NPWP, NIB, mobile numbers, coordinates, passwords."""

from decimal import Decimal

import pytest

from scm.core.errors import ServiceError
from scm.registration.validators import (
    LATITUDE_RANGE,
    LONGITUDE_RANGE,
    clean_coordinate,
    clean_mobile,
    clean_nib,
    clean_npwp,
    format_npwp,
)


@pytest.mark.parametrize(
    "given, digits, formatted",
    [
        # Published example NPWPs with a correct check digit (9th digit, Luhn over the first eight).
        ("01.300.066.6-091.000", "013000666091000", "01.300.066.6-091.000"),
        ("013000666091000", "013000666091000", "01.300.066.6-091.000"),
        ("01 300 066 6 091 000", "013000666091000", "01.300.066.6-091.000"),
        # 16 digits since 2024: a leading 0 and the old 15, written in four groups of four.
        ("0013000666091000", "0013000666091000", "0013 0006 6609 1000"),
        ("0013 0006 6609 1000", "0013000666091000", "0013 0006 6609 1000"),
        # 16 digits: a NIK (Jakarta Selatan, born 15-08-1990).
        ("3171011508900001", "3171011508900001", "3171 0115 0890 0001"),
    ],
)
def test_valid_npwp_is_cleaned_and_formatted(given, digits, formatted):
    assert clean_npwp(given) == digits
    assert format_npwp(digits) == formatted


@pytest.mark.parametrize("given", ["013000667091000", "01.300.066.7-091.000", "0013000667091000"])
def test_npwp_with_wrong_check_digit_says_so(given):
    with pytest.raises(ServiceError) as error:
        clean_npwp(given)
    assert "check digit" in str(error.value.message)
    assert error.value.field == "npwp"


@pytest.mark.parametrize("given", ["12345", "0130006660910001234"])
def test_npwp_of_wrong_length_is_refused(given):
    with pytest.raises(ServiceError) as error:
        clean_npwp(given)
    assert "15 or 16 digits" in str(error.value.message)


def test_empty_npwp_is_required():
    with pytest.raises(ServiceError) as error:
        clean_npwp("  ")
    assert "required" in str(error.value.message)


def test_npwp_with_letters_is_refused():
    with pytest.raises(ServiceError):
        clean_npwp("01300066A091000")


@pytest.mark.parametrize("given, expected", [("9120001234567", "9120001234567"), ("9120 0012 34567", "9120001234567")])
def test_nib_is_13_digits(given, expected):
    assert clean_nib(given) == expected


@pytest.mark.parametrize("given", ["912000123456", "91200012345678", "912000123456A", "", "-912000123456"])
def test_nib_refuses_other_lengths_and_letters(given):
    with pytest.raises(ServiceError) as error:
        clean_nib(given)
    assert "13 digits" in str(error.value.message)


@pytest.mark.parametrize(
    "given",
    ["081234567890", "0812-3456-7890", "0812 3456 7890", "+62 812 3456 7890", "+6281234567890",
     "6281234567890", "(0812) 3456-7890"],
)
def test_mobile_numbers_in_usual_spellings_become_e164(given):
    assert clean_mobile(given, "spv_phone") == "+6281234567890"


@pytest.mark.parametrize("given", ["0215551234", "12345", "0812", "not a number", "+1 202 555 0143", ""])
def test_landlines_foreign_and_garbage_are_refused(given):
    with pytest.raises(ServiceError) as error:
        clean_mobile(given, "fin_phone")
    assert error.value.field == "fin_phone"


def test_coordinates_inside_indonesia_are_kept_and_outside_refused():
    assert clean_coordinate("-6.2088", "latitude", LATITUDE_RANGE) == Decimal("-6.208800")
    assert clean_coordinate("106,8456", "longitude", LONGITUDE_RANGE) == Decimal("106.845600")
    assert clean_coordinate("", "latitude", LATITUDE_RANGE) is None
    for value, field, bounds in [("-11.5", "latitude", LATITUDE_RANGE), ("6.01", "latitude", LATITUDE_RANGE),
                                 ("94.9", "longitude", LONGITUDE_RANGE), ("141.5", "longitude", LONGITUDE_RANGE),
                                 ("abc", "latitude", LATITUDE_RANGE), ("nan", "latitude", LATITUDE_RANGE),
                                 ("inf", "longitude", LONGITUDE_RANGE)]:
        with pytest.raises(ServiceError) as error:
            clean_coordinate(value, field, bounds)
        assert error.value.field == field


def test_the_15_and_16_digit_forms_of_an_npwp_are_one_taxpayer():
    from scm.registration.models import npwp_forms

    assert npwp_forms("013000666091000") == {"013000666091000", "0013000666091000"}
    assert npwp_forms("0013000666091000") == {"013000666091000", "0013000666091000"}
    assert npwp_forms("3171012345678901") == {"3171012345678901"}  # a NIK: no 15-digit form
