"""The arithmetic of one invoice, as a pure function of quantities, prices and policy.

Stamp duty (the e-Meterai face value) is not a VAT base. A service fee, when there is one,
carries PPN on a DPP of 11/12 (``other value``, from 2025) at the configured rate; a WAPU collects
that PPN itself, so the invoice shows it but does not add it to the amount due.
"""

from dataclasses import dataclass, field
from datetime import date

from scm.billing.models import LineKind, MinimumPolicy


@dataclass(frozen=True)
class Line:
    kind: LineKind
    usage_month: date
    quantity: int
    unit_price: int

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Pricing:
    """Lines and totals of an invoice (whole Rupiah)."""

    lines: list[Line] = field(default_factory=list)
    ppn_rate: int = 0
    ppn_base: int = 0
    ppn_amount: int = 0

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def total_due(self) -> int:
        return self.subtotal  # PPN is collected by the WAPU (DOMAIN.md §4)


def price_invoice(period: date, *, usage: int, late: list[tuple[date, int]], used: int, minimum: int,
                  policy: MinimumPolicy, unit_price: int, service_fee: int = 0, ppn_rate: int = 0,
                  dpp_other_value: bool = True, usage_parts: list[tuple[int, int]] | None = None) -> Pricing:
    """Lines for ``usage`` e-Meterai of ``period`` not billed yet, ``late`` ones of earlier months,
    the true-up of a shortfall under the ``true_up`` policy, and the service fee with its PPN.

    ``used`` is everything stamped in the period (the minimum is checked against it).
    ``usage_parts``, when the unit price changed within the period (a new contract from a day of
    the month): ``(quantity, unit price)`` per part, summing to ``usage``; one usage line each.
    Late usage and the true-up are priced at ``unit_price`` (the contract covering the period).
    """
    lines = []
    for quantity, price in usage_parts if usage_parts is not None else [(usage, unit_price)]:
        if quantity > 0:
            lines.append(Line(LineKind.USAGE, period, quantity, price))
    for month, quantity in sorted(late):
        if quantity > 0:
            lines.append(Line(LineKind.LATE_USAGE, month, quantity, unit_price))
    shortfall = max(0, minimum - used)
    if policy == MinimumPolicy.TRUE_UP and shortfall > 0:
        lines.append(Line(LineKind.TRUE_UP, period, shortfall, unit_price))
    units = sum(line.quantity for line in lines if line.kind != LineKind.TRUE_UP)
    if service_fee > 0 and units > 0:
        fee = Line(LineKind.SERVICE_FEE, period, units, service_fee)
        lines.append(fee)
        base = fee.amount * 11 // 12 if dpp_other_value else fee.amount
        return Pricing(lines, ppn_rate, base, base * ppn_rate // 100)
    return Pricing(lines)
