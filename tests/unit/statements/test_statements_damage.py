"""A damaged file of any format is read whole or refused naming its line, never half-read.

Each example damages one sample the way real files and hostile uploads are damaged: a byte
flipped, inserted or cut, the file truncated, a line doubled, dropped or taken from a file of
another format, a value replaced by an odd amount, date, cell or encoding. What is read must
be storable as it stands.
"""
from __future__ import annotations

import datetime
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.adapters.statements import FORMATS, parse_statement
from app.domain.errors import StatementRejected
from app.domain.statements import line_identities

DATA = Path(__file__).resolve().parents[2] / "data" / "statements"
SAMPLES = {path.name: path.read_bytes() for path in sorted(DATA.iterdir())}
LINES = [line for data in SAMPLES.values() for line in data.splitlines(keepends=True)]

AMOUNTS = [
    "1e400", "99999999999999999999.99", "-0", "-0.00", "0.000", "１２３.４５", "٣٤٥.٠٠", "NaN",
    "Infinity", "1_000", ",5", "5.", "+-5", "9" * 400, "1.0000000000000000000001", "(100.00)",
    "999999999999.99", "1000000000000.00", "0" * 16 + ",1", "1" + ",000" * 40, "12,,3",
]
DATES = [
    "2026-02-30", "0000-01-01", "9999-12-31", "20261301", "2026/1/1", "2026-11-26T25:00",
    "2026-11-26T10:00:00.123456+05:30:15.123456", "9999-12-31T23:59:59.999999-23:59",
    "2026-W48-4T10:00", "261126", "١٩٩٩-٠١-٠١",
]
CELLS = [
    "", "-", '"', '="1', "'0012", "\u2028", "\ufeff", "a" * 8000, "[" * 8000, ":" * 8000,
    "张三 " + "6" * 8000, "?20" * 2000, "/NAME/" * 1000, "贷 Dr", "借 Cr", "合计", "卡号:6222 0212",
    ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,", "<", "&#0;", "]]>", ":61:", ":62F:C130101EUR1,00",
]
_NUMBER = re.compile(rb"[+-]?\d[\d,]*(?:[.,]\d+)?")
_DATE = re.compile(rb"\d{4}-\d{2}-\d{2}(?:T[\d:.+\-]+)?|\b\d{6,8}\b")
_CELL = re.compile(rb"(?<=[,>\n])[^,<\n]*")


def _swap(pattern: re.Pattern, values: list[str]):
    def edit(data: bytes, where: float, choice: int) -> bytes:
        spans = [m.span() for m in pattern.finditer(data)]
        if not spans:
            return data
        start, end = spans[int(where * len(spans)) % len(spans)]
        return data[:start] + values[choice % len(values)].encode() + data[end:]

    return edit


def _lines(edit):
    def apply(data: bytes, where: float, choice: int) -> bytes:
        lines = data.splitlines(keepends=True) or [b""]
        at = int(where * len(lines)) % len(lines)
        return b"".join(edit(lines, at, choice))

    return apply


def _at(data: bytes, where: float) -> int:
    return min(int(where * len(data)), max(len(data) - 1, 0))


def _flip(data: bytes, where: float, choice: int) -> bytes:
    if not data:
        return data
    at = _at(data, where)
    return data[:at] + bytes([data[at] ^ (1 << choice % 8)]) + data[at + 1 :]


def _reencode(data: bytes, where: float, choice: int) -> bytes:
    encoding = ["gbk", "gb18030", "utf-16", "latin-1"][choice % 4]
    return data.decode("utf-8", "replace").encode(encoding, "replace")


EDITS = {
    "flip": _flip,
    "insert": lambda d, w, c: d[: _at(d, w)] + bytes([c % 256]) + d[_at(d, w) :],
    "cut": lambda d, w, c: d[: _at(d, w)] + d[_at(d, w) + 1 + c % 16 :],
    "truncate": lambda d, w, c: d[: _at(d, w)],
    "amount": _swap(_NUMBER, AMOUNTS),
    "date": _swap(_DATE, DATES),
    "cell": _swap(_CELL, CELLS),
    "double": _lines(lambda ls, at, c: ls[: at + 1] + [ls[at]] * (1 + c % 50) + ls[at + 1 :]),
    "drop": _lines(lambda ls, at, c: ls[:at] + ls[at + 1 :]),
    "foreign": _lines(lambda ls, at, c: ls[:at] + [LINES[c % len(LINES)]] + ls[at:]),
    "newlines": lambda d, w, c: d.replace(b"\r\n", b"\n").replace(b"\n", [b"\r", b"\n\r"][c % 2]),
    "bom": lambda d, w, c: [b"\xef\xbb\xbf", b"\xff\xfe", b"\xef\xbb\xbf" * 2, b"\n \t"][c % 4] + d,
    "reencode": _reencode,
    "declared": lambda d, w, c: re.sub(
        rb'encoding="[^"]*"',
        [b'encoding="bogus"', b'encoding="GBK"', b'encoding="latin-1"', b'encoding="utf-16"'][c % 4],
        d,
        count=1,
    ),
}


def _check_storable(statement) -> None:
    keys = line_identities(statement.lines)
    assert len(set(keys)) == len(keys)
    for line in statement.lines:
        assert isinstance(line.amount_fen, int) and 0 < line.amount_fen <= 10**14
        assert line.direction in ("in", "out")
        assert re.fullmatch("[A-Z]{3}", line.currency)
        assert line.line_no >= 1
        assert isinstance(line.booked_at, datetime.date)
        assert len(line.booked_at.isoformat()) <= 32  # the stored time's 40, with an offset added
        for text in (line.raw, line.memo, line.reference, line.counterparty_name,
                     line.counterparty_account, line.transaction_id or ""):
            assert "\x00" not in text
            text.encode("utf-8")  # no lone surrogate


def _read_or_refused(data: bytes, format: str = "auto") -> None:
    started = time.perf_counter()
    try:
        statement = parse_statement(data, format)
    except StatementRejected as error:
        assert "could not be read" not in error.detail  # the catch-all means a parser bug
        assert error.line is not None or error.code == "unknown_format", error.detail
    else:
        _check_storable(statement)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_odd_value_in_any_field_of_any_format_is_read_or_refused_naming_its_line(name):
    data = SAMPLES[name]
    for pattern, values in ((_NUMBER, AMOUNTS), (_DATE, DATES), (_CELL, CELLS)):
        count = len(pattern.findall(data))
        # At most five places per kind, spread over the file: header, data and summary lines.
        places = sorted({round(i * (count - 1) / 4) for i in range(5)}) if count else []
        for choice in range(len(values)):
            for place in places:
                _read_or_refused(_swap(pattern, values)(data, (place + 0.5) / count, choice))
    for edit in ("newlines", "bom", "reencode", "declared"):
        for choice in range(4):
            _read_or_refused(EDITS[edit](data, 0, choice))


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.sampled_from(sorted(SAMPLES)),
    st.lists(
        st.tuples(st.sampled_from(sorted(EDITS)), st.floats(0, 1), st.integers(0, 10_000)),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["auto", "auto", *FORMATS]),
)
def test_every_format_reads_a_damaged_file_whole_or_refuses_it_naming_its_line(name, edits, format):
    data = SAMPLES[name]
    for edit, where, choice in edits:
        data = EDITS[edit](data, where, choice)
    _read_or_refused(data, format)
