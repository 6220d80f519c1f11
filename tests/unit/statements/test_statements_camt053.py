"""ISO 20022 CAMT.053 statements, 001.02 to 001.08."""
from __future__ import annotations

import datetime

import pytest

from app.adapters.statements import parse_statement
from app.domain.errors import StatementRejected
from app.domain.statements import line_identities


def camt(*entries: str, version: str = "08", ccy: str = "CNY") -> bytes:
    """Return a CAMT.053 document of the given version with one statement."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>2026-11-26T18:00:00+08:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-1</Id>
      <Acct><Id><Othr><Id>11050162540000000123</Id></Othr></Id><Ccy>{ccy}</Ccy></Acct>
{"".join(entries)}    </Stmt>
  </BkToCstmrStmt>
</Document>
""".encode("utf-8")


def entry(
    amount: str = "300.00",
    ind: str = "CRDT",
    details: str = "",
    status: str = "<Sts><Cd>BOOK</Cd></Sts>",
    ref: str = "",
    extra: str = "",
    dates: str = "<BookgDt><Dt>2026-11-26</Dt></BookgDt>",
) -> str:
    refs = f"<AcctSvcrRef>{ref}</AcctSvcrRef>" if ref else ""
    ntry_dtls = f"<NtryDtls>{details}</NtryDtls>" if details else ""
    return (
        f'      <Ntry>\n        <Amt Ccy="CNY">{amount}</Amt>\n'
        f"        <CdtDbtInd>{ind}</CdtDbtInd>{extra}{status}{dates}{refs}\n"
        f"        {ntry_dtls}\n      </Ntry>\n"
    )


def detail(
    amount: str | None = None,
    payer: str = "上海甲公司",
    payer_account: str = "31001234567890123456",
    ustrd: str = "",
    strd: str = "",
    e2e: str = "",
    ref: str = "",
    ind: str = "",
    pty: bool = True,
) -> str:
    refs = ""
    if ref or e2e:
        refs = "<Refs>" + (f"<AcctSvcrRef>{ref}</AcctSvcrRef>" if ref else "")
        refs += (f"<EndToEndId>{e2e}</EndToEndId>" if e2e else "") + "</Refs>"
    amt = f'<Amt Ccy="CNY">{amount}</Amt>' if amount else ""
    cdt = f"<CdtDbtInd>{ind}</CdtDbtInd>" if ind else ""
    name = f"<Pty><Nm>{payer}</Nm></Pty>" if pty else f"<Nm>{payer}</Nm>"
    parties = (
        f"<RltdPties><Dbtr>{name}</Dbtr><DbtrAcct><Id><Othr><Id>{payer_account}</Id></Othr>"
        f"</Id></DbtrAcct><Cdtr><Nm>我方公司</Nm></Cdtr></RltdPties>"
    )
    rmt = ""
    if ustrd or strd:
        rmt = "<RmtInf>" + (f"<Ustrd>{ustrd}</Ustrd>" if ustrd else "")
        rmt += f"<Strd><CdtrRefInf><Ref>{strd}</Ref></CdtrRefInf></Strd>" if strd else ""
        rmt += "</RmtInf>"
    return f"\n          <TxDtls>{refs}{amt}{cdt}{parties}{rmt}</TxDtls>"


def rejected(data: bytes) -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data)
    return caught.value


BATCH = camt(
    entry(
        "300.00",
        ref="BATCH-REF-1",
        details=detail("100.00", payer="甲", ustrd="GC7K-2M4P-Q", ref="BATCH-REF-1")
        + detail("100.00", payer="甲", ustrd="GC7K-2M4P-Q", ref="BATCH-REF-1")
        + detail("100.00", payer="乙", payer_account="6222", strd="GC9X-3N5R-T", ref="BATCH-REF-1"),
    )
)


# The real samples


def test_camt_multi_statement_file_gives_the_entries_of_every_statement(data_file):
    statement = parse_statement(data_file("camt053-v2-multi-statement.xml"))
    assert statement.format == "camt053"
    assert statement.account == "NL26VAYB8060476890"
    first, second = statement.lines
    assert (first.direction, first.amount_fen, first.currency) == ("in", 885, "EUR")
    assert (second.direction, second.amount_fen) == ("out", 700)
    assert (first.line_no, second.line_no) == (83, 162)
    assert second.counterparty_name == "Company Name 2"  # a debit's counterparty: the creditor
    assert first.memo == "Transaction Description 1"
    assert first.reference == "000000001"


