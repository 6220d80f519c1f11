"""SWIFT MT940 statements."""
from __future__ import annotations

import datetime
from decimal import Decimal

import mt940
import pytest

from app.adapters.statements import parse_statement
from app.domain.errors import StatementRejected
from app.domain.statements import line_identities


def statement(*body: str, opening="C240101CNY1000,00", closing="C240131CNY1000,00", ref="S1"):
    """Return one MT940 message with the given :61:/:86: lines between its balances."""
    return "\n".join(
        [f":20:{ref}", ":25:6222000000000001", ":28C:1/1", f":60F:{opening}", *body,
         f":62F:{closing}", "-"]
    ) + "\n"


def parse_text(text: str):
    return parse_statement(text.encode("utf-8"))


def rejected(text: str) -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        parse_text(text)
    return caught.value


# The real samples


def test_mt940_cmxl_sample_gives_its_sixteen_transactions(data_file):
    result = parse_statement(data_file("cmxl-mt940.sta"))
    assert result.format == "mt940"
    assert len(result.lines) == 16


@pytest.mark.parametrize("name", ["cmxl-mt940.sta", "rabobank-iban.sta"])
def test_mt940_amounts_and_dates_agree_with_the_packages_raw_output(data_file, name):
    # wolph's mt940 used the plain way (its own split into statements, no options of
    # ours): it copes with these two files, so it is an independent reading of them.
    statements = mt940.parse_statements(data_file(name).decode("utf-8"))
    expected = [
        (t.data["amount"].amount, t.data.get("entry_date") or t.data["date"], s.currency)
        for s in statements
        for t in s
    ]
    ours = [
        (Decimal(line.amount_fen if line.direction == "in" else -line.amount_fen) / 100,
         line.booked_at, line.currency)
        for line in parse_statement(data_file(name)).lines
    ]
    assert ours == expected


def test_mt940_references_agree_with_the_packages_raw_output(data_file):
    transactions = mt940.parse(data_file("cmxl-mt940.sta").decode("utf-8"))
    lines = parse_statement(data_file("cmxl-mt940.sta")).lines
    assert len(transactions) == len(lines)
    references = [(t.data["customer_reference"], line.reference)
                  for t, line in zip(transactions, lines)]
    # NONREF is no reference: ours then comes from the :86:, which has none here.
    assert [theirs for theirs, _ in references if theirs != "NONREF"] == [
        ours for theirs, ours in references if theirs != "NONREF"]
    assert {ours for theirs, ours in references if theirs == "NONREF"} == {""}


def test_mt940_statements_split_on_20_keep_their_own_currency(data_file):
    lines = parse_statement(data_file("cmxl-mt940.sta")).lines
    assert [line.currency for line in lines] == ["DEM"] * 11 + ["EUR"] * 2 + ["PLN"] * 3


def test_mt940_line_number_is_that_of_the_61_field(data_file):
    lines = parse_statement(data_file("cmxl-mt940.sta")).lines
    assert [line.line_no for line in lines[:2]] == [5, 7]
    assert lines[11].line_no == 36
    assert lines[11].raw.startswith(":61:0211011102DR800,NSTONONREF//55555\n:86:008?00")


def test_mt940_has_no_transaction_ids(data_file):
    for name in ("cmxl-mt940.sta", "rabobank-iban.sta"):
        assert all(line.transaction_id is None for line in parse_statement(data_file(name)).lines)


def test_mt940_debit_with_funds_code_is_outgoing(data_file):
    line = parse_statement(data_file("cmxl-mt940.sta")).lines[11]  # "DR800," = D, funds code R
    assert (line.direction, line.amount_fen, line.reversal) == ("out", 80000, False)
    assert line.booked_at == datetime.date(2002, 11, 2)  # entry date 1102, not value date


