"""Importing bank statements over the API, on SQLite and PostgreSQL."""
import io

import pytest

from tests.conftest import bearer
from tests.integration.statement_helpers import (  # noqa: F401 - finance, payer: fixtures
    SAMPLES,
    assert_ledger_clean,
    balances,
    csv_file,
    finance,
    lines,
    payer,
    row,
    spend,
    stored_counts,
    upload,
)


# file, lines, {status: count} (no sample carries a code we issued)
SAMPLE_FILES = [
    ("rabobank-iban.sta", 4, {"ignored": 4}),
    ("camt053-v2-multi-statement.xml", 2, {"exception": 1, "ignored": 1}),
    ("oca-test-camt053.xml", 4, {"ignored": 1, "exception": 3}),
    ("icbc-debit-v2.csv", 11, {"ignored": 6, "unmatched": 5}),
    ("cmb-debit.csv", 5, {"ignored": 4, "unmatched": 1}),
]


def test_sample_with_statements_of_three_accounts_is_refused_whole(client, finance, wallet):
    response = upload(client, finance, (SAMPLES / "cmxl-mt940.sta").read_bytes(), filename="cmxl.sta")
    assert response.status_code == 422
    assert response.get_json()["detail"].startswith("line 33: statements of two bank accounts")
    assert stored_counts(wallet) == (0, 0)


@pytest.mark.parametrize("name, total, statuses", SAMPLE_FILES)
def test_each_real_sample_imports_every_line(client, finance, wallet, name, total, statuses):
    response = upload(client, finance, (SAMPLES / name).read_bytes(), filename=name)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["lines_total"], body["lines_new"]) == (total, total)
    found = {}
    for line in lines(client, finance):
        found[line["status"]] = found.get(line["status"], 0) + 1
    assert found == statuses
    assert body["matched"] == 0 and body["unmatched"] == statuses.get("unmatched", 0)
    assert_ledger_clean(wallet)


def test_same_file_again_is_200_and_adds_nothing(client, finance, payer, wallet):
    data = csv_file(row(payer["remittance_code"], "100.00", tid="T1"))
    first = upload(client, finance, data)
    again = upload(client, finance, data, filename="renamed.csv")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == {
        "id": first.get_json()["id"], "lines_total": 1, "lines_new": 0,
        "matched": 0, "suggested": 0, "unmatched": 0, "ignored": 0, "exception": 0,
    }
    assert stored_counts(wallet) == (1, 1)
    assert balances(wallet, payer["id"])[0] == 100_00
    assert_ledger_clean(wallet)


def test_overlapping_statement_adds_only_its_new_lines(client, finance, payer, wallet):
    code = payer["remittance_code"]
    monday = row(code, "10.00", at="2026-11-23")
    tuesday = row(code, "20.00", at="2026-11-24")
    wednesday = row(code, "40.00", at="2026-11-25")
    upload(client, finance, csv_file(monday, tuesday))
    second = upload(client, finance, csv_file(tuesday, wednesday))
    assert second.status_code == 201
    assert second.get_json()["lines_new"] == 1 and second.get_json()["matched"] == 1
    assert stored_counts(wallet) == (2, 3)
    assert balances(wallet, payer["id"])[0] == 70_00
    assert_ledger_clean(wallet)


def test_overlap_by_bank_transaction_id_adds_only_new_lines(client, finance, payer, wallet):
    code = payer["remittance_code"]
    upload(client, finance, csv_file(row(code, "10.00", tid="B1"), row(code, "20.00", tid="B2")))
    # The bank re-exports B2 with another memo spelling: its id still names the same transfer.
    second = upload(client, finance, csv_file(row(code.lower(), "20.00", tid="B2"), row(code, "5.00", tid="B3")))
    assert second.get_json()["lines_new"] == 1
    assert balances(wallet, payer["id"])[0] == 35_00


def test_two_identical_looking_lines_in_one_file_are_two_transfers(client, finance, payer, wallet):
    same = row(payer["remittance_code"], "50.00")
    body = upload(client, finance, csv_file(same, same)).get_json()
    assert (body["lines_new"], body["matched"]) == (2, 2)
    assert balances(wallet, payer["id"])[0] == 100_00
    # Uploading the pair again inside a longer statement adds only the new line.
    again = upload(client, finance, csv_file(same, same, row("房租", "1.00"))).get_json()
    assert again["lines_new"] == 1
    assert balances(wallet, payer["id"])[0] == 100_00


