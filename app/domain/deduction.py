"""The deduction order of a pay-as-you-go bill: which sources pay, in what order, how much.

One pure function, ``allocate``, over plain values: the units the account holds, its cash,
the settlement mode and the product line in; the allocations, in the order drawn, out.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

REGULAR_COUPON = "regular_coupon"
DISCOUNT_COUPON = "discount_coupon"
PREPAID_CARD = "prepaid_card"
CASH = "cash"
ARREARS = "arrears"
CLOUD_ACCOUNT = "cloud_account"

UNIT_SOURCES = (REGULAR_COUPON, DISCOUNT_COUPON, PREPAID_CARD)
SETTLEMENTS = ("guance", "cloud")
PRODUCTS = ("general", "sms", "dial_testing")

# DOMAIN.md's table. The last source of each order takes whatever is left, without limit.
ORDER: dict[tuple[str, str], tuple[str, ...]] = {
    ("guance", "general"): (REGULAR_COUPON, DISCOUNT_COUPON, PREPAID_CARD, CASH, ARREARS),
    ("guance", "sms"): (PREPAID_CARD, CASH, ARREARS),
    ("guance", "dial_testing"): (PREPAID_CARD, CASH, ARREARS),
    ("cloud", "general"): (REGULAR_COUPON, DISCOUNT_COUPON, PREPAID_CARD, CLOUD_ACCOUNT),
    ("cloud", "sms"): (PREPAID_CARD, CLOUD_ACCOUNT),
    ("cloud", "dial_testing"): (PREPAID_CARD, CLOUD_ACCOUNT),
}


@dataclass(frozen=True)
class Unit:
    """A coupon or prepaid card as the deduction sees it."""

    source: str  # regular_coupon | discount_coupon | prepaid_card
    id: int
    balance_fen: int
    valid_from: datetime
    expires_at: datetime
    created_at: datetime

    def usable_at(self, now: datetime) -> bool:
        """Tell whether the unit may pay at ``now``: inside its window and not empty."""
        return self.balance_fen > 0 and self.valid_from <= now < self.expires_at


@dataclass(frozen=True)
class Allocation:
    """One source's share of a bill; ``unit_id`` is None for cash, arrears and cloud."""

    source: str
    unit_id: int | None
    amount_fen: int


def order_for(settlement: str, product: str) -> tuple[str, ...]:
    """Return the sources a bill may draw on, in order."""
    try:
        return ORDER[(settlement, product)]
    except KeyError:
        raise ValueError(f"no deduction order for {settlement}/{product}") from None


def draw_order(units: Iterable[Unit]) -> list[Unit]:
    """Sort units of one kind: expiring first, then the oldest, then the lowest id."""
    return sorted(units, key=lambda u: (u.expires_at, u.created_at, u.id))


def allocate(
    amount_fen: int,
    *,
    settlement: str,
    product: str,
    units: Iterable[Unit],
    cash_fen: int,
    now: datetime,
) -> list[Allocation]:
    """Split a bill of ``amount_fen`` over the sources its settlement and product line allow."""
    if amount_fen <= 0:
        raise ValueError("a bill is positive")
    order = order_for(settlement, product)
    by_source: dict[str, list[Unit]] = {source: [] for source in UNIT_SOURCES}
    for unit in units:
        if unit.source not in by_source:
            raise ValueError(f"unknown unit source {unit.source}")
        if unit.usable_at(now):
            by_source[unit.source].append(unit)

    allocations: list[Allocation] = []
    left = amount_fen
    for source in order:
        if left == 0:
            break
        if source in by_source:
            for unit in draw_order(by_source[source]):
                take = min(left, unit.balance_fen)
                allocations.append(Allocation(source, unit.id, take))
                left -= take
                if left == 0:
                    break
        elif source == CASH:
            take = min(left, max(cash_fen, 0))
            if take:
                allocations.append(Allocation(CASH, None, take))
                left -= take
        else:  # arrears or the cloud account: the last source takes the rest
            allocations.append(Allocation(source, None, left))
            left = 0
    return allocations
