"""A doubtful file is refused whole, naming the line (header counted) and the value."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.adapters import statements
from app.adapters.statements import canonical_csv, parse_statement, text
from app.domain.errors import StatementRejected

DATA = Path(__file__).resolve().parents[2] / "data" / "statements"
HEADER = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo"


def canonical(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


def refusal(data: bytes, format: str = "auto") -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, format)
    return caught.value


@pytest.mark.parametrize("data", [b"", b"   \n\n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_empty_file_is_refused_at_line_one(data):
    error = refusal(data)
    assert error.line == 1
    assert "empty" in error.detail


def test_binary_file_with_a_nul_byte_is_refused_naming_its_line():
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,") + b"garbage\x00\x01\x02")
    assert error.line == 3
    assert "binary" in error.detail


@pytest.mark.parametrize("magic", [b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"PK\x03\x04\x14\x00"])
def test_excel_workbook_is_refused_with_a_hint_to_export_csv(magic):
    error = refusal(magic + b"\x00" * 20)
    assert error.line == 1
    assert "Excel" in error.detail


def test_undecodable_bytes_are_refused_naming_the_line():
    data = canonical("T1,2026-11-26,1,CNY,,,") + b"T2,2026-11-26,1,CNY,,,\xff\xfe\xff\n"
    error = refusal(data)
    assert error.line == 3
    assert "undecodable" in error.detail


def test_amount_below_fen_refuses_whole_file_naming_line():
    error = refusal(canonical("T1,2026-11-26,1.00,CNY,,,", "T2,2026-11-26,1.005,CNY,,,"))
    assert error.line == 3
    assert "'1.005'" in error.detail
    assert "below the fen" in error.detail
    assert error.detail.startswith("line 3: ")


def test_trailing_zeros_below_the_fen_are_exact():
    (line,) = parse_statement(canonical("T1,2026-11-26,8.850,CNY,,,")).lines
    assert line.amount_fen == 885


@pytest.mark.parametrize("amount", ["1e2", "12,34", "abc", "1.2.3", "--5", "NaN", "¥100", "1 000"])
def test_malformed_amount_refuses_naming_line_and_value(amount):
    error = refusal(canonical(f'T1,2026-11-26,"{amount}",CNY,,,'))
    assert error.line == 2
    assert repr(amount) in error.detail


def test_implausibly_large_amount_is_refused():
    error = refusal(canonical("T1,2026-11-26,123456789012345678.00,CNY,,,"))
    assert error.line == 2


@pytest.mark.parametrize("amount", ["9" * 5000, "-" + "9" * 5000, "1" + ",000" * 1500 + ".00"])
def test_amount_with_thousands_of_digits_is_refused_naming_line_and_value(amount):
    error = refusal(canonical("T1,2026-11-26,1.00,CNY,,,", f'T2,2026-11-26,"{amount}",CNY,,,'))
    assert error.line == 3
    assert "implausibly large" in error.detail
    assert repr(amount[:80] + "…") in error.detail


@pytest.mark.parametrize("date", ["2026-02-30", "2026-13-01", "26-11-2026", "yesterday"])
def test_bad_date_refuses_naming_line_and_value(date):
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,", f"T2,{date},1,CNY,,,"))
    assert error.line == 3
    assert repr(date) in error.detail


@pytest.mark.parametrize(
    "moment", ["2026-11-26T10:00:00+05:30:15", "2026-11-26T10:00:00.123456+05:30:15.123456"]
)
def test_timestamp_with_seconds_in_its_utc_offset_is_refused(moment):
    # ISO 8601 offsets are hours and minutes; Python reads more, which the 40 characters of
    # a stored booking time cannot hold.
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,", f"T2,{moment},1,CNY,,,"))
    assert error.line == 3
    assert "bad booked_at date" in error.detail


def test_missing_required_cell_refuses_the_file():
    error = refusal(canonical("T1,,1,CNY,,,"))
    assert error.line == 2
    assert "booked_at" in error.detail


def test_short_record_refuses_the_file():
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,", "T2,2026-11-26,1"))
    assert error.line == 3
    assert "'T2,2026-11-26,1'" in error.detail


def test_unterminated_quote_of_a_truncated_file_is_refused():
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,") + b'T2,2026-11-26,1,CNY,,,"half a me')
    assert error.line == 3


def test_stray_quote_inside_a_cell_is_refused_not_glued():
    error = refusal(canonical('T1,2026-11-26,1,CNY,"a"b,,'))
    assert error.line == 2
    assert "malformed CSV" in error.detail


def test_overlong_line_is_refused():
    memo = "x" * (text.MAX_LINE_CHARS + 1)
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,", f"T2,2026-11-26,1,CNY,,,{memo}"))
    assert error.line == 3


def test_oversized_file_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(text, "MAX_FILE_BYTES", 1000)
    error = refusal(canonical(*["T1,2026-11-26,1,CNY,,,"] * 100))
    assert error.line == 1
    assert "larger than" in error.detail


def test_unknown_format_name_has_code_unknown_format():
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,"), "ofx")
    assert error.code == "unknown_format"
    assert "'ofx'" in error.detail


def test_unrecognised_layout_is_refused_naming_its_first_line():
    error = refusal("\n日期,金额,说明\n2024-01-01,1.00,x\n".encode("gbk"))
    assert error.line == 2
    assert "unrecognised" in error.detail
    assert "'日期,金额,说明'" in error.detail


def test_xml_file_requested_as_csv_is_refused(data_file):
    error = refusal(data_file("oca-test-camt053.xml"), "csv")
    assert error.line == 1


def test_csv_file_requested_as_camt053_is_refused():
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,"), "camt053")
    assert error.line == 1


def test_csv_file_requested_as_mt940_is_refused():
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,"), "mt940")
    assert error.line == 1


def test_unexpected_error_inside_a_parser_becomes_statement_rejected(monkeypatch):
    def broken(text):
        raise KeyError("bug")

    monkeypatch.setattr(canonical_csv, "parse", broken)
    error = refusal(canonical("T1,2026-11-26,1,CNY,,,"))
    assert "KeyError" in error.detail
    assert isinstance(error.__cause__, KeyError)


def test_refusal_of_a_huge_cell_shows_a_shortened_value():
    error = refusal(canonical(f"T1,2026-11-26,{'9' * 5000},CNY,,,"))
    assert len(error.detail) < 300


def test_repeated_transaction_id_in_one_file_is_no_id():
    data = canonical("T1,2026-11-26,1,CNY,,,", "T1,2026-11-26,2,CNY,,,", "T2,2026-11-26,3,CNY,,,")
    ids = [line.transaction_id for line in parse_statement(data).lines]
    assert ids == [None, None, "T2"]


def test_formats_list_names_every_accepted_format():
    assert set(statements.FORMATS) == {
        "auto", "csv", "mt940", "camt053", "icbc", "ccb", "abc", "boc", "bocom", "cmb",
    }


def test_utf8_file_with_one_damaged_byte_is_refused_not_read_as_gbk():
    data = canonical("T1,2026-11-26,1,CNY,上海甲公司,1,充值", "T2,2026-11-26,1,CNY,北京乙公司,2,付款")
    damaged = data.replace("北京".encode(), b"\xe5\x8c")  # cut in the middle of a character
    error = refusal(damaged)
    assert error.line == 3
    assert "UTF-8" in error.detail


def test_utf8_file_truncated_inside_a_character_is_refused():
    data = canonical("T1,2026-11-26,1,CNY,上海甲公司,1,充值")
    error = refusal(data.rstrip(b"\n")[:-1])
    assert error.line == 2


_SAMPLES = [
    "canonical.csv", "icbc-debit-v2.csv", "cmb-debit.csv", "ccb-corporate.csv",
    "cmxl-mt940.sta", "rabobank-iban.sta", "oca-test-camt053.xml",
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_SAMPLES),
    st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=4), st.integers(0, 20)), max_size=4),
)
def test_damaged_files_are_read_or_refused_with_a_line_never_crash(name, edits):
    data = bytearray((DATA / name).read_bytes())
    for where, insert, cut in edits:
        at = int(where * len(data))
        data[at : at + cut] = insert
    try:
        statement = parse_statement(bytes(data))
    except StatementRejected as error:
        assert error.line is not None, error.detail
        assert "could not be read" not in error.detail  # the catch-all means a parser bug
        return
    for line in statement.lines:
        assert line.amount_fen > 0
        assert line.direction in ("in", "out")
        assert line.line_no >= 1
