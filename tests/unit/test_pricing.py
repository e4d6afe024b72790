"""The arithmetic of one invoice (``price_invoice``), a pure function: every amount below is worked
out by hand, in whole Rupiah."""

from datetime import date

import pytest

from scm.billing.models import LineKind, MinimumPolicy
from scm.billing.pricing import Line, price_invoice

PERIOD = date(2026, 3, 1)
TRUE_UP, REPORT = MinimumPolicy.TRUE_UP, MinimumPolicy.REPORT


def kinds(pricing):
    return [(line.kind, line.usage_month, line.quantity, line.unit_price) for line in pricing.lines]


def test_usage_is_quantity_times_unit_price():
    pricing = price_invoice(PERIOD, usage=1_234, late=[], used=1_234, minimum=1_000, policy=TRUE_UP,
                            unit_price=10_000)
    assert kinds(pricing) == [(LineKind.USAGE, PERIOD, 1_234, 10_000)]
    assert pricing.lines[0].amount == 12_340_000
    assert pricing.subtotal == 12_340_000
    assert pricing.total_due == 12_340_000
    assert (pricing.ppn_rate, pricing.ppn_base, pricing.ppn_amount) == (0, 0, 0)


def test_late_usage_gets_a_line_per_earlier_month_in_month_order_at_the_same_price():
    pricing = price_invoice(PERIOD, usage=100, late=[(date(2026, 2, 1), 30), (date(2025, 12, 1), 0),
                                                     (date(2026, 1, 1), 5)],
                            used=100, minimum=0, policy=TRUE_UP, unit_price=9_500)
    assert kinds(pricing) == [
        (LineKind.USAGE, PERIOD, 100, 9_500),
        (LineKind.LATE_USAGE, date(2026, 1, 1), 5, 9_500),   # the month with nothing late has no line
        (LineKind.LATE_USAGE, date(2026, 2, 1), 30, 9_500),
    ]
    assert [line.amount for line in pricing.lines] == [950_000, 47_500, 285_000]
    assert pricing.total_due == 1_282_500


def test_a_shortfall_is_billed_as_a_true_up_under_the_true_up_policy():
    pricing = price_invoice(PERIOD, usage=400, late=[], used=400, minimum=1_000, policy=TRUE_UP, unit_price=10_000)
    assert kinds(pricing) == [(LineKind.USAGE, PERIOD, 400, 10_000), (LineKind.TRUE_UP, PERIOD, 600, 10_000)]
    assert pricing.total_due == 4_000_000 + 6_000_000


def test_a_shortfall_is_not_billed_under_the_report_policy():
    pricing = price_invoice(PERIOD, usage=400, late=[], used=400, minimum=1_000, policy=REPORT, unit_price=10_000)
    assert kinds(pricing) == [(LineKind.USAGE, PERIOD, 400, 10_000)]
    assert pricing.total_due == 4_000_000


@pytest.mark.parametrize("used", [1_000, 1_500])
def test_no_true_up_when_the_month_reached_its_minimum(used):
    # 300 are billed now; what the month used in all (``used``) is what counts against the minimum
    pricing = price_invoice(PERIOD, usage=300, late=[], used=used, minimum=1_000, policy=TRUE_UP,
                            unit_price=10_000)
    assert kinds(pricing) == [(LineKind.USAGE, PERIOD, 300, 10_000)]
    assert pricing.total_due == 3_000_000


def test_late_usage_does_not_count_against_this_months_minimum():
    pricing = price_invoice(PERIOD, usage=200, late=[(date(2026, 2, 1), 900)], used=200, minimum=1_000,
                            policy=TRUE_UP, unit_price=10_000)
    assert kinds(pricing) == [(LineKind.USAGE, PERIOD, 200, 10_000),
                              (LineKind.LATE_USAGE, date(2026, 2, 1), 900, 10_000),
                              (LineKind.TRUE_UP, PERIOD, 800, 10_000)]
    assert pricing.total_due == 2_000_000 + 9_000_000 + 8_000_000


def test_service_fee_carries_ppn_on_a_dpp_of_eleven_twelfths_shown_but_not_due():
    pricing = price_invoice(PERIOD, usage=1_000, late=[(date(2026, 2, 1), 200)], used=1_000, minimum=1_000,
                            policy=TRUE_UP, unit_price=10_000, service_fee=500, ppn_rate=12)
    # the fee is charged per e-Meterai billed: 1,000 + 200 late = 1,200 × Rp500 = Rp600.000
    assert kinds(pricing)[-1] == (LineKind.SERVICE_FEE, PERIOD, 1_200, 500)
    assert pricing.lines[-1].amount == 600_000
    assert pricing.ppn_rate == 12
    assert pricing.ppn_base == 550_000        # 600.000 × 11/12
    assert pricing.ppn_amount == 66_000       # 12 % of 550.000
    assert pricing.subtotal == 10_000_000 + 2_000_000 + 600_000
    assert pricing.total_due == 12_600_000    # the WAPU collects the PPN itself: not added


