"""CSV exports of ICBC, CCB, ABC, BOC, BOCOM and CMB."""
from __future__ import annotations

import codecs
import datetime
import time

import pytest

from app.adapters.statements import parse_statement
from app.adapters.statements.bank_presets import normalise_header
from app.adapters.statements.chinese_banks import split_party
from app.domain.errors import StatementRejected

ENCODINGS = ["gbk", "utf-8-sig", "utf-8"]


def encoded(text: str, encoding: str) -> bytes:
    """Encode a fixture as a bank would export it (GBK, or UTF-8 with/without BOM)."""
    data = text.encode(encoding)
    if encoding == "utf-8-sig":
        assert data.startswith(codecs.BOM_UTF8)
    return data


def rejected(data: bytes, format: str = "auto") -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, format)
    return caught.value


# ICBC: the real personal export (preamble, padded cells, income/expense, summary)


def test_icbc_sample_reads_every_transaction_between_preamble_and_summary(data_file):
    statement = parse_statement(data_file("icbc-debit-v2.csv"))
    assert statement.format == "icbc"
    assert len(statement.lines) == 11
    assert statement.lines[0].line_no == 8  # 7 preamble and header lines come first
    assert statement.lines[-1].line_no == 18


def test_icbc_export_income_column_is_incoming(data_file):
    line = parse_statement(data_file("icbc-debit-v2.csv")).lines[2]
    assert (line.direction, line.amount_fen) == ("in", 123456)
    assert line.memo == "他行汇入"
    assert line.counterparty_name == "李四"


def test_icbc_export_expense_column_is_outgoing(data_file):
    line = parse_statement(data_file("icbc-debit-v2.csv")).lines[0]
    assert (line.direction, line.amount_fen, line.currency) == ("out", 1340, "CNY")
    assert line.booked_at == datetime.date(2023, 5, 2)


def test_icbc_padded_cells_are_trimmed_and_raw_kept(data_file):
    line = parse_statement(data_file("icbc-debit-v2.csv")).lines[0]
    assert line.counterparty_name == "深圳市财付通支付科技有限公司"
    assert line.counterparty_account == "1234****9876"
    assert line.raw.startswith("2023-05-02     \t,")


def test_icbc_card_number_in_preamble_is_the_statement_account(data_file):
    assert parse_statement(data_file("icbc-debit-v2.csv")).account == "1234****9876"


def test_icbc_export_has_no_transaction_ids(data_file):
    lines = parse_statement(data_file("icbc-debit-v2.csv")).lines
    assert all(line.transaction_id is None for line in lines)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_icbc_sample_reencoded_reads_the_same(data_file, encoding):
    original = parse_statement(data_file("icbc-debit-v2.csv"))
    text = data_file("icbc-debit-v2.csv").decode("utf-8")
    assert parse_statement(text.encode(encoding)) == original


def test_icbc_negative_income_is_a_reversal_going_out():
    text = (
        "交易日期,摘要,交易金额(收入),交易金额(支出),交易币种,对方户名,对方账户\n"
        "2024-01-02,冲正,-100.00,,人民币,甲,1\n"
    )
    (line,) = parse_statement(text.encode("gbk")).lines
    assert (line.direction, line.amount_fen, line.reversal) == ("out", 10000, True)


def test_icbc_negative_expense_is_a_reversal_coming_in():
    # Money back from a corrected debit, never a customer's transfer: the reversal flag
    # keeps the reconciler from crediting it.
    text = (
        "交易日期,摘要,交易金额(收入),交易金额(支出),交易币种,对方户名,对方账户\n"
        "2024-01-02,冲正 GC7K-2M4P-Q,,-100.00,人民币,甲,1\n"
    )
    (line,) = parse_statement(text.encode("gbk")).lines
    assert (line.direction, line.amount_fen, line.reversal) == ("in", 10000, True)


def test_icbc_both_income_and_expense_refuses_naming_line():
    text = (
        "交易日期,摘要,交易金额(收入),交易金额(支出),交易币种,对方户名,对方账户\n"
        "2024-01-02,x,1.00,2.00,人民币,甲,1\n"
    )
    error = rejected(text.encode("gbk"))
    assert error.line == 2
    assert "both" in error.detail


