"""The canonical CSV statement of API.md."""
from __future__ import annotations

import datetime

import pytest

from app.adapters.statements import parse_statement
from app.domain.errors import StatementRejected

HEADER = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo"


def csv_bytes(*rows: str, header: str = HEADER, bom: bool = False) -> bytes:
    text = "\n".join([header, *rows]) + "\n"
    return ("\ufeff" if bom else "").encode() + text.encode("utf-8")


def test_canonical_fixture_is_detected_and_read(data_file):
    statement = parse_statement(data_file("canonical.csv"))
    assert statement.format == "csv"
    assert [line.line_no for line in statement.lines] == [2, 3, 4]
    first = statement.lines[0]
    assert first.transaction_id == "BANK-0001"
    assert first.memo == "充值 GC7K-2M4P-Q"
    assert first.counterparty_name == "上海甲公司"
    assert first.counterparty_account == "31001234567890123456"


def test_canonical_positive_amount_is_incoming():
    (line,) = parse_statement(csv_bytes("T1,2026-11-26,100.00,CNY,甲,1,memo")).lines
    assert (line.direction, line.amount_fen) == ("in", 10000)


def test_canonical_negative_amount_is_outgoing_with_positive_fen():
    (line,) = parse_statement(csv_bytes("T1,2026-11-26,-25.5,CNY,甲,1,memo")).lines
    assert (line.direction, line.amount_fen) == ("out", 2550)


def test_canonical_empty_transaction_id_is_none():
    (line,) = parse_statement(csv_bytes(",2026-11-26,1,CNY,,,")).lines
    assert line.transaction_id is None


def test_canonical_accepts_bom_and_ignores_extra_columns():
    data = csv_bytes(
        "x,T1,2026-11-26,1.00,CNY,甲,6222,充值,y",
        header="extra," + HEADER + ",another",
        bom=True,
    )
    (line,) = parse_statement(data).lines
    assert line.transaction_id == "T1"
    assert line.memo == "充值"


def test_canonical_header_is_case_insensitive_in_any_order():
    header = "Memo,AMOUNT,booked_at,currency,transaction_id,counterparty_account,counterparty_name"
    (line,) = parse_statement(csv_bytes("备注,5,2026-11-26,CNY,T9,6222,甲", header=header)).lines
    assert (line.memo, line.amount_fen, line.transaction_id) == ("备注", 500, "T9")


def test_canonical_timestamp_booked_at_keeps_its_offset():
    (line,) = parse_statement(csv_bytes("T1,2026-11-26T09:30:00+08:00,1,CNY,,,")).lines
    assert line.booked_at == datetime.datetime(
        2026, 11, 26, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=8))
    )


def test_canonical_date_booked_at_is_a_date():
    (line,) = parse_statement(csv_bytes("T1,2026-11-26,1,CNY,,,")).lines
    assert line.booked_at == datetime.date(2026, 11, 26)
    assert not isinstance(line.booked_at, datetime.datetime)


@pytest.mark.parametrize("name", ["人民币", "RMB", "cny", "CNY"])
def test_canonical_chinese_and_lowercase_currency_names_map_to_cny(name):
    (line,) = parse_statement(csv_bytes(f"T1,2026-11-26,1,{name},,,")).lines
    assert line.currency == "CNY"


def test_canonical_foreign_currency_is_kept_not_converted():
    (line,) = parse_statement(csv_bytes("T1,2026-11-26,1,EUR,,,")).lines
    assert (line.currency, line.amount_fen) == ("EUR", 100)


def test_canonical_quoted_memo_with_newline_is_one_record_numbered_by_first_line():
    data = csv_bytes('T1,2026-11-26,1,CNY,甲,1,"line one\nline two"', "T2,2026-11-27,2,CNY,,,")
    first, second = parse_statement(data).lines
    assert first.memo == "line one\nline two"
    assert (first.line_no, second.line_no) == (2, 4)
    assert first.raw == 'T1,2026-11-26,1,CNY,甲,1,"line one\nline two"'


def test_canonical_crlf_line_endings_are_read():
    data = csv_bytes("T1,2026-11-26,1,CNY,,,", "T2,2026-11-26,2,CNY,,,").replace(b"\n", b"\r\n")
    lines = parse_statement(data).lines
    assert [line.line_no for line in lines] == [2, 3]
    assert lines[0].raw == "T1,2026-11-26,1,CNY,,,"


def test_canonical_blank_lines_are_skipped_but_counted():
    data = csv_bytes("", "T1,2026-11-26,1,CNY,,,", "")
    (line,) = parse_statement(data).lines
    assert line.line_no == 3


def test_canonical_header_only_file_has_no_lines():
    assert parse_statement(csv_bytes()).lines == ()


def test_canonical_header_missing_a_column_is_refused_naming_it():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(csv_bytes("T1,2026-11-26,1,CNY,,", header=HEADER.rsplit(",", 1)[0]), "csv")
    assert caught.value.line == 1
    assert "memo" in caught.value.detail


def test_canonical_column_named_twice_is_refused():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(csv_bytes("T1,2026-11-26,1,CNY,,,,2", header=HEADER + ",amount"))
    assert caught.value.line == 1
    assert "amount" in caught.value.detail


@pytest.mark.parametrize("header", [
    "\ufeff" + HEADER + ",transaction_id",  # a second byte order mark before the first name
    HEADER.replace("amount", " amount\t") + ",amount",
])
def test_canonical_column_named_twice_is_refused_however_its_names_are_padded(header):
    with pytest.raises(StatementRejected) as caught:
        parse_statement(csv_bytes("T1,2026-11-26,1,CNY,,,,T2", header=header, bom=True), "csv")
    assert caught.value.line == 1
    assert "named twice" in caught.value.detail


def test_canonical_zero_amount_refuses_the_file():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(csv_bytes("T1,2026-11-26,1,CNY,,,", "T2,2026-11-26,0.00,CNY,,,"))
    assert caught.value.line == 3
    assert "'0.00'" in caught.value.detail


def test_canonical_missing_currency_cell_refuses_the_file():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(csv_bytes("T1,2026-11-26,1,,,,"))
    assert caught.value.line == 2
    assert "currency" in caught.value.detail


def test_canonical_unknown_currency_refuses_naming_the_value():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(csv_bytes("T1,2026-11-26,1,Yuan!,,,"))
    assert caught.value.line == 2
    assert "'Yuan!'" in caught.value.detail