def test_camt_oca_sample_gives_one_line_per_transaction_detail(data_file):
    lines = parse_statement(data_file("oca-test-camt053.xml")).lines
    assert [line.amount_fen for line in lines] == [75425, 56405, 10000, 140531]
    assert [line.reversal for line in lines] == [False, True, True, False]
    assert lines[3].counterparty_name == "3rd party Media"
    assert lines[3].counterparty_account == "NL69ABNA0522123643"
    assert lines[3].memo == "#RD PARTY MEDIA CUSNO 90782 4210773"


def test_camt_detail_raw_is_its_element_text(data_file):
    line = parse_statement(data_file("oca-test-camt053.xml")).lines[0]
    assert line.raw.startswith("<TxDtls>")
    assert line.raw.endswith("</TxDtls>")
    assert "INNDNL2U20141231000142300002844" in line.raw


# Batches and ids


def test_camt_batch_entry_gives_one_line_per_detail():
    lines = parse_statement(BATCH).lines
    assert len(lines) == 3
    assert [line.amount_fen for line in lines] == [10000, 10000, 10000]
    assert [line.counterparty_name for line in lines] == ["甲", "甲", "乙"]
    assert lines[2].reference == "GC9X-3N5R-T"


def test_camt_acctsvcrref_shared_by_a_batch_is_not_a_transaction_id():
    assert [line.transaction_id for line in parse_statement(BATCH).lines] == [None] * 3


def test_camt_identical_details_of_a_batch_stay_two_transfers():
    keys = line_identities(parse_statement(BATCH).lines)
    assert len(set(keys)) == 3
    assert keys[0].endswith(":0") and keys[1].endswith(":1")


def test_camt_batch_line_numbers_are_those_of_each_detail():
    lines = parse_statement(BATCH).lines
    assert len({line.line_no for line in lines}) == 3
    text = BATCH.decode().splitlines()
    assert all(text[line.line_no - 1].strip().startswith("<TxDtls>") for line in lines)


def test_camt_unique_detail_acctsvcrref_is_the_transaction_id():
    data = camt(entry("3.00", details=detail("1.00", ref="R1") + detail("2.00", ref="R2")))
    assert [line.transaction_id for line in parse_statement(data).lines] == ["R1", "R2"]


def test_camt_entry_acctsvcrref_of_a_single_transfer_is_its_id():
    data = camt(entry("3.00", ref="E1", details=detail()), entry("4.00", ref="E2"))
    assert [line.transaction_id for line in parse_statement(data).lines] == ["E1", "E2"]


def test_camt_acctsvcrref_repeated_across_entries_is_not_an_id():
    data = camt(entry("3.00", ref="SAME"), entry("4.00", ref="SAME"), entry("5.00", ref="OWN"))
    assert [line.transaction_id for line in parse_statement(data).lines] == [None, None, "OWN"]


def test_camt_batch_details_not_adding_up_refuse_the_file():
    data = camt(entry("300.00", details=detail("100.00") + detail("150.00")))
    error = rejected(data)
    assert "add up" in error.detail
    assert error.line == data.decode().splitlines().index("      <Ntry>") + 1


def test_camt_batch_detail_missing_its_amount_refuses_the_file():
    data = camt(entry("300.00", details=detail("100.00") + detail()))
    assert "without its own amount" in rejected(data).detail


def test_camt_batch_without_any_detail_amount_refuses_the_file():
    # As one line, a code in one detail's memo would credit that account the whole batch.
    data = camt(entry("300.00", details=detail(ustrd="GC7K-2M4P-Q") + detail(ustrd="B")))
    error = rejected(data)
    assert "none with an amount of its own" in error.detail
    assert error.line == data.decode().splitlines().index("      <Ntry>") + 1


def test_camt_outgoing_batch_without_detail_amounts_stays_one_outgoing_line_of_the_entry():
    # A payroll run booked as one total: the file still imports, and nothing goes in.
    details = detail(ustrd="GC7K-2M4P-Q", payer="甲") + detail(ustrd="B", payer="乙")
    data = camt(entry("300.00", ind="DBIT", details=details))
    (line,) = parse_statement(data).lines
    assert (line.direction, line.amount_fen, line.memo) == ("out", 30000, "GC7K-2M4P-Q B")


def test_camt_outgoing_batch_with_details_in_another_currency_stays_one_line_of_the_entry():
    details = detail("100.00") + detail("200.00")
    data = camt(entry("30.00", ind="DBIT", details=details).replace('Ccy="CNY">30.00', 'Ccy="EUR">30.00'))
    (line,) = parse_statement(data).lines
    assert (line.direction, line.amount_fen, line.currency) == ("out", 3000, "EUR")