def test_mt940_question_mark_subfields_give_memo_name_and_account(data_file):
    lines = parse_statement(data_file("cmxl-mt940.sta")).lines
    assert lines[11].memo == "Miete November"
    assert lines[11].counterparty_name == "MUELLER"
    assert lines[11].counterparty_account == "234567"
    # ?20 wrapped over two physical lines ("Oktob" / "er") is one word again
    assert lines[12].memo.startswith("Gehalt Oktober")


def test_mt940_iban_subfield_and_wrapped_purpose(data_file):
    line = parse_statement(data_file("cmxl-mt940.sta")).lines[13]
    assert line.counterparty_account == "PL08106000760000777777777777"
    assert line.counterparty_name == "HUTA SZKLA TOPIC ULPRZEMYSLOWA 67 32-669 WROCLAW"
    assert "TRANZYSTORY-300 SZT" in line.memo
    assert line.memo.startswith("Card transaction ")  # the :61: supplementary text


def test_mt940_customer_reference_is_the_reference(data_file):
    line = parse_statement(data_file("cmxl-mt940.sta")).lines[14]
    assert line.reference == "REF 25611247"


def test_mt940_slash_tags_give_name_remittance_and_end_to_end_reference(data_file):
    first, second = parse_statement(data_file("rabobank-iban.sta")).lines[:2]
    assert first.counterparty_name == "CONTRA ACCOUNT HOLDER"
    assert first.reference == "01-01-2013 12:00 0030000987654321"
    assert second.counterparty_name == "JOHN DOE"
    assert second.memo == "Reference 201301234"


def test_mt940_account_on_the_second_61_line_is_the_counterparty_account(data_file):
    first, second = parse_statement(data_file("rabobank-iban.sta")).lines[:2]
    assert first.counterparty_account == "NL70ABNA0987654321"
    assert second.counterparty_account == "P001234567"


def test_mt940_statement_account_comes_from_25_when_all_agree(data_file):
    assert parse_statement(data_file("rabobank-iban.sta")).account == "NL71RABO0123456789"
    assert parse_statement(data_file("cmxl-mt940.sta")).account == ""  # three accounts


# Synthetic statements for the traps


def test_mt940_payer_name_on_the_second_61_line_is_read():
    text = statement(
        ":61:2401020102C500,00NTRFNONREF//B1",
        "ZHANG SAN TRADING",
        "CO LTD",
        ":86:GC7K-2M4P-Q",
        closing="C240131CNY1500,00",
    )
    (line,) = parse_text(text).lines
    assert line.counterparty_name == "ZHANG SAN TRADING CO LTD"
    assert line.memo == "GC7K-2M4P-Q"
    assert (line.direction, line.amount_fen, line.currency) == ("in", 50000, "CNY")


def test_mt940_reversal_of_credit_goes_out_and_of_debit_comes_in():
    text = statement(
        ":61:240102RC100,00NTRFNONREF",
        ":86:reversed credit",
        ":61:240103RD30,00NTRFNONREF",
        ":86:reversed debit",
        closing="C240131CNY930,00",
    )
    rc, rd = parse_text(text).lines
    assert (rc.direction, rc.reversal) == ("out", True)
    assert (rd.direction, rd.reversal) == ("in", True)


def test_mt940_zero_amount_information_line_is_skipped():
    text = statement(
        ":61:240102C0,00NMSCNONREF",
        ":86:information only",
        ":61:240103C5,00NTRFNONREF",
        ":86:real",
        closing="C240131CNY1005,00",
    )
    (line,) = parse_text(text).lines
    assert line.memo == "real"


def test_mt940_multi_line_28c_is_read():
    text = statement(":61:240102C5,00NTRFNONREF", closing="C240131CNY1005,00").replace(
        ":28C:1/1", ":28C:00084/\n001"
    )
    (line,) = parse_text(text).lines
    assert line.line_no == 6


def test_mt940_malformed_28c_is_refused_naming_its_line():
    text = statement(":61:240102C5,00NTRFNONREF", closing="C240131CNY1005,00").replace(
        ":28C:1/1", ":28C:1/2/3"
    )
    error = rejected(text)
    assert error.line == 3
    assert "malformed statement number :28C:: '1/2/3'" in error.detail


