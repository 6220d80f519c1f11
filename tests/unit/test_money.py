from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import InvalidMoney
from app.domain.money import decimal_to_fen, fen_to_decimal, format_fen, parse_amount, parse_bank_amount


@pytest.mark.parametrize("text", ["100", "100.0", "100.00"])
def test_equal_amounts_in_different_spellings_parse_alike(text):
    assert parse_amount(text) == 10000


@pytest.mark.parametrize(
    "text", ["1e2", "-0", "100.001", " 100", "100 ", "NaN", "", "+1", "-1", "1,000.00", "01", ".5", "5.", "Infinity", "１00"]
)
def test_malformed_amounts_are_refused(text):
    with pytest.raises(InvalidMoney):
        parse_amount(text)


@pytest.mark.parametrize("value", [100, 100.0, None, True, Decimal("100")])
def test_amounts_must_be_strings(value):
    with pytest.raises(InvalidMoney):
        parse_amount(value)


def test_zero_is_refused_unless_allowed():
    with pytest.raises(InvalidMoney):
        parse_amount("0.00")
    assert parse_amount("0.00", allow_zero=True) == 0


def test_format_fen_always_has_two_decimals():
    assert format_fen(0) == "0.00"
    assert format_fen(5) == "0.05"
    assert format_fen(123456) == "1234.56"
    assert format_fen(-250) == "-2.50"


def test_format_fen_refuses_floats():
    with pytest.raises(TypeError):
        format_fen(1.5)


def test_bank_amount_trailing_zeros_below_fen_are_exact():
    assert parse_bank_amount("8.850") == 885
    assert decimal_to_fen(Decimal("8.850")) == 885


@pytest.mark.parametrize("text", ["8.855", "0.001"])
def test_bank_amount_with_digit_below_fen_is_refused(text):
    with pytest.raises(InvalidMoney):
        parse_bank_amount(text)


def test_bank_amount_signs_and_thousands_separators():
    assert parse_bank_amount("-1,234.50") == -123450
    assert parse_bank_amount("+10000.00") == 1000000
    assert parse_bank_amount(" 12 ") == 1200


@pytest.mark.parametrize("text", ["1,23.00", "1e3", "", "--1", "12,345,67"])
def test_malformed_bank_amounts_are_refused(text):
    with pytest.raises(InvalidMoney):
        parse_bank_amount(text)


# --- properties -----------------------------------------------------------------------------

fens = st.integers(1, 10**16 - 1)  # 0.01 to the largest amount the API takes


@given(fens)
def test_every_formatted_amount_parses_back_to_its_fen(fen):
    text = format_fen(fen)
    assert text.count(".") == 1 and len(text.split(".")[1]) == 2
    assert parse_amount(text) == fen
    assert fen_to_decimal(fen) == Decimal(text) and fen_to_decimal(fen).as_tuple().exponent == -2


@given(fens)
def test_one_or_two_decimals_and_none_for_whole_yuan_are_the_same_amount(fen):
    whole, frac = divmod(fen, 100)
    if frac == 0:
        assert parse_amount(str(whole)) == parse_amount(f"{whole}.0") == fen
    if frac % 10 == 0:
        assert parse_amount(f"{whole}.{frac // 10}") == fen


@given(fens, st.sampled_from(["+", "-", " ", "\t", "\n", "e0", "E2", "0", ",", "_"]), st.booleans())
def test_signs_spaces_exponents_and_a_third_decimal_are_refused(fen, extra, before):
    text = format_fen(fen)
    with pytest.raises(InvalidMoney):
        parse_amount(extra + text if before and extra != "0" else text + extra)


@given(st.integers(-(10**16), 10**16), st.integers(0, 4))
def test_decimals_with_zeros_below_the_fen_are_exact_and_round_trip(fen, zeros):
    amount = Decimal(format_fen(fen) + "0" * zeros)
    assert decimal_to_fen(amount) == fen
    assert parse_bank_amount(format_fen(fen) + "0" * zeros) == fen


@given(st.integers(-(10**12), 10**12), st.integers(1, 9), st.integers(0, 3))
def test_a_non_zero_digit_below_the_fen_is_refused_never_rounded(fen, digit, zeros):
    text = format_fen(fen) + "0" * zeros + str(digit)
    with pytest.raises(InvalidMoney):
        decimal_to_fen(Decimal(text))
    with pytest.raises(InvalidMoney):
        parse_bank_amount(text)