def test_icbc_full_width_brackets_in_header_are_recognised():
    text = (
        "交易日期,摘要,交易金额（收入）,交易金额（支出）,交易币种,对方户名,对方账户\n"
        "2024-01-02,汇入,1.00,,人民币,甲,1\n"
    )
    statement = parse_statement(text.encode("gbk"))
    assert statement.format == "icbc"
    assert statement.lines[0].direction == "in"


# CMB: the real personal export (signed amounts, name and account in one cell)


def test_cmb_signed_amount_with_thousands_separator(data_file):
    first, second = parse_statement(data_file("cmb-debit.csv")).lines[:2]
    assert (first.direction, first.amount_fen) == ("in", 123400)
    assert (second.direction, second.amount_fen) == ("out", 100000)


def test_cmb_counterparty_cell_splits_into_name_and_account(data_file):
    lines = parse_statement(data_file("cmb-debit.csv")).lines
    assert (lines[0].counterparty_name, lines[0].counterparty_account) == (
        "北京住房公积金管理中心",
        "1111111111",
    )
    assert (lines[1].counterparty_name, lines[1].counterparty_account) == ("张三", "66666666666666")
    assert (lines[3].counterparty_name, lines[3].counterparty_account) == ("", "")


def test_cmb_memo_joins_transaction_summary_and_customer_memo(data_file):
    line = parse_statement(data_file("cmb-debit.csv")).lines[0]
    assert line.memo == "代发住房公积金 01月01日约定提取"


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("张三 6222021234567890", ("张三", "6222021234567890")),
        ("某某公司2号店", ("某某公司2号店", "")),
        ("6222021234567890", ("", "6222021234567890")),
        ("ACME GmbH DE89370400440532013000", ("ACME GmbH", "DE89370400440532013000")),
        ("", ("", "")),
    ],
)
def test_combined_counterparty_cell_keeps_short_numbers_in_the_name(cell, expected):
    assert split_party(cell) == expected


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("张三 6222-0212-3456", ("张三", "6222-0212-3456")),
        ("商户-6222021234567890", ("商户-", "6222021234567890")),
        ("ACMEDE89370400440532013000", ("ACME", "DE89370400440532013000")),
        ("张三 ： 6222021234567890", ("张三", "6222021234567890")),
        ("张\n三 6222021234567890", ("张\n三 6222021234567890", "")),
    ],
)
def test_combined_counterparty_cell_splits_at_the_trailing_account(cell, expected):
    assert split_party(cell) == expected


@pytest.mark.parametrize(
    "cell",
    ["商户" + " " * 16000 + "x", "0" * 16000 + "x", "商户" + "-0" * 8000 + "x", "：" * 16000 + "x"],
    ids=["spaces", "digits", "dashed-digits", "colons"],
)
def test_combined_counterparty_cell_is_split_in_linear_time(cell):
    # A statement line may be 16 KiB long: a cell that backtracks quadratically would keep
    # an upload (or the inbox job) busy for seconds per line, hours per file.
    started = time.perf_counter()
    assert split_party(cell) == (cell, "")
    assert time.perf_counter() - started < 0.25


@pytest.mark.parametrize(
    "cell, name",
    [
        ("交易日期[ Transaction Date ]", "交易日期"),
        ("交易金额（收入）【Credit Amount】", "交易金额(收入)"),
        ("摘要[备注][ Memo ]", "摘要[备注]"),
        ("对方户名", "对方户名"),
    ],
)
def test_header_name_loses_its_bilingual_suffix(cell, name):
    assert normalise_header(cell) == name


@pytest.mark.parametrize(
    "cell", ["[" * 16000, "[" * 16000 + "]x]", "【" * 16000 + "】x】"], ids=["open", "closed", "full-width"]
)
def test_header_search_reads_a_cell_of_brackets_in_linear_time(cell):
    # Every cell of the lines before the header is normalised: a cell that backtracks
    # quadratically cost a third of a second, half a minute for a file of 100 such lines.
    started = time.perf_counter()
    error = rejected((f"{cell},x\n" * 10).encode())
    assert "unrecognised statement layout" in error.detail
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_cmb_corporate_export_ids_and_split_columns(fixture_text, encoding):
    statement = parse_statement(encoded(fixture_text("cmb-corporate.csv"), encoding))
    assert statement.format == "cmb"
    credit, debit = statement.lines
    assert (credit.direction, credit.amount_fen, credit.transaction_id) == (
        "in",
        800000,
        "G1234500000001",
    )
    assert credit.booked_at == datetime.datetime(2024, 11, 5, 10, 23, 45)
    assert credit.memo == "汇入 充值GC7K2M4PQ"
    assert (debit.direction, debit.amount_fen, debit.counterparty_name) == (
        "out",
        200000,
        "北京乙公司",
    )