def test_mt940_payer_name_on_a_single_second_61_line_is_the_name():
    text = statement(
        ":61:2401020102C500,00NTRFNONREF//B1", "ZHANG SAN TRADING CO LTD", ":86:GC7K-2M4P-Q",
        closing="C240131CNY1500,00",
    )
    (line,) = parse_text(text).lines
    assert (line.counterparty_name, line.memo) == ("ZHANG SAN TRADING CO LTD", "GC7K-2M4P-Q")


def test_mt940_payer_name_after_a_long_bank_reference_is_read():
    # Read whole, this :61: makes the package fail: a long bank reference, then two lines.
    text = statement(
        ":61:2401020102C500,00NTRFNONREF//" + "B" * 40, "ZHANG SAN TRADING", "CO LTD",
        ":86:GC7K-2M4P-Q", closing="C240131CNY1500,00",
    )
    (line,) = parse_text(text).lines
    assert line.counterparty_name == "ZHANG SAN TRADING CO LTD"
    assert line.line_no == 5


def test_mt940_long_bank_reference_does_not_become_the_payer_name():
    # Read as one line, the package puts the reference's last 17 characters where the
    # supplementary details (the payer's name) go.
    text = statement(":61:240102C5,00NTRFCUSTREF//" + "B" * 40, ":86:GC7K-2M4P-Q",
                     closing="C240131CNY1005,00")
    (line,) = parse_text(text).lines
    assert (line.counterparty_name, line.counterparty_account) == ("", "")
    assert line.memo == "GC7K-2M4P-Q"


def test_mt940_long_customer_reference_is_kept_whole():
    text = statement(":61:240102C5,00NTRFBIPI-dvT1FzfMqvzF5HaU4oetlH7SGRkonU//2207061639",
                     closing="C240131CNY1005,00")
    assert parse_text(text).lines[0].reference == "BIPI-dvT1FzfMqvzF5HaU4oetlH7SGRkonU"


def test_mt940_two_statements_in_one_file_keep_their_own_currency_and_account():
    one = statement(":61:240102C5,00NTRFNONREF", ":86:one", closing="C240131CNY1005,00", ref="A")
    two = statement(":61:240202D7,00NTRFNONREF", ":86:two", opening="C240201EUR50,00",
                    closing="C240229EUR43,00", ref="B")
    two = two.replace(":25:6222000000000001", ":25:DE02120300000000202051")
    two = two.replace(":60F:", ":60M:")  # an intermediate opening: no :60F: to fall back on
    result = parse_text(one + two)
    assert [(line.currency, line.memo) for line in result.lines] == [("CNY", "one"), ("EUR", "two")]
    assert [line.line_no for line in result.lines] == [5, 13]
    assert result.account == ""  # two accounts: the file names none
    same = parse_text(one + two.replace("DE02120300000000202051", "6222000000000001"))
    assert same.account == "6222000000000001"


def test_mt940_each_statement_is_checked_against_its_own_balances():
    one = statement(":61:240102C5,00NTRFNONREF", closing="C240131CNY1005,00", ref="A")
    two = statement(":61:240202D7,00NTRFNONREF", opening="C240201EUR50,00",
                    closing="C240229EUR44,00", ref="B")
    error = rejected(one + two)
    assert error.line == 13  # the second statement's :62F:
    assert "opening 5000 fen plus lines -700 fen" in error.detail


def test_mt940_lowercase_mark_is_signed_like_uppercase():
    text = statement(":61:240102rc5,00NTRFNONREF", ":61:240103d5,00NTRFNONREF",
                     closing="C240131CNY990,00")
    assert [(x.direction, x.reversal) for x in parse_text(text).lines] == [
        ("out", True), ("out", False)]