@pytest.mark.parametrize(
    "written",
    [
        lambda code: code.lower(),
        lambda code: f"{code[:4]} {code[4:8]} {code[8]}",
        lambda code: f"{code[:4]}-{code[4:8]}-{code[8]}".lower(),
        lambda code: "".join(chr(ord(ch) + 0xFEE0) for ch in code),
        lambda code: f"货款{code}谢谢",
    ],
    ids=["lower", "spaces", "hyphens", "full-width", "inside-text"],
)
def test_remittance_code_as_people_write_it_credits_the_account(client, finance, payer, wallet, written):
    body = upload(client, finance, csv_file(row(written(payer["remittance_code"]), "88.80"))).get_json()
    assert body["matched"] == 1
    assert balances(wallet, payer["id"]) == (88_80, 0, 0)
    (line,) = lines(client, finance, "matched")
    assert line["account_id"] == payer["id"]
    assert line["reason"] == f"remittance code {payer['remittance_code']}"
    assert_ledger_clean(wallet)


def test_near_miss_code_is_suggested_and_not_credited(client, finance, payer, wallet):
    code = payer["remittance_code"]
    typo = code[:8] + ("2" if code[8] != "2" else "3")
    body = upload(client, finance, csv_file(row(typo))).get_json()
    assert (body["matched"], body["suggested"]) == (0, 1)
    (line,) = lines(client, finance, "suggested")
    assert line["suggested_account_id"] == payer["id"] and line["account_id"] is None
    assert balances(wallet, payer["id"]) == (0, 0, 0)


def test_known_payer_without_code_is_suggested_and_not_credited(client, finance, payer, wallet):
    upload(client, finance, csv_file(row(payer["remittance_code"], "10.00", payer="6222 0000 1111")))
    body = upload(client, finance, csv_file(row("服务费", "30.00", payer="622200001111"))).get_json()
    assert body["suggested"] == 1
    (line,) = lines(client, finance, "suggested")
    assert line["suggested_account_id"] == payer["id"]
    assert balances(wallet, payer["id"])[0] == 10_00


def test_line_in_another_currency_is_an_exception_never_credited(client, finance, payer, wallet):
    body = upload(client, finance, csv_file(row(payer["remittance_code"], "100.00", currency="EUR"))).get_json()
    assert body["exception"] == 1 and body["matched"] == 0
    (line,) = lines(client, finance, "exception")
    assert line["currency"] == "EUR" and "EUR" in line["reason"]
    assert balances(wallet, payer["id"]) == (0, 0, 0)


def test_outgoing_line_is_kept_and_ignored(client, finance, payer, wallet):
    body = upload(client, finance, csv_file(row(payer["remittance_code"], "-100.00"))).get_json()
    assert body["ignored"] == 1
    (line,) = lines(client, finance, "ignored")
    assert (line["direction"], line["amount"]) == ("out", "100.00")
    assert balances(wallet, payer["id"]) == (0, 0, 0)


def test_line_without_code_waits_unmatched(client, finance):
    upload(client, finance, csv_file(row("房租 11月")))
    (line,) = lines(client, finance, "unmatched")
    assert line["memo"] == "房租 11月" and line["amount"] == "100.00"


def test_listed_line_carries_exactly_the_documented_fields(client, finance, payer):
    upload(client, finance, csv_file(row(payer["remittance_code"], "12.30", at="2026-11-26T09:30:00+08:00")))
    (line,) = lines(client, finance)
    assert set(line) == {
        "id", "statement_id", "booked_at", "amount", "currency", "direction", "counterparty_name",
        "counterparty_account", "memo", "status", "account_id", "suggested_account_id", "reason",
    }
    assert line["booked_at"] == "2026-11-26T09:30:00+08:00"
    assert isinstance(line["id"], int) and isinstance(line["statement_id"], int)


def test_booked_time_without_offset_is_shown_in_china_standard_time(client, finance):
    upload(client, finance, (SAMPLES / "abc-personal.csv").read_bytes(), format="abc")
    booked = [line["booked_at"] for line in lines(client, finance)]
    assert booked[0] == "2024-11-03T10:15:30+08:00"
    upload(client, finance, csv_file(row("房租", at="2026-11-26")))
    assert lines(client, finance)[-1]["booked_at"] == "2026-11-26"


