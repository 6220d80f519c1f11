"""How a top-up is split: arrears are paid off first, only the rest becomes cash."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.topup import split_topup


def test_a_topup_below_the_arrears_pays_part_of_them_and_adds_no_cash():
    split = split_topup(20_00, 70_00)
    assert (split.arrears_paid_fen, split.cash_fen) == (20_00, 0)


def test_a_topup_above_the_arrears_clears_them_and_the_rest_is_cash():
    split = split_topup(100_00, 70_00)
    assert (split.arrears_paid_fen, split.cash_fen) == (70_00, 30_00)


@pytest.mark.parametrize("fen", [0, -1])
def test_a_topup_is_positive(fen):
    with pytest.raises(ValueError):
        split_topup(fen, 0)


@given(st.integers(1, 10**16), st.integers(0, 10**16))
def test_arrears_are_paid_first_and_nothing_is_lost(amount, arrears):
    split = split_topup(amount, arrears)
    assert split.arrears_paid_fen + split.cash_fen == amount
    assert split.arrears_paid_fen == min(amount, arrears)
    assert split.cash_fen == 0 or split.arrears_paid_fen == arrears  # cash only once nothing is owed