@pytest.mark.parametrize(
    ("line61", "why"),
    [
        (":61:240102C5,00", "transaction type"),  # the package would merge it with the next
        (":61:240102C0000000000000005,00NTRFNONREF", "transaction type"),  # over 15 characters
        (":61:240102C5,00BN15NONREF", "transaction type"),  # a damaged "N"
        (":61:24010201C5,00NTRFNONREF", "entry date"),  # half an entry date
    ],
)
def test_mt940_61_the_package_would_misread_is_refused(line61, why):
    error = rejected(statement(line61, ":61:240103C5,00NTRFNONREF", closing="C240131CNY1010,00"))
    assert error.line == 5
    assert f"malformed :61: statement line ({why})" in error.detail


@pytest.mark.parametrize(
    "balance", ["C240131CNY1005,00X", "C240131cny1005,00", "C240131CNY00000000000001005,00"]
)
def test_mt940_balance_the_package_would_misread_is_refused(balance):
    error = rejected(statement(":61:240102C5,00NTRFNONREF", closing=balance))
    assert error.line == 6
    assert "malformed balance :62F:" in error.detail


def test_mt940_malformed_amount_from_the_package_is_refused_with_its_line():
    error = rejected(statement(":61:240102C1,2,3NTRFNONREF", closing="C240131CNY1005,00"))
    assert error.line == 5
    assert "malformed amount: '240102C1,2,3NTRFNONREF'" in error.detail


def test_mt940_first_problem_in_the_file_is_the_one_refused():
    # The package reads the balances and :61: together; its error on the later :62F:
    # must not hide our earlier one on line 5.
    text = statement(":61:240102C5,00BN15NONREF", closing="C240131CNY1005,00X")
    assert rejected(text).line == 5


def test_mt940_opening_60m_gives_the_currency():
    text = statement(":61:240102C5,00NTRFNONREF", opening="C240101EUR10,00",
                     closing="C240131EUR15,00").replace(":60F:", ":60M:")
    assert parse_text(text).lines[0].currency == "EUR"


def test_mt940_entry_date_in_january_of_a_december_value_date_is_next_year():
    text = statement(":61:2312310102C5,00NTRFNONREF", closing="C240131CNY1005,00")
    assert parse_text(text).lines[0].booked_at == datetime.date(2024, 1, 2)


def test_mt940_long_bank_reference_is_kept_whole():
    long_ref = "B" * 40
    text = statement(f":61:240102C5,00NTRFCUSTREF//{long_ref}", closing="C240131CNY1005,00")
    (line,) = parse_text(text).lines
    assert line.reference == "CUSTREF"
    assert long_ref in line.raw


def test_mt940_swift_envelope_and_several_messages_are_read():
    one = statement(":61:240102C5,00NTRFNONREF", closing="C240131CNY1005,00", ref="A")
    two = statement(":61:240202D5,00NTRFNONREF", opening="C240131CNY1005,00", ref="B")
    text = "{1:F01BANKCNBJAXXX0000000000}{2:O940}{4:\n" + one + "}\n" + two.replace("-\n", "-}\n")
    lines = parse_text(text).lines
    assert [line.direction for line in lines] == ["in", "out"]


def test_mt940_description_continuation_starting_with_a_dash_stays_in_it():
    text = statement(":61:240102C5,00NTRFNONREF", ":86:first part", "- second part",
                     closing="C240131CNY1005,00")
    assert parse_text(text).lines[0].memo == "first part - second part"


def test_mt940_identical_lines_in_one_statement_stay_two_identities():
    text = statement(
        ":61:240102C5,00NTRFNONREF", ":86:GC7K-2M4P-Q",
        ":61:240102C5,00NTRFNONREF", ":86:GC7K-2M4P-Q",
        closing="C240131CNY1010,00",
    )
    lines = parse_text(text).lines
    assert lines[0].memo == lines[1].memo
    keys = line_identities(lines)
    assert len(set(keys)) == 2