def test_bank_credit_pays_arrears_first_and_makes_that_invoiceable(client, finance, admin_token, payer, wallet):
    spend(client, admin_token, payer["id"], "30.00", "bill-1")
    assert balances(wallet, payer["id"]) == (0, 30_00, 0)
    upload(client, finance, csv_file(row(payer["remittance_code"], "100.00")))
    assert balances(wallet, payer["id"]) == (70_00, 0, 30_00)
    assert_ledger_clean(wallet)


@pytest.mark.parametrize(
    "data, line_no, value",
    [
        (b"", 1, None),
        (b"\x89PNG\x1a\x00\x00\x00IHDR", 1, None),
        (csv_file(row("ok"), "T2,2026-11-26,12.3x,CNY,张三,6222,bad"), 3, "12.3x"),
        (csv_file(row("ok"), row("sub-fen", "1.005")), 3, "1.005"),
        (csv_file(row("ok"), "T9,2026-13-45,1.00,CNY,张三,6222,bad date"), 3, "2026-13-45"),
        (csv_file(row("ok"))[:-30], None, None),  # truncated mid-record
        # Too long to store as a booking time (a 500 on PostgreSQL), and no ISO 8601 offset.
        (csv_file(row("ok"), row("x", at="2026-11-26T10:00:00.123456+05:30:15.123456")), 3,
         "+05:30:15.123456"),
    ],
    ids=["empty", "binary", "malformed-amount", "sub-fen", "bad-date", "truncated", "offset-seconds"],
)
def test_bad_file_is_refused_whole_naming_line_and_value(client, finance, payer, wallet, data, line_no, value):
    response = upload(client, finance, data)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] in ("statement_rejected", "unknown_format")
    assert "line " in problem["detail"]
    if line_no is not None:
        assert problem["detail"].startswith(f"line {line_no}:")
    if value is not None:
        assert value in problem["detail"]
    assert stored_counts(wallet) == (0, 0)
    assert balances(wallet, payer["id"]) == (0, 0, 0)


