"""Formats are told apart by content alone, whatever the file is called."""
from __future__ import annotations

import codecs

import pytest

from app.adapters.statements import parse_statement
from app.domain.errors import StatementRejected

FILES = [
    ("canonical.csv", "csv"),
    ("icbc-debit-v2.csv", "icbc"),
    ("cmb-debit.csv", "cmb"),
    ("cmb-corporate.csv", "cmb"),
    ("ccb-corporate.csv", "ccb"),
    ("abc-personal.csv", "abc"),
    ("boc-personal.csv", "boc"),
    ("bocom-personal.csv", "bocom"),
    ("cmxl-mt940.sta", "mt940"),
    ("rabobank-iban.sta", "mt940"),
    ("camt053-v2-multi-statement.xml", "camt053"),
    ("oca-test-camt053.xml", "camt053"),
]


@pytest.mark.parametrize("name, format", FILES)
def test_each_format_is_detected_from_content(data_file, name, format):
    assert parse_statement(data_file(name)).format == format


@pytest.mark.parametrize("name, format", FILES)
def test_explicit_format_reads_the_same_as_auto(data_file, name, format):
    assert parse_statement(data_file(name), format) == parse_statement(data_file(name))


@pytest.mark.parametrize("name", ["cmxl-mt940.sta", "oca-test-camt053.xml", "canonical.csv"])
def test_a_utf8_bom_changes_nothing(data_file, name):
    assert parse_statement(codecs.BOM_UTF8 + data_file(name)) == parse_statement(data_file(name))


def test_mt940_with_crlf_line_endings_reads_the_same(data_file):
    data = data_file("rabobank-iban.sta")
    assert parse_statement(data.replace(b"\n", b"\r\n")) == parse_statement(data)


def test_bank_header_after_more_than_a_hundred_preamble_lines_is_not_searched(fixture_text):
    text = "说明\n" * 120 + fixture_text("boc-personal.csv")
    with pytest.raises(StatementRejected) as caught:
        parse_statement(text.encode("gbk"))
    assert "unrecognised" in caught.value.detail
    assert caught.value.line == 1