# CCB: credit/debit columns, ids, preamble and a summary line


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_ccb_credit_column_is_incoming_and_debit_column_outgoing(fixture_text, encoding):
    statement = parse_statement(encoded(fixture_text("ccb-corporate.csv"), encoding))
    assert statement.format == "ccb"
    assert [(line.direction, line.amount_fen) for line in statement.lines] == [
        ("in", 5000000),
        ("out", 120050),
        ("in", 30000),
    ]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_ccb_detail_number_is_transaction_id_without_excel_wrappers(fixture_text, encoding):
    statement = parse_statement(encoded(fixture_text("ccb-corporate.csv"), encoding))
    assert [line.transaction_id for line in statement.lines] == [
        "11050162540000000123-0001",  # written ="..."
        "11050162540000000123-0002",  # with a trailing tab
        "11050162540000000123-0003",  # with a leading '
    ]


def test_ccb_preamble_and_summary_lines_are_skipped(fixture_text):
    statement = parse_statement(encoded(fixture_text("ccb-corporate.csv"), "gbk"))
    assert [line.line_no for line in statement.lines] == [7, 8, 9]
    assert statement.account == "11050162540000000123"
    first = statement.lines[0]
    assert first.booked_at == datetime.datetime(2024, 11, 5, 10, 23, 45)
    assert first.memo == "转账存入 充值 GC7K-2M4P-Q"
    assert first.counterparty_account == "31001234567890123456"


def test_ccb_transaction_after_the_summary_refuses_the_file(fixture_text):
    text = fixture_text("ccb-corporate.csv") + fixture_text("ccb-corporate.csv").splitlines()[6]
    error = rejected(text.encode("gbk"))
    assert error.line == 11
    assert "summary" in error.detail


# ABC: signed "+10000.00" amounts, separate time column, 日志号 ids


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_abc_plus_signed_amount_is_incoming_and_minus_outgoing(fixture_text, encoding):
    statement = parse_statement(encoded(fixture_text("abc-personal.csv"), encoding))
    assert statement.format == "abc"
    assert [(line.direction, line.amount_fen) for line in statement.lines] == [
        ("in", 1000000),
        ("out", 5000),
        ("in", 885),  # "+8.850": trailing zero below the fen is exact
    ]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_abc_log_number_is_transaction_id_and_time_column_joins_date(fixture_text, encoding):
    first = parse_statement(encoded(fixture_text("abc-personal.csv"), encoding)).lines[0]
    assert first.transaction_id == "20241103001234"
    assert first.booked_at == datetime.datetime(2024, 11, 3, 10, 15, 30)
    assert first.memo == "GC7K-2M4P-Q 货款"


def test_abc_dash_cells_are_empty(fixture_text):
    second = parse_statement(encoded(fixture_text("abc-personal.csv"), "gbk")).lines[1]
    assert (second.counterparty_name, second.counterparty_account) == ("", "")


# BOC: one signed 金额 column, 币别, 附言


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_boc_signed_amount_column_and_remark_memo(fixture_text, encoding):
    statement = parse_statement(encoded(fixture_text("boc-personal.csv"), encoding))
    assert statement.format == "boc"
    credit, debit = statement.lines
    assert (credit.direction, credit.amount_fen, credit.currency) == ("in", 2000000, "CNY")
    assert credit.memo == "充值 GC7K-2M4P-Q"
    assert credit.counterparty_account == "31001234567890123456"
    assert (debit.direction, debit.amount_fen) == ("out", 9900)


# BOCOM: unsigned amount with a 借贷 flag column, no currency column


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_bocom_credit_flag_is_incoming_and_debit_flag_outgoing(fixture_text, encoding):
    statement = parse_statement(encoded(fixture_text("bocom-personal.csv"), encoding))
    assert statement.format == "bocom"
    assert [(line.direction, line.amount_fen) for line in statement.lines] == [
        ("in", 300000),
        ("out", 12850),
    ]


