"""Prepaid-card purchases: allowed amounts, validity and the discount coupon a purchase earns."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable

from .errors import InvalidInput

CARD_STEP_FEN = 100_00  # cards are sold in whole multiples of 100 CNY, from 100 CNY
# The calendar a card's year of validity counts in: the customers' own (China, UTC+8, no DST).
CALENDAR = timezone(timedelta(hours=8), "Asia/Shanghai")


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


def card_expires_at(valid_from: datetime, validity_days: int | None = None) -> datetime:
    """The instant a card bought at ``valid_from`` expires.

    By default one calendar year later, in the customers' calendar: bought 2027-03-01 10:00,
    the card pays until 2028-03-01 10:00 (365 days would end it on 2028-02-29). A card bought on
    29 February expires on 28 February, the last day of the same month a year on. With
    ``validity_days`` (an operator's setting) it is that many days instead.
    """
    if validity_days is not None:
        return valid_from + timedelta(days=validity_days)
    local = valid_from.astimezone(CALENDAR)
    try:
        later = local.replace(year=local.year + 1)
    except ValueError:  # 29 February, and the next year has none
        later = local.replace(year=local.year + 1, day=28)
    return later.astimezone(valid_from.tzinfo)