def test_upload_without_file_field_is_422(client, finance):
    response = client.post(
        "/api/v1/statements", data={"format": "csv"}, headers=bearer(finance),
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and response.get_json()["code"] == "missing_field"


def test_json_body_instead_of_a_file_is_422(client, finance):
    response = client.post("/api/v1/statements", json={"file": "x"}, headers=bearer(finance))
    assert response.status_code == 422


def test_unknown_format_is_422(client, finance):
    response = upload(client, finance, csv_file(row("x")), format="qif")
    assert response.status_code == 422 and response.get_json()["field"] == "format"


def test_explicit_bank_preset_reads_its_export(client, finance):
    data = (SAMPLES / "cmb-debit.csv").read_bytes()
    assert upload(client, finance, data, format="cmb").status_code == 201


def test_wrong_explicit_format_is_refused(client, finance, wallet):
    data = (SAMPLES / "cmb-debit.csv").read_bytes()
    assert upload(client, finance, data, format="mt940").status_code == 422
    assert stored_counts(wallet) == (0, 0)


def test_statements_are_for_finance_and_admin_only(client, token_for, admin_token, payer):
    data = csv_file(row("x"))
    account_token = token_for("account", payer["id"])
    assert upload(client, account_token, data).status_code == 403
    assert client.get("/api/v1/statement-lines", headers=bearer(account_token)).status_code == 403
    assert upload(client, "nope", data).status_code == 401
    assert upload(client, admin_token, data).status_code == 201


def test_the_uploaded_bytes_and_raw_lines_are_kept(client, finance, wallet):
    from sqlalchemy import select

    from app.adapters.db.models import Statement, StatementLine

    data = csv_file(row("房租"))
    upload(client, finance, data, filename="nov.csv")
    with wallet.db.sessions() as session:
        statement = session.execute(select(Statement)).scalar_one()
        line = session.execute(select(StatementLine)).scalar_one()
    assert (statement.content, statement.filename, statement.format) == (data, "nov.csv", "csv")
    assert statement.uploaded_by.startswith("token:")
    assert line.raw == row("房租") and line.line_no == 2


def test_upload_retried_with_the_same_idempotency_key_replays_the_first_answer(client, finance, payer, wallet):
    data = csv_file(row(payer["remittance_code"], "100.00"))

    def post(content, key="upload-1"):
        headers = {**bearer(finance), "Idempotency-Key": key}
        return client.post("/api/v1/statements", data={"file": (io.BytesIO(content), "nov.csv")},
                           headers=headers, content_type="multipart/form-data")

    first, retry = post(data), post(data)  # each multipart body gets its own random boundary
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.get_json() == first.get_json() and retry.headers["Idempotent-Replayed"] == "true"
    other = post(csv_file(row("房租")))
    assert other.status_code == 422
    assert balances(wallet, payer["id"])[0] == 100_00


def _raw_multipart(*parts: tuple[str, bytes]) -> tuple[bytes, str]:
    """A multipart body built by hand: (Content-Disposition header value, content) per part."""
    boundary = "c84b606073ceca2921004c13067b1cd6"
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
        for disposition, content in parts
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_bad_input_multipart_part_without_a_name_is_a_problem_not_a_500(client, finance, wallet):
    # Found by schemathesis: a field name with a line break leaves the part nameless, and the
    # Idempotency-Key fingerprint compared that part's ``None`` name with "format" (a 500).
    body, content_type = _raw_multipart(
        ('form-data; name="\U0008409c\n«\x11$Ô\x862"', b"{}"), ('form-data; name="format"', b"cmb")
    )
    response = client.post(
        "/api/v1/statements", data=body, content_type=content_type,
        headers={**bearer(finance), "Idempotency-Key": "nameless-1"},
    )
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "missing_field"
    assert stored_counts(wallet) == (0, 0)


def test_bad_input_nameless_parts_count_in_the_idempotency_fingerprint(client, finance, payer, wallet):
    data = csv_file(row(payer["remittance_code"], "100.00"))

    def post(extra: bytes):
        body, content_type = _raw_multipart(
            ('form-data; name="file"; filename="nov.csv"', data),
            ("form-data", extra),
            ('form-data; filename="stray.csv"', extra),
        )
        return client.post("/api/v1/statements", data=body, content_type=content_type,
                           headers={**bearer(finance), "Idempotency-Key": "nameless-2"})

    first, retry, other = post(b"a"), post(b"a"), post(b"b")
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.mimetype == "application/problem+json"
    assert balances(wallet, payer["id"])[0] == 100_00


def test_raw_text_and_fields_with_tabs_newlines_backslashes_and_quotes_are_stored_as_read(client, finance, payer, wallet):
    from sqlalchemy import select

    from app.adapters.db.models import StatementLine
    from app.adapters.statements import parse_statement

    code = payer["remittance_code"]
    data = csv_file(
        row(f'"货款 {code}\ttab, comma ""quoted"" back\\slash \\N"', tid="TX\\1"),
        row('"two\nlines\r\nand \\t literally"', name='"名\t字 \\"', payer="6222\\0001"),
        row("全角 ＡＢＣ emoji \U0001f4b0 trailing backslash \\"),
    )
    assert upload(client, finance, data).status_code == 201
    fields = ("line_no", "raw", "transaction_id", "counterparty_name", "counterparty_account", "memo", "reference")
    with wallet.db.sessions() as session:
        stored = session.execute(
            select(*(getattr(StatementLine, name) for name in fields)).order_by(StatementLine.line_no)
        ).all()
    expected = [tuple(getattr(line, name) for name in fields) for line in parse_statement(data).lines]
    assert [tuple(line) for line in stored] == expected
    assert "\t" in expected[0][5] and "\n" in expected[1][1] and expected[0][2] == "TX\\1"
    assert [line["status"] for line in lines(client, finance)][:1] == ["matched"]


def _mt940(account: str, ref: str, memo: str) -> str:
    return "\n".join([
        f":20:{ref}", f":25:{account}", ":28C:1/1", ":60F:C261101CNY1000,00",
        ":61:2611261126C50,00NTRFNONREF", f":86:{memo}", ":62F:C261126CNY1050,00", "-",
    ]) + "\n"


def test_overlapping_statement_of_one_account_never_credits_a_multi_account_files_line_again(
    client, finance, payer, wallet
):
    ours = _mt940("6222000000000001", "S1", payer["remittance_code"])
    other = _mt940("6222000000000002", "S2", "房租")
    both = (ours + other).encode("utf-8")
    alone = upload(client, finance, ours.encode("utf-8"), filename="ours.sta")
    refused = upload(client, finance, both, filename="all.sta")
    assert (alone.status_code, refused.status_code) == (201, 422)
    problem = refused.get_json()
    assert problem["code"] == "statement_rejected"
    assert problem["detail"].startswith("line 10: statements of two bank accounts in one file")
    assert "6222000000000002" in problem["detail"]
    assert balances(wallet, payer["id"])[0] == 50_00
    assert stored_counts(wallet) == (1, 1)
    assert_ledger_clean(wallet)


def test_reversal_of_a_debit_carrying_a_code_is_an_exception_never_credited(
    client, finance, payer, wallet
):
    # MT940 RD: money came back in, but it undoes a debit; it is no customer's transfer.
    text = "\n".join([
        ":20:R1", ":25:6222000000000001", ":28C:1/1", ":60F:C261101CNY1000,00",
        ":61:2611261126RD50,00NTRFNONREF", f":86:{payer['remittance_code']}",
        ":62F:C261126CNY1050,00", "-",
    ]) + "\n"
    body = upload(client, finance, text.encode("utf-8"), filename="rd.sta").get_json()
    assert (body["exception"], body["matched"]) == (1, 0)
    (line,) = lines(client, finance, "exception")
    assert (line["direction"], line["amount"]) == ("in", "50.00")
    assert balances(wallet, payer["id"]) == (0, 0, 0)
    assert_ledger_clean(wallet)


def _camt(entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-26T18:00:00+08:00</CreDtTm></GrpHdr>
    <Stmt><Id>S1</Id><Acct><Id><Othr><Id>11050162540000000123</Id></Othr></Id></Acct>
{entries}
    </Stmt></BkToCstmrStmt>
</Document>
""".encode("utf-8")


def _ntry(amount: str, status: str, details: str) -> str:
    return (
        f'<Ntry><Amt Ccy="CNY">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<Sts><Cd>{status}</Cd></Sts><BookgDt><Dt>2026-11-26</Dt></BookgDt>"
        f"<AcctSvcrRef>BATCH-1</AcctSvcrRef><NtryDtls>{details}</NtryDtls></Ntry>"
    )


def _tx(memo: str, amount: str | None = None) -> str:
    amt = f'<Amt Ccy="CNY">{amount}</Amt>' if amount else ""
    refs = "<Refs><AcctSvcrRef>BATCH-1</AcctSvcrRef></Refs>"  # shared by the batch
    return f"<TxDtls>{refs}{amt}<RmtInf><Ustrd>{memo}</Ustrd></RmtInf></TxDtls>"


def test_camt_batch_credits_each_detail_its_own_amount(client, finance, payer, new_account, wallet):
    other = new_account("Other Co")
    batch = _ntry("300.00", "BOOK", _tx(payer["remittance_code"], "100.00")
                  + _tx(other["remittance_code"], "200.00"))
    body = upload(client, finance, _camt(batch), filename="batch.xml").get_json()
    assert (body["lines_new"], body["matched"]) == (2, 2)
    assert balances(wallet, payer["id"])[0] == 100_00
    assert balances(wallet, other["id"])[0] == 200_00
    assert_ledger_clean(wallet)


def test_camt_pending_entry_carrying_a_code_is_never_credited(client, finance, payer, wallet):
    body = upload(client, finance, _camt(_ntry("80.00", "PDNG", _tx(payer["remittance_code"]))),
                  filename="pending.xml").get_json()
    assert (body["ignored"], body["matched"]) == (1, 0)
    assert balances(wallet, payer["id"]) == (0, 0, 0)


def test_camt_batch_without_detail_amounts_is_refused_whole(client, finance, payer, wallet):
    # One detail's code must not draw the whole batch's money to its account.
    batch = _ntry("300.00", "BOOK", _tx(payer["remittance_code"]) + _tx("房租"))
    response = upload(client, finance, _camt(batch), filename="batch.xml")
    assert response.status_code == 422
    assert response.get_json()["detail"].startswith("line 5: batch entry of 2 transfers")
    assert stored_counts(wallet) == (0, 0)
    assert balances(wallet, payer["id"]) == (0, 0, 0)


def test_an_upload_that_loses_every_race_is_503_to_send_again_and_stores_nothing(
        client, finance, payer, wallet, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from app.services import statement_import

    class UniqueViolation(Exception):
        sqlstate = "23505"  # an overlapping import stored these lines first

    tries = []

    def lose(*_args, **_kwargs):
        tries.append(1)
        raise IntegrityError("INSERT INTO statement_lines ...", {}, UniqueViolation())

    monkeypatch.setattr(statement_import, "_store_lines", lose)
    response = upload(client, finance, csv_file(row(payer["remittance_code"], "100.00")))
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["code"] == "database_unavailable"
    assert len(tries) == 3
    assert stored_counts(wallet) == (0, 0)
    assert balances(wallet, payer["id"]) == (0, 0, 0)
