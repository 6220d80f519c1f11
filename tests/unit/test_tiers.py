"""Prepaid-card amounts and the discount coupon a purchase earns."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.config import DEFAULT_DISCOUNT_TIERS
from app.domain.errors import InvalidInput
from app.domain.tiers import bonus_coupon_fen, card_expires_at, check_card_amount

TIERS = [(t.threshold_fen, t.coupon_fen) for t in DEFAULT_DISCOUNT_TIERS]


def test_purchase_below_the_first_tier_earns_no_coupon():
    assert bonus_coupon_fen(9_999_00, TIERS) is None


def test_purchase_of_10000_earns_a_1000_coupon():
    assert bonus_coupon_fen(10_000_00, TIERS) == 1_000_00


def test_purchase_between_tiers_earns_the_lower_tier_only():
    assert bonus_coupon_fen(29_900_00, TIERS) == 1_000_00


def test_purchase_of_30000_earns_the_5000_coupon_not_both():
    assert bonus_coupon_fen(30_000_00, TIERS) == 5_000_00


def test_purchase_of_100000_or_more_earns_the_highest_tier_once():
    assert bonus_coupon_fen(250_000_00, TIERS) == 20_000_00


def test_tiers_apply_in_any_configured_order():
    assert bonus_coupon_fen(30_000_00, list(reversed(TIERS))) == 5_000_00


@pytest.mark.parametrize("fen", [100_00, 200_00, 10_000_00])
def test_card_amount_in_whole_hundreds_is_accepted(fen):
    check_card_amount(fen)


@pytest.mark.parametrize("fen", [1, 99_99, 150_00, 100_01, 0])
def test_card_amount_below_100_or_not_a_multiple_of_100_is_refused(fen):
    with pytest.raises(InvalidInput) as err:
        check_card_amount(fen)
    assert err.value.code == "invalid_card_amount"


# --- properties -----------------------------------------------------------------------------


@given(st.integers(1, 10**12))
def test_a_card_amount_is_accepted_exactly_when_it_is_whole_hundreds_from_100(fen):
    if fen >= 100_00 and fen % 100_00 == 0:
        check_card_amount(fen)
    else:
        with pytest.raises(InvalidInput):
            check_card_amount(fen)


@given(st.integers(1, 10**12), st.permutations(TIERS))
def test_the_bonus_is_the_coupon_of_the_highest_threshold_reached_or_none(fen, tiers):
    reached = [coupon for threshold, coupon in sorted(TIERS) if fen >= threshold]
    assert bonus_coupon_fen(fen, tiers) == (reached[-1] if reached else None)


@given(st.integers(1, 10**12), st.integers(1, 10**12))
def test_a_larger_purchase_never_earns_a_smaller_bonus(a, b):
    low, high = sorted((a, b))
    assert (bonus_coupon_fen(low, TIERS) or 0) <= (bonus_coupon_fen(high, TIERS) or 0)


UTC = timezone.utc


@pytest.mark.parametrize("bought, expires", [
    # 10:00 in Beijing on 1 March 2027: a year later is 1 March 2028, across 29 February.
    ("2027-03-01T02:00:00+00:00", "2028-03-01T02:00:00+00:00"),
    # Still 28 February in UTC, already 1 March in Beijing: the customers' calendar counts.
    ("2027-02-28T20:00:00+00:00", "2028-02-29T20:00:00+00:00"),
    # 29 February: the next year has none, the card runs to the 28th.
    ("2028-02-29T04:00:00+00:00", "2029-02-28T04:00:00+00:00"),
    ("2026-11-26T04:00:00+00:00", "2027-11-26T04:00:00+00:00"),
    # Midnight in Beijing starts 1 March; a second before it is still 28 February there.
    ("2027-02-28T16:00:00+00:00", "2028-02-29T16:00:00+00:00"),
    ("2027-02-28T15:59:59+00:00", "2028-02-28T15:59:59+00:00"),
    # Bought at the first instant of 29 February in Beijing (28 February in UTC).
    ("2028-02-28T16:00:00+00:00", "2029-02-27T16:00:00+00:00"),
])
def test_a_card_is_valid_for_one_calendar_year_by_default(bought, expires):
    assert card_expires_at(datetime.fromisoformat(bought)) == datetime.fromisoformat(expires)


def test_a_configured_number_of_days_replaces_the_calendar_year():
    bought = datetime(2027, 3, 1, 2, tzinfo=UTC)
    assert card_expires_at(bought, 365) == datetime(2028, 2, 29, 2, tzinfo=UTC)
    assert card_expires_at(bought, 30) == bought + timedelta(days=30)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_a_default_validity_is_365_or_366_days_and_keeps_the_time_of_day(bought):
    expires = card_expires_at(bought)
    assert expires.tzinfo is UTC
    assert expires - bought in (timedelta(days=365), timedelta(days=366))
    assert expires.time() == bought.time()
