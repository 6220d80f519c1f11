"""Money: integer fen inside, two-decimal strings and ``Decimal`` at the edges."""
from __future__ import annotations

import re
from decimal import Decimal

from .errors import BalanceLimit, InvalidMoney

FEN_PER_YUAN = 100
# The most an account's cash, arrears or invoiceable may hold (a coupon or card is bounded by
# its face value): far past any real wallet, a hundred times the largest amount a request
# carries, and far enough below the 2**63 - 1 fen of a BIGINT column (and of SQLite's integers)
# that a balance at the limit plus any one amount still fits. Past it a movement is refused,
# never failed by the database.
MAX_BALANCE_FEN = 10**18
# Digits, optionally a dot and one or two decimals. No sign, exponent, spaces or separators.
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,13})(?:\.([0-9]{1,2}))?")


def parse_amount(value: object, *, field: str = "amount", allow_zero: bool = False) -> int:
    """Parse an API amount string such as ``"100.00"`` into fen, strictly.

    ``"100"``, ``"100.0"`` and ``"100.00"`` are equal; numbers (JSON floats or ints),
    exponents, signs, spaces, more than two decimals and ``NaN`` are refused.
    """
    if not isinstance(value, str):
        raise InvalidMoney(f"{field} must be a string with two decimals, like \"100.00\"", field=field)
    match = _AMOUNT.fullmatch(value)
    if match is None:
        raise InvalidMoney(f"{field} {value[:40]!r} is not an amount like \"100.00\"", field=field)
    whole, frac = match.group(1), match.group(2) or ""
    fen = int(whole) * FEN_PER_YUAN + int(frac.ljust(2, "0"))
    if fen == 0 and not allow_zero:
        raise InvalidMoney(f"{field} must be greater than zero", field=field)
    return fen


def format_fen(fen: int) -> str:
    """Format fen as a two-decimal string, ``12345 -> "123.45"``."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError("fen must be an int")
    sign = "-" if fen < 0 else ""
    whole, frac = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{frac:02d}"


def fen_to_decimal(fen: int) -> Decimal:
    """Return fen as a ``Decimal`` yuan amount with two places."""
    return Decimal(format_fen(fen))


def decimal_to_fen(amount: Decimal) -> int:
    """Convert an exact ``Decimal`` yuan amount to fen; refuses sub-fen digits.

    Trailing zeros beyond the fen (``8.850``) are exact and accepted.
    """
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidMoney(f"{amount!r} is not a finite decimal amount")
    scaled = amount * FEN_PER_YUAN
    if scaled != scaled.to_integral_value():
        raise InvalidMoney(f"{amount} has a non-zero digit below the fen")
    return int(scaled)


def parse_bank_amount(text: str) -> int:
    """Parse a signed amount from a bank file into fen (``-1,234.50``, ``+8.850``).

    Thousands separators are allowed; trailing zeros below the fen are exact; a non-zero
    digit below the fen, an exponent or anything else is refused.
    """
    raw = text.strip()
    match = re.fullmatch(r"([+-]?)((?:\d{1,3}(?:,\d{3})+)|\d+)(?:\.(\d+))?", raw)
    if match is None:
        raise InvalidMoney(f"{text.strip()[:40]!r} is not an amount")
    sign, whole, frac = match.group(1), match.group(2).replace(",", ""), match.group(3) or ""
    if frac[2:].strip("0"):
        raise InvalidMoney(f"{raw} has a non-zero digit below the fen")
    fen = int(whole) * FEN_PER_YUAN + int(frac[:2].ljust(2, "0"))
    return -fen if sign == "-" else fen


def check_balance(fen: int, what: str) -> int:
    """Return a new balance of ``what``; refuse one past ``MAX_BALANCE_FEN``."""
    if fen > MAX_BALANCE_FEN:
        raise BalanceLimit(f"{what} would exceed {format_fen(MAX_BALANCE_FEN)}, the most a balance holds")
    return fen
