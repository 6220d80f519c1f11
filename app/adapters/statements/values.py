"""Cell values of statement files: cleaning, dates, amounts and currencies, strictly."""
from __future__ import annotations

import datetime
import re

from app.domain.errors import InvalidMoney
from app.domain.money import parse_bank_amount

from .text import reject

# No real transfer is near a trillion yuan; a longer number is a broken or hostile file.
MAX_FEN = 10**14

# Padding seen in exports: spaces, tabs, full-width and no-break spaces.
_PAD = " \t\u3000\u00a0\ufeff"
# Excel "keep as text" prefixes on ids: '123, ="123", =123.
_EXCEL_TEXT = re.compile(r'^(?:\'|="?)(.*?)"?$')
_EMPTY_MARKERS = frozenset({"-", "--", "—", "/", "null", "NULL"})

_DATE = re.compile(
    r"(\d{4})(?:([-/.])(\d{1,2})\2(\d{1,2})|(\d{2})(\d{2}))"
    r"(?:(?:[ T]+)(\d{1,2}):?(\d{2})(?::?(\d{2}))?(?:\.\d{1,6})?)?"
)
_TIME = re.compile(r"(\d{1,2}):?(\d{2})(?::?(\d{2}))?(?:\.\d{1,6})?")
_ISO_CODE = re.compile(r"[A-Z]{3}")
# The plainest amount shape ("-1234.5", "100.00"), read here without the general parser:
# it is most of every file, and this is the hot loop of a 100,000-line import.
_PLAIN_AMOUNT = re.compile(r"([+-]?)(\d{1,12})(?:\.(\d{1,2}))?")

_CURRENCY_NAMES = {
    "人民币": "CNY",
    "人民币元": "CNY",
    "RMB": "CNY",
    "CNY": "CNY",
    "CNH": "CNH",
    "美元": "USD",
    "港币": "HKD",
    "港元": "HKD",
    "欧元": "EUR",
    "日元": "JPY",
    "英镑": "GBP",
}


def clean(cell: str) -> str:
    """Strip padding from a cell; an empty marker such as ``-`` becomes ``""``."""
    value = cell.strip(_PAD)
    if value in _EMPTY_MARKERS:
        return ""
    return value


def clean_id(cell: str) -> str:
    """Clean a bank id cell, dropping Excel's text-forcing ``'`` or ``="..."`` wrapper."""
    value = clean(cell)
    if value[:1] in ("'", "="):
        match = _EXCEL_TEXT.match(value)
        if match:
            value = match.group(1).strip(_PAD)
    return value


def parse_when(text: str, line: int, what: str = "date") -> datetime.date | datetime.datetime:
    """Parse ``2024-01-01``, ``20240101``, ``2024/1/1``, optionally with a time of day."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise reject(f"bad {what}", line, text)
    year = int(match.group(1))
    if match.group(2):
        month, day = int(match.group(3)), int(match.group(4))
    else:
        month, day = int(match.group(5)), int(match.group(6))
    try:
        day_value = datetime.date(year, month, day)
        if match.group(7) is None:
            return day_value
        return datetime.datetime(
            year, month, day, int(match.group(7)), int(match.group(8)), int(match.group(9) or 0)
        )
    except ValueError:
        raise reject(f"bad {what}", line, text) from None


def parse_iso_when(text: str, line: int) -> datetime.date | datetime.datetime:
    """Parse an ISO 8601 date or timestamp (offset allowed), as the canonical CSV has."""
    try:
        if len(text) == 10:
            return datetime.date.fromisoformat(text)
        if len(text) > 10 and text[10] in "T ":
            return iso_timestamp(text)
    except ValueError:
        pass
    raise reject("bad booked_at date", line, text)


def iso_timestamp(text: str) -> datetime.datetime:
    """Parse an ISO 8601 timestamp; raise ``ValueError`` for an offset finer than minutes.

    ISO 8601 (and XML Schema's dateTime) offsets are hours and minutes. Python also reads
    ``+05:30:15.123456``, whose timestamp no longer fits the 40 characters stored.
    """
    moment = datetime.datetime.fromisoformat(text)
    offset = moment.utcoffset()
    if offset is not None and offset % datetime.timedelta(minutes=1):
        raise ValueError("UTC offset with seconds")
    return moment


def with_time(day: datetime.date | datetime.datetime, text: str, line: int):
    """Combine a date with a separate time-of-day cell (``10:23:45`` or ``102345``)."""
    if not text or isinstance(day, datetime.datetime):
        return day
    match = _TIME.fullmatch(text)
    if match is None:
        raise reject("bad time", line, text)
    try:
        moment = datetime.time(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    except ValueError:
        raise reject("bad time", line, text) from None
    return datetime.datetime.combine(day, moment)


def to_fen(text: str, line: int, what: str = "amount") -> int:
    """Parse a signed bank amount into fen, refusing sub-fen digits and malformed text."""
    plain = _PLAIN_AMOUNT.fullmatch(text)
    if plain is not None:
        sign, whole, frac = plain.groups()
        fen = int(whole) * 100 + (int(frac) * (10 if len(frac) == 1 else 1) if frac else 0)
        return -fen if sign == "-" else fen
    # Everything else (thousands separators, zeros below the fen, errors) goes through
    # the shared money parser, so that the rules live in one place.
    try:
        fen = parse_bank_amount(text)
    except InvalidMoney as exc:
        if "below the fen" in exc.detail:
            raise reject(f"{what} has a non-zero digit below the fen", line, text) from None
        raise reject(f"malformed {what}", line, text) from None
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
        raise reject(f"{what} is implausibly large", line, text) from None
    if abs(fen) > MAX_FEN:
        raise reject(f"{what} is implausibly large", line, text)
    return fen


def currency_code(text: str, line: int) -> str:
    """Map a currency cell (``人民币``, ``RMB``, ``CNY``, ``usd``) to its ISO code."""
    value = text.strip(_PAD)
    code = _CURRENCY_NAMES.get(value) or _CURRENCY_NAMES.get(value.upper())
    if code:
        return code
    upper = value.upper()
    if _ISO_CODE.fullmatch(upper):
        return upper
    raise reject("unknown currency", line, text)