def test_camt_batch_details_in_another_currency_than_the_entry_refuse_the_file():
    # A EUR booking is never CNY money, whatever currency the details were instructed in.
    details = detail("100.00") + detail("200.00")
    data = camt(entry("30.00", details=details).replace('Ccy="CNY">30.00', 'Ccy="EUR">30.00'))
    error = rejected(data)
    assert "'CNY'" in error.detail and "EUR" in error.detail
    assert data.decode().splitlines()[error.line - 1].strip().startswith("<TxDtls>")


def test_camt_single_detail_uses_the_entry_amount():
    data = camt(entry("99.50", details=detail("100.00", ustrd="after charges")))
    assert parse_statement(data).lines[0].amount_fen == 9950


def test_camt_detail_credit_debit_indicator_overrides_the_entry():
    data = camt(entry("70.00", details=detail("100.00") + detail("30.00", ind="DBIT")))
    assert [line.direction for line in parse_statement(data).lines] == ["in", "out"]


def test_camt_single_detail_against_its_entry_direction_refuses_the_file():
    # The entry's amount is what was booked, in the entry's direction: a debit stays a debit.
    tx = detail("50.00", ind="CRDT", ustrd="GC7K-2M4P-Q")
    data = camt(entry("50.00", ind="DBIT", details=tx))
    error = rejected(data)
    assert "'CRDT'" in error.detail
    assert data.decode().splitlines()[error.line - 1].strip().startswith("<TxDtls>")


def test_camt_entry_without_details_is_one_line():
    (line,) = parse_statement(camt(entry("12.34", ind="DBIT"))).lines
    assert (line.direction, line.amount_fen, line.counterparty_name) == ("out", 1234, "")


# Status, references, parties, dates


def test_camt_pending_entry_is_not_booked():
    data = camt(entry(status="<Sts><Cd>PDNG</Cd></Sts>", details=detail()), entry())
    assert [line.booked for line in parse_statement(data).lines] == [False, True]


def test_camt_plain_text_status_of_old_versions_is_read():
    data = camt(entry(status="<Sts>PDNG</Sts>"), entry(status="<Sts>BOOK</Sts>"), version="02")
    assert [line.booked for line in parse_statement(data).lines] == [False, True]


def test_camt_reversal_indicator_marks_a_reversal():
    data = camt(entry(ind="DBIT", extra="<RvslInd>true</RvslInd>", details=detail()))
    (line,) = parse_statement(data).lines
    assert (line.direction, line.reversal) == ("out", True)
    assert line.counterparty_name == "我方公司"  # the creditor of a debit


def test_camt_credit_counterparty_is_the_debtor_under_pty_in_new_versions():
    (line,) = parse_statement(camt(entry(details=detail(pty=True)))).lines
    assert (line.counterparty_name, line.counterparty_account) == (
        "上海甲公司",
        "31001234567890123456",
    )


def test_camt_credit_counterparty_is_the_debtor_name_in_old_versions():
    data = camt(entry(details=detail(pty=False)), version="02")
    assert parse_statement(data).lines[0].counterparty_name == "上海甲公司"


def test_camt_structured_reference_is_reference_and_end_to_end_id_joins_memo():
    data = camt(entry(details=detail(strd="GC7K-2M4P-Q", ustrd="货款", e2e="E2E-9")))
    (line,) = parse_statement(data).lines
    assert line.reference == "GC7K-2M4P-Q"
    assert line.memo == "货款 E2E-9"


def test_camt_end_to_end_id_is_the_reference_without_a_structured_one():
    (line,) = parse_statement(camt(entry(details=detail(ustrd="货款", e2e="E2E-9")))).lines
    assert (line.reference, line.memo) == ("E2E-9", "货款")


def test_camt_notprovided_end_to_end_id_is_ignored():
    (line,) = parse_statement(camt(entry(details=detail(e2e="NOTPROVIDED")))).lines
    assert (line.reference, line.memo) == ("", "")


def test_camt_booking_date_time_is_kept():
    data = camt(entry(dates="<BookgDt><DtTm>2026-11-26T10:15:00+08:00</DtTm></BookgDt>"))
    assert parse_statement(data).lines[0].booked_at == datetime.datetime(
        2026, 11, 26, 10, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=8))
    )


def test_camt_booking_time_with_seconds_in_its_utc_offset_refuses_the_file():
    moment = "2026-11-26T10:15:00.123456+08:00:00.000001"
    error = rejected(camt(entry(dates=f"<BookgDt><DtTm>{moment}</DtTm></BookgDt>")))
    assert "bad date" in error.detail and moment in error.detail