def test_bocom_export_without_currency_column_is_cny(fixture_text):
    lines = parse_statement(encoded(fixture_text("bocom-personal.csv"), "gbk")).lines
    assert {line.currency for line in lines} == {"CNY"}


@pytest.mark.parametrize("flag", ["贷", "Cr", "C", "贷方"])
def test_bocom_credit_flag_spellings(flag):
    text = f"交易日期,借贷,交易金额,对方户名,对方账号,摘要\n2024-11-02,{flag},1.00,甲,1,m\n"
    assert parse_statement(text.encode("gbk")).lines[0].direction == "in"


@pytest.mark.parametrize("flag", ["?", "贷 Dr", ""])
def test_bocom_unknown_or_contradictory_flag_refuses_naming_it(flag):
    text = f"交易日期,借贷,交易金额,对方户名,对方账号,摘要\n2024-11-02,{flag},1.00,甲,1,m\n"
    error = rejected(text.encode("gbk"))
    assert error.line == 2


# Layout and refusals common to every bank


@pytest.mark.parametrize(
    "name, format",
    [
        ("icbc-debit-v2.csv", "icbc"),
        ("cmb-debit.csv", "cmb"),
        ("cmb-corporate.csv", "cmb"),
        ("ccb-corporate.csv", "ccb"),
        ("abc-personal.csv", "abc"),
        ("boc-personal.csv", "boc"),
        ("bocom-personal.csv", "bocom"),
    ],
)
def test_named_bank_format_reads_the_same_as_detection(data_file, name, format):
    detected = parse_statement(data_file(name))
    assert detected.format == format
    assert parse_statement(data_file(name), format) == detected


def test_another_banks_format_name_refuses_the_file(data_file):
    error = rejected(data_file("icbc-debit-v2.csv"), "ccb")
    assert error.line == 1
    assert "CCB" in error.detail


def test_bad_date_in_a_bank_export_names_line_and_value(fixture_text):
    text = fixture_text("boc-personal.csv").replace("2024-11-04", "2024-11-31")
    error = rejected(text.encode("gbk"))
    assert error.line == 7
    assert "'2024-11-31'" in error.detail


def test_amount_below_fen_in_a_bank_export_refuses_the_file(fixture_text):
    text = fixture_text("boc-personal.csv").replace("-99.00", "-99.001")
    error = rejected(text.encode("gbk"))
    assert error.line == 7
    assert "'-99.001'" in error.detail


def test_missing_amount_in_a_bank_export_refuses_the_file(fixture_text):
    text = fixture_text("boc-personal.csv").replace("-99.00", "")
    error = rejected(text.encode("gbk"))
    assert error.line == 7
    assert "missing amount" in error.detail


def test_truncated_record_in_a_bank_export_refuses_the_file(fixture_text):
    text = fixture_text("boc-personal.csv").rstrip("\n")
    text = text[: text.rfind(",话费充值")]
    error = rejected(text.encode("gbk"))
    assert error.line == 7
    assert "truncated" in error.detail


def test_line_without_any_date_in_the_data_refuses_the_file(fixture_text):
    lines = fixture_text("boc-personal.csv").splitlines()
    lines.insert(5, ",10:15:30,人民币,1.00,1.00,转账汇入,网上银行,,x,甲,1,行")
    error = rejected("\n".join(lines).encode("gbk"))
    assert error.line == 6
    assert "missing date" in error.detail


def test_zero_amount_information_line_is_left_out(fixture_text):
    lines = fixture_text("boc-personal.csv").splitlines()
    lines.append("2024-11-05,00:00:00,人民币,0.00,24901.00,结息,系统,,,,,")
    statement = parse_statement("\n".join(lines).encode("gbk"))
    assert len(statement.lines) == 2


def test_repeated_bank_id_within_a_file_is_not_used_as_id(fixture_text):
    text = fixture_text("ccb-corporate.csv").replace("-0003", "-0001")
    lines = parse_statement(text.encode("gbk")).lines
    assert [line.transaction_id for line in lines] == [None, "11050162540000000123-0002", None]