def test_service_fee_ppn_on_the_full_fee_without_the_other_value_dpp():
    pricing = price_invoice(PERIOD, usage=1_200, late=[], used=1_200, minimum=1_000, policy=TRUE_UP,
                            unit_price=10_000, service_fee=500, ppn_rate=11, dpp_other_value=False)
    assert (pricing.ppn_base, pricing.ppn_amount) == (600_000, 66_000)
    assert pricing.total_due == 12_000_000 + 600_000


def test_the_true_up_pays_no_service_fee():
    pricing = price_invoice(PERIOD, usage=400, late=[], used=400, minimum=1_000, policy=TRUE_UP,
                            unit_price=10_000, service_fee=500, ppn_rate=12)
    assert kinds(pricing) == [(LineKind.USAGE, PERIOD, 400, 10_000), (LineKind.TRUE_UP, PERIOD, 600, 10_000),
                              (LineKind.SERVICE_FEE, PERIOD, 400, 500)]
    assert pricing.ppn_base == 183_333        # 200.000 × 11/12 = 183.333,33
    assert pricing.ppn_amount == 21_999       # 12 % of 183.333 = 21.999,96
    assert pricing.total_due == 4_000_000 + 6_000_000 + 200_000


@pytest.mark.parametrize(("units", "fee", "base", "ppn"), [
    (1, 1_000, 916, 109),       # 11.000/12 = 916,67 → 916; 12 % = 109,92 → 109
    (7, 1_234, 7_918, 950),     # 8.638 × 11/12 = 7.918,17 → 7.918; 12 % = 950,16 → 950
    (3, 999, 2_747, 329),       # 2.997 × 11/12 = 2.747,25 → 2.747; 12 % = 329,64 → 329
])
def test_dpp_and_ppn_are_whole_rupiah_rounded_down(units, fee, base, ppn):
    pricing = price_invoice(PERIOD, usage=units, late=[], used=units, minimum=0, policy=TRUE_UP,
                            unit_price=10_000, service_fee=fee, ppn_rate=12)
    assert (pricing.ppn_base, pricing.ppn_amount) == (base, ppn)
    assert pricing.total_due == units * 10_000 + units * fee


def test_zero_usage_gives_no_lines_and_nothing_due():
    pricing = price_invoice(PERIOD, usage=0, late=[], used=0, minimum=0, policy=TRUE_UP, unit_price=10_000,
                            service_fee=500, ppn_rate=12)
    assert pricing.lines == []
    assert (pricing.subtotal, pricing.total_due, pricing.ppn_base, pricing.ppn_amount) == (0, 0, 0, 0)


def test_zero_usage_under_true_up_bills_the_whole_minimum_and_no_service_fee():
    pricing = price_invoice(PERIOD, usage=0, late=[], used=0, minimum=1_000, policy=TRUE_UP, unit_price=10_000,
                            service_fee=500, ppn_rate=12)
    assert kinds(pricing) == [(LineKind.TRUE_UP, PERIOD, 1_000, 10_000)]
    assert (pricing.ppn_base, pricing.ppn_amount) == (0, 0)
    assert pricing.total_due == 10_000_000


def test_zero_usage_under_report_gives_nothing_due():
    pricing = price_invoice(PERIOD, usage=0, late=[], used=0, minimum=1_000, policy=REPORT, unit_price=10_000)
    assert pricing.lines == []
    assert pricing.total_due == 0


def test_a_line_amount_is_quantity_times_unit_price():
    assert Line(LineKind.USAGE, PERIOD, 3, 10_000).amount == 30_000


def test_a_price_change_within_the_month_gives_a_usage_line_per_price():
    pricing = price_invoice(PERIOD, usage=300, late=[(date(2026, 2, 1), 10)], used=300, minimum=1_000,
                            policy=TRUE_UP, unit_price=12_500, usage_parts=[(100, 9_000), (0, 11_000), (200, 12_500)])
    assert kinds(pricing) == [(LineKind.USAGE, PERIOD, 100, 9_000), (LineKind.USAGE, PERIOD, 200, 12_500),
                              (LineKind.LATE_USAGE, date(2026, 2, 1), 10, 12_500),
                              (LineKind.TRUE_UP, PERIOD, 700, 12_500)]
    assert pricing.subtotal == 900_000 + 2_500_000 + 125_000 + 8_750_000
