"""Whole numbers and Rupiah are grouped exactly as Babel's ``#,##0`` pattern groups them."""

import pytest
from babel.numbers import format_decimal

from scm.core.formatting import _grouped


@pytest.mark.parametrize("locale", ["id", "en"])
def test_grouping_equals_babels_pattern(locale):
    values = [0, 1, -1, 9, 10, 999, 1000, -1000, 10_000, 123_456, 999_999, 1_000_000, -1_234_567,
              2**31, -(2**63), 10**18 + 7]
    for value in values:
        assert _grouped(value, locale) == format_decimal(value, format="#,##0", locale=locale), (locale, value)