def test_camt_value_date_stands_in_for_a_missing_booking_date():
    value_date = "<ValDt><Dt>2026-11-27</Dt></ValDt>"
    data = camt(entry(status="<Sts><Cd>PDNG</Cd></Sts>", dates=value_date))
    assert parse_statement(data).lines[0].booked_at == datetime.date(2026, 11, 27)


def test_camt_entry_without_any_date_refuses_the_file():
    assert "date" in rejected(camt(entry(dates=""))).detail


@pytest.mark.parametrize("version", ["02", "03", "04", "05", "06", "07", "08"])
def test_camt_versions_02_to_08_are_read(version):
    data = camt(entry(details=detail(pty=version >= "08")), version=version)
    (line,) = parse_statement(data).lines
    assert (line.amount_fen, line.counterparty_name) == (30000, "上海甲公司")


# Amounts and refusals


def test_camt_trailing_zero_below_the_fen_is_exact():
    assert parse_statement(camt(entry("8.850"))).lines[0].amount_fen == 885


def test_camt_amount_below_the_fen_refuses_naming_line_and_value():
    data = camt(entry("8.855"))
    error = rejected(data)
    assert error.line == data.decode().splitlines().index('        <Amt Ccy="CNY">8.855</Amt>') + 1
    assert "'8.855'" in error.detail


@pytest.mark.parametrize("amount", ["-5.00", "1,000.00", "", "1e3"])
def test_camt_malformed_amount_refuses_the_file(amount):
    assert "amount" in rejected(camt(entry(amount))).detail


def test_camt_unknown_credit_debit_indicator_refuses_the_file():
    assert "'CRED'" in rejected(camt(entry(ind="CRED"))).detail


def test_camt_billion_laughs_is_refused():
    data = b"""<?xml version="1.0"?>
<!DOCTYPE Document [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&lol3;</Document>
"""
    error = rejected(data)
    assert error.line == 2
    assert "DTD" in error.detail


def test_camt_external_entity_is_refused():
    data = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt>&xxe;</BkToCstmrStmt></Document>
"""
    assert rejected(data).line == 2


def test_camt_truncated_xml_is_refused_naming_a_line():
    data = camt(entry(), entry())
    error = rejected(data[: len(data) // 2])
    assert error.line is not None and error.line > 1
    assert "malformed XML" in error.detail


@pytest.mark.parametrize("namespace", ["camt.053.001.10", "camt.052.001.08"])
def test_camt_unsupported_version_or_message_is_refused(namespace):
    data = camt(entry()).replace(b"camt.053.001.08", namespace.encode())
    assert rejected(data).line in (1, 2)


def test_xml_that_is_not_a_statement_is_refused():
    assert rejected(b"<html><body>not a statement</body></html>").line == 1


def test_camt_deeply_nested_xml_is_refused():
    data = camt(entry(extra="<X>" * 100 + "</X>" * 100))
    assert "deeper" in rejected(data).detail


def test_camt_with_too_many_elements_is_refused(monkeypatch):
    from app.adapters.statements import xml_tree

    monkeypatch.setattr(xml_tree, "MAX_ELEMENTS", 20)
    assert "elements" in rejected(camt(entry(), entry(), entry())).detail


def test_camt_declared_latin1_encoding_is_read():
    data = camt(entry(details=detail(payer="Müller GmbH", pty=False)), version="02")
    data = data.decode("utf-8").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    data = data.replace("我方公司", "Our Company")
    (line,) = parse_statement(data.encode("latin-1")).lines
    assert line.counterparty_name == "Müller GmbH"
    assert "Müller" in line.raw


@pytest.mark.parametrize("encoding", ["GBK", "GB18030", "Shift_JIS"])
def test_camt_declared_multi_byte_encoding_other_than_utf8_is_refused_naming_it(encoding):
    data = camt(entry(details=detail(payer="上海甲公司")), version="02").decode("utf-8")
    data = data.replace('encoding="UTF-8"', f'encoding="{encoding}"')
    error = rejected(data.encode("gb18030"))
    assert error.line == 1
    assert "encoding" in error.detail and repr(encoding) in error.detail
    assert "could not be read" not in error.detail


@pytest.mark.parametrize("encoding", ["bogus", "x-unknown-8bit"])
def test_camt_declared_encoding_python_has_no_codec_of_is_refused_naming_it(encoding):
    data = camt(entry()).replace(b'encoding="UTF-8"', f'encoding="{encoding}"'.encode())
    error = rejected(data)
    assert error.line == 1
    assert "encoding not supported" in error.detail and repr(encoding) in error.detail