def test_mt940_balances_not_adding_up_refuse_the_file():
    error = rejected(statement(":61:240102C5,00NTRFNONREF", closing="C240131CNY1000,00"))
    assert error.line == 6  # the :62F: line
    assert "balances do not add up" in error.detail


def test_mt940_truncated_file_without_closing_balance_is_refused():
    text = statement(":61:240102C5,00NTRFNONREF", ":86:cut", closing="C240131CNY1005,00")
    text = text[: text.index(":62F:")]
    error = rejected(text)
    assert "no closing balance" in error.detail
    assert error.line == 6


def test_mt940_malformed_61_refuses_naming_line_and_value():
    error = rejected(statement(":61:240102X5,00NTRFNONREF", closing="C240131CNY1005,00"))
    assert error.line == 5
    assert "'240102X5,00NTRFNONREF'" in error.detail


def test_mt940_bad_date_refuses_the_file():
    error = rejected(statement(":61:240230C5,00NTRFNONREF", closing="C240131CNY1005,00"))
    assert error.line == 5
    assert "bad date" in error.detail


def test_mt940_amount_below_fen_refuses_the_file():
    error = rejected(statement(":61:240102C5,001NTRFNONREF", closing="C240131CNY1005,00"))
    assert error.line == 5
    assert "'5.001'" in error.detail


def test_mt940_trailing_zero_below_fen_is_exact():
    text = statement(":61:240102C8,850NTRFNONREF", closing="C240131CNY1008,85")
    assert parse_text(text).lines[0].amount_fen == 885


def test_mt940_field_before_the_first_20_is_refused():
    error = rejected(":25:123\n" + statement(":61:240102C5,00NTRFNONREF",
                                             closing="C240131CNY1005,00"))
    assert error.line == 1


# The package's known failures, as it has them: each test here documents why
# mt940_reader does something itself. If one fails, the package fixed that failure and
# the workaround may go (see the module docstring).


def test_package_still_fails_on_a_multi_line_28c():
    text = statement(":61:240102C5,00NTRFNONREF", closing="C240131CNY1005,00")
    with pytest.raises(RuntimeError):
        mt940.parse(text.replace(":28C:1/1", ":28C:00084/\n001"))


def test_package_still_fails_on_two_supplementary_details_lines():
    text = statement(":61:2401020102C500,00NTRFNONREF//B1", "ZHANG SAN TRADING", "CO LTD",
                     closing="C240131CNY1500,00")
    with pytest.raises(RuntimeError):
        mt940.parse(text)


def test_package_still_puts_a_long_bank_references_tail_in_the_details():
    text = statement(":61:240102C5,00NTRFCUSTREF//" + "B" * 40, closing="C240131CNY1005,00")
    (transaction,) = mt940.parse(text, tags={61: mt940.tags.StatementGLS()})
    assert transaction.data["extra_details"] == "B" * 17


def test_package_still_overwrites_statement_fields_in_one_parse(data_file):
    transactions = mt940.parse(data_file("cmxl-mt940.sta").decode("utf-8"))
    assert transactions.data["final_opening_balance"].amount.currency == "PLN"  # the last
    one = statement(":61:240102C5,00NTRFNONREF", closing="C240131CNY1005,00", ref="A")
    two = statement(":61:240202D7,00NTRFNONREF", opening="C240201EUR50,00",
                    closing="C240229EUR43,00", ref="B").replace(":60F:", ":60M:")
    assert [t.data["currency"] for t in mt940.parse(one + two)] == ["CNY", "CNY"]


def test_package_still_moves_30_february_and_merges_a_61_without_type():
    text = statement(":61:240230C5,00NTRFNONREF", closing="C240131CNY1005,00")
    assert mt940.parse(text)[0].data["date"] == datetime.date(2024, 2, 29)
    text = statement(":61:240102C5,00", ":61:240103C5,00NTRFNONREF", closing="C240131CNY1010,00")
    assert len(mt940.parse(text)) == 1
