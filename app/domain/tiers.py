"""Prepaid-card purchases: allowed amounts and the discount coupon a purchase earns."""
from __future__ import annotations

from typing import Iterable

from .errors import InvalidInput

CARD_STEP_FEN = 100_00  # cards are sold in whole multiples of 100 CNY, from 100 CNY


def check_card_amount(amount_fen: int) -> None:
    """Refuse a purchase that is not a whole multiple of 100.00, or below it."""
    if amount_fen < CARD_STEP_FEN or amount_fen % CARD_STEP_FEN:
        raise InvalidInput(
            "a prepaid card costs a whole multiple of 100.00, at least 100.00",
            code="invalid_card_amount",
            field="amount",
        )


def bonus_coupon_fen(amount_fen: int, tiers: Iterable[tuple[int, int]]) -> int | None:
    """Return the face value of the discount coupon the purchase earns: the highest tier reached.

    ``tiers`` are ``(threshold_fen, coupon_fen)`` pairs in any order; None when none is reached.
    """
    reached = [(threshold, coupon) for threshold, coupon in tiers if amount_fen >= threshold]
    if not reached:
        return None
    return max(reached)[1]
