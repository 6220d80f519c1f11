"""The deduction order of a pay-as-you-go bill, one rule per test, then its properties."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.deduction import ORDER, UNIT_SOURCES, Allocation, Unit, allocate

NOW = datetime(2026, 11, 26, 4, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def unit(source, id, fen, *, expires_in=30, age=10, starts_in=None):
    valid_from = NOW + starts_in * DAY if starts_in is not None else NOW - age * DAY
    return Unit(source, id, fen, valid_from, NOW + expires_in * DAY, NOW - age * DAY)


def reg(id, fen, **kw):
    return unit("regular_coupon", id, fen, **kw)


def disc(id, fen, **kw):
    return unit("discount_coupon", id, fen, **kw)


def card(id, fen, **kw):
    return unit("prepaid_card", id, fen, **kw)


def pay(amount, units=(), cash=0, settlement="guance", product="general"):
    result = allocate(amount, settlement=settlement, product=product, units=units, cash_fen=cash, now=NOW)
    return [(a.source, a.unit_id, a.amount_fen) for a in result]


def test_guance_general_bill_draws_coupons_then_cards_then_cash_then_arrears():
    assert pay(1000, [card(3, 100), disc(2, 100), reg(1, 100)], cash=100) == [
        ("regular_coupon", 1, 100), ("discount_coupon", 2, 100), ("prepaid_card", 3, 100),
        ("cash", None, 100), ("arrears", None, 600)]


def test_sms_bill_skips_coupons():
    assert pay(300, [reg(1, 500), disc(2, 500), card(3, 100)], cash=100, product="sms") == [
        ("prepaid_card", 3, 100), ("cash", None, 100), ("arrears", None, 100)]


def test_dial_testing_bill_skips_coupons():
    assert pay(50, [reg(1, 500), card(3, 100)], product="dial_testing") == [("prepaid_card", 3, 50)]


def test_cloud_general_bill_sends_the_rest_to_the_cloud_account_not_cash():
    assert pay(500, [reg(1, 100), card(2, 100)], cash=10_000, settlement="cloud") == [
        ("regular_coupon", 1, 100), ("prepaid_card", 2, 100), ("cloud_account", None, 300)]


def test_cloud_sms_bill_uses_only_cards_and_the_cloud_account():
    assert pay(500, [reg(1, 900), card(2, 100)], cash=900, settlement="cloud", product="sms") == [
        ("prepaid_card", 2, 100), ("cloud_account", None, 400)]


def test_cloud_bill_never_runs_into_arrears():
    assert pay(500, settlement="cloud") == [("cloud_account", None, 500)]


def test_guance_bill_always_settles_through_arrears():
    assert pay(500) == [("arrears", None, 500)]


def test_a_bill_stops_at_the_first_sources_that_cover_it():
    assert pay(80, [reg(1, 100), card(2, 100)], cash=100) == [("regular_coupon", 1, 80)]


def test_cash_pays_before_arrears_grow():
    assert pay(80, cash=100) == [("cash", None, 80)]


def test_expiring_first_within_a_kind():
    assert pay(150, [card(1, 100, expires_in=60), card(2, 100, expires_in=5)]) == [
        ("prepaid_card", 2, 100), ("prepaid_card", 1, 50)]


def test_same_expiry_goes_to_the_oldest_first():
    assert pay(150, [card(1, 100, age=1), card(2, 100, age=9)]) == [
        ("prepaid_card", 2, 100), ("prepaid_card", 1, 50)]


def test_same_expiry_and_age_goes_to_the_lowest_id_first():
    assert pay(150, [reg(9, 100), reg(4, 100)]) == [("regular_coupon", 4, 100), ("regular_coupon", 9, 50)]


def test_expired_unit_pays_nothing():
    assert pay(100, [card(1, 500, expires_in=-1)], cash=100) == [("cash", None, 100)]


def test_unit_expiring_exactly_now_pays_nothing():
    assert pay(100, [unit("prepaid_card", 1, 500, expires_in=0)]) == [("arrears", None, 100)]


def test_not_yet_valid_unit_pays_nothing():
    assert pay(100, [reg(1, 500, starts_in=1)], cash=100) == [("cash", None, 100)]


def test_empty_unit_is_skipped():
    assert pay(100, [reg(1, 0), card(2, 100)]) == [("prepaid_card", 2, 100)]


def test_regular_coupons_pay_before_discount_coupons_that_expire_sooner():
    assert pay(100, [disc(1, 100, expires_in=1), reg(2, 100, expires_in=90)]) == [("regular_coupon", 2, 100)]


# --- properties -----------------------------------------------------------------------------

units_strategy = st.lists(
    st.builds(
        unit,
        st.sampled_from(UNIT_SOURCES),
        st.integers(1, 10_000),
        st.integers(0, 50_000),
        expires_in=st.integers(-3, 3),
        age=st.integers(0, 5),
        starts_in=st.one_of(st.none(), st.integers(-2, 2)),
    ),
    max_size=12,
    unique_by=lambda u: (u.source, u.id),
)
cases = st.fixed_dictionaries(
    {
        "amount": st.integers(1, 200_000),
        "units": units_strategy,
        "cash": st.integers(0, 100_000),
        "mode": st.sampled_from(sorted(ORDER)),
    }
)


def _run(case) -> list[Allocation]:
    settlement, product = case["mode"]
    return allocate(case["amount"], settlement=settlement, product=product, units=case["units"],
                    cash_fen=case["cash"], now=NOW)


@settings(max_examples=400, deadline=None)
@given(cases)
def test_allocations_always_sum_to_the_bill(case):
    assert sum(a.amount_fen for a in _run(case)) == case["amount"]


@settings(max_examples=400, deadline=None)
@given(cases)
def test_allocations_never_take_more_than_a_source_holds(case):
    held = {(u.source, u.id): u.balance_fen for u in case["units"]}
    for a in _run(case):
        assert a.amount_fen > 0
        if a.unit_id is not None:
            assert a.amount_fen <= held[(a.source, a.unit_id)]
        elif a.source == "cash":
            assert a.amount_fen <= case["cash"]


@settings(max_examples=400, deadline=None)
@given(cases)
def test_allocations_touch_only_allowed_sources_and_usable_units(case):
    allowed = ORDER[case["mode"]]
    usable = {(u.source, u.id) for u in case["units"] if u.usable_at(NOW)}
    seen = set()
    for a in _run(case):
        assert a.source in allowed
        if a.unit_id is not None:
            assert (a.source, a.unit_id) in usable
            assert (a.source, a.unit_id) not in seen
            seen.add((a.source, a.unit_id))


@settings(max_examples=400, deadline=None)
@given(cases)
def test_allocations_follow_the_order_and_drain_each_unit_before_the_next(case):
    allocations = _run(case)
    order = ORDER[case["mode"]]
    positions = [order.index(a.source) for a in allocations]
    assert positions == sorted(positions)
    held = {(u.source, u.id): u for u in case["units"]}
    # Every allocation but the last empties its source: nothing later is drawn while it holds.
    for a in allocations[:-1]:
        if a.unit_id is not None:
            assert a.amount_fen == held[(a.source, a.unit_id)].balance_fen
        elif a.source == "cash":
            assert a.amount_fen == case["cash"]
    for source in UNIT_SOURCES:
        drawn = [held[(a.source, a.unit_id)] for a in allocations if a.source == source]
        keys = [(u.expires_at, u.created_at, u.id) for u in drawn]
        assert keys == sorted(keys)


@settings(max_examples=400, deadline=None)
@given(cases)
def test_a_later_source_pays_only_when_every_earlier_one_is_exhausted(case):
    allocations = _run(case)
    order = ORDER[case["mode"]]
    last = order.index(allocations[-1].source)
    for source in order[:last]:
        drawn = sum(a.amount_fen for a in allocations if a.source == source)
        if source == "cash":
            assert drawn == case["cash"]
        elif source in UNIT_SOURCES:
            assert drawn == sum(u.balance_fen for u in case["units"]
                                if u.source == source and u.usable_at(NOW))


@settings(max_examples=400, deadline=None)
@given(cases, st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_the_order_units_are_given_in(case, rng):
    shuffled = list(case["units"])
    rng.shuffle(shuffled)
    assert _run(case) == _run({**case, "units": shuffled})


@settings(max_examples=400, deadline=None)
@given(cases)
def test_only_a_guance_bill_runs_into_arrears_and_only_a_cloud_bill_reaches_the_cloud_account(case):
    settlement, _ = case["mode"]
    sources = {a.source for a in _run(case)}
    assert "arrears" not in sources or settlement == "guance"
    assert "cloud_account" not in sources or settlement == "cloud"
    assert "cash" not in sources or settlement == "guance"
