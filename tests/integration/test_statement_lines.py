"""Finance's queue work: manual match, undo, and reconcile runs, on SQLite and PostgreSQL."""
import pytest
from sqlalchemy import select, update

from app.adapters.db.models import Account, LedgerTransaction, StatementLineAction
from tests.conftest import bearer
from tests.integration.statement_helpers import (  # noqa: F401 - finance, payer: fixtures
    assert_ledger_clean,
    balances,
    csv_file,
    finance,
    lines,
    payer,
    row,
    spend,
    upload,
)


def match(client, token, line_id, account_id, reason="phoned the customer"):
    body = {"account_id": account_id}
    if reason is not None:
        body["reason"] = reason
    return client.post(f"/api/v1/statement-lines/{line_id}/match", json=body, headers=bearer(token))


def unmatch(client, token, line_id, reason="matched to the wrong account"):
    body = {} if reason is None else {"reason": reason}
    return client.post(f"/api/v1/statement-lines/{line_id}/unmatch", json=body, headers=bearer(token))


def only_line(client, token, status=None):
    (line,) = lines(client, token, status)
    return line


def actions(wallet):
    with wallet.db.sessions() as session:
        rows = session.execute(select(StatementLineAction).order_by(StatementLineAction.id)).scalars()
        return [(a.action, a.account_id, a.actor, a.reason, a.ledger_key) for a in rows]


def ledger_keys(wallet):
    with wallet.db.sessions() as session:
        return session.execute(
            select(LedgerTransaction.idempotency_key).order_by(LedgerTransaction.id)
        ).scalars().all()


def test_finance_matches_an_unmatched_line_by_hand_and_it_is_credited_and_audited(
        client, finance, payer, wallet):
    upload(client, finance, csv_file(row("房租", "250.00")))
    line = only_line(client, finance, "unmatched")
    response = match(client, finance, line["id"], payer["id"], "customer sent the receipt")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["status"], body["account_id"], body["reason"]) == (
        "matched", payer["id"], "customer sent the receipt")
    assert balances(wallet, payer["id"]) == (250_00, 0, 0)
    ((action, account_id, actor, reason, key),) = actions(wallet)
    assert (action, account_id, reason, key) == (
        "match", payer["id"], "customer sent the receipt", f"bank:{line['id']}")
    assert actor.startswith("token:")
    assert_ledger_clean(wallet)


def test_finance_confirms_a_suggestion(client, finance, payer, wallet):
    code = payer["remittance_code"]
    upload(client, finance, csv_file(row(code[:-1] + ("2" if code[-1] != "2" else "3"))))
    line = only_line(client, finance, "suggested")
    assert match(client, finance, line["id"], line["suggested_account_id"]).status_code == 200
    assert balances(wallet, payer["id"])[0] == 100_00


@pytest.mark.parametrize(
    "memo, amount, currency, code",
    [
        ("{code}", "100.00", "CNY", "line_already_matched"),
        ("房租", "-100.00", "CNY", "line_outgoing"),
        ("房租", "100.00", "EUR", "line_not_cny"),
    ],
    ids=["matched-already", "outgoing", "not-cny"],
)
def test_match_refuses_lines_that_cannot_be_credited(
        client, finance, payer, wallet, memo, amount, currency, code):
    upload(client, finance, csv_file(row(memo.format(code=payer["remittance_code"]), amount, currency=currency)))
    line = only_line(client, finance)
    before = balances(wallet, payer["id"])
    response = match(client, finance, line["id"], payer["id"])
    assert response.status_code == 409 and response.get_json()["code"] == code
    assert balances(wallet, payer["id"]) == before


def test_match_refuses_a_pending_line(client, finance, payer, wallet):
    from app.adapters.db.models import StatementLine

    upload(client, finance, csv_file(row("房租")))
    line = only_line(client, finance)
    with wallet.db.transaction() as session:  # CSV has no pending lines; CAMT PDNG does
        session.execute(update(StatementLine).values(booked=False, status="ignored"))
    response = match(client, finance, line["id"], payer["id"])
    assert response.status_code == 409 and response.get_json()["code"] == "line_not_booked"


def test_match_needs_a_reason_and_a_real_account(client, finance, payer):
    upload(client, finance, csv_file(row("房租")))
    line = only_line(client, finance)
    assert match(client, finance, line["id"], payer["id"], reason=None).status_code == 422
    assert match(client, finance, line["id"], payer["id"], reason="  ").status_code == 422
    missing = match(client, finance, line["id"], "acc_missing")
    assert missing.status_code == 422 and missing.get_json()["code"] == "account_not_found"
    assert match(client, finance, 999999, payer["id"]).status_code == 404
    assert only_line(client, finance)["status"] == "unmatched"


def test_unmatch_reverses_the_credit_with_an_entry_and_records_who_and_why(
        client, finance, payer, wallet):
    upload(client, finance, csv_file(row(payer["remittance_code"], "100.00")))
    line = only_line(client, finance, "matched")
    response = unmatch(client, finance, line["id"], "customer says it was for another account")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["account_id"], body["reason"]) == (
        "unmatched", None, "customer says it was for another account")
    assert balances(wallet, payer["id"]) == (0, 0, 0)
    assert ledger_keys(wallet) == [f"bank:{line['id']}", f"bank:{line['id']}:undo:1"]
    assert actions(wallet)[-1][0::3] == ("unmatch", "customer says it was for another account")
    assert_ledger_clean(wallet)


def test_unmatch_needs_a_reason_and_a_matched_line(client, finance, payer):
    upload(client, finance, csv_file(row(payer["remittance_code"]), row("房租", payer="95588")))
    matched = only_line(client, finance, "matched")
    unmatched = only_line(client, finance, "unmatched")
    assert unmatch(client, finance, matched["id"], reason=None).status_code == 422
    assert unmatch(client, finance, unmatched["id"]).status_code == 409


def test_unmatch_after_the_cash_was_spent_leaves_arrears(client, finance, admin_token, payer, wallet):
    upload(client, finance, csv_file(row(payer["remittance_code"], "100.00")))
    spend(client, admin_token, payer["id"], "70.00", "bill-70")
    assert balances(wallet, payer["id"]) == (30_00, 0, 70_00)
    line = only_line(client, finance, "matched")
    assert unmatch(client, finance, line["id"]).status_code == 200
    # 30.00 comes back from cash; the 70.00 spent is owed again and no longer invoiceable.
    assert balances(wallet, payer["id"]) == (0, 70_00, 0)
    assert_ledger_clean(wallet)


def test_rematch_after_an_undo_credits_again_under_a_fresh_key(client, finance, payer, new_account, wallet):
    other = new_account("Other Co")
    upload(client, finance, csv_file(row(payer["remittance_code"], "100.00")))
    line = only_line(client, finance, "matched")
    unmatch(client, finance, line["id"])
    assert match(client, finance, line["id"], other["id"], "the customer's parent company").status_code == 200
    assert balances(wallet, payer["id"]) == (0, 0, 0)
    assert balances(wallet, other["id"]) == (100_00, 0, 0)
    unmatch(client, finance, line["id"])
    assert match(client, finance, line["id"], payer["id"]).status_code == 200
    i = line["id"]
    assert ledger_keys(wallet) == [
        f"bank:{i}", f"bank:{i}:undo:1", f"bank:{i}:2", f"bank:{i}:undo:2", f"bank:{i}:3"
    ]
    assert [a[0] for a in actions(wallet)] == ["unmatch", "match", "unmatch", "match"]
    assert_ledger_clean(wallet)


def test_reconcile_run_matches_a_code_issued_after_the_transfer_arrived(
        client, finance, payer, new_account, wallet):
    later_code = "K7M2P4Q9R"  # not issued yet when the statement arrives
    upload(client, finance, csv_file(row(f"汇款 {later_code}", "60.00")))
    assert only_line(client, finance)["status"] == "unmatched"
    latecomer = new_account("Latecomer")
    with wallet.db.transaction() as session:
        session.execute(update(Account).where(Account.id == latecomer["id"]).values(remittance_code=later_code))
    response = client.post("/api/v1/reconcile", headers=bearer(finance))
    assert response.status_code == 200
    assert response.get_json()["matched"] == 1
    assert balances(wallet, latecomer["id"])[0] == 60_00
    again = client.post("/api/v1/reconcile", headers=bearer(finance)).get_json()
    assert again["matched"] == 0 and again["lines"] == 0
    assert balances(wallet, latecomer["id"])[0] == 60_00
    assert_ledger_clean(wallet)


def test_reconcile_never_rematches_a_line_finance_undid(client, finance, payer, wallet):
    upload(client, finance, csv_file(row(payer["remittance_code"], "100.00")))
    line = only_line(client, finance, "matched")
    unmatch(client, finance, line["id"])
    client.post("/api/v1/reconcile", headers=bearer(finance))
    assert only_line(client, finance)["status"] == "unmatched"
    assert balances(wallet, payer["id"]) == (0, 0, 0)


def test_listing_pages_with_a_cursor_and_refuses_an_unknown_status(client, finance):
    upload(client, finance, csv_file(*(row(f"房租 {n}", f"{n}.00") for n in range(1, 6))))
    first = client.get("/api/v1/statement-lines?status=unmatched&limit=2", headers=bearer(finance)).get_json()
    assert [line["amount"] for line in first["lines"]] == ["1.00", "2.00"]
    rest = client.get(
        f"/api/v1/statement-lines?status=unmatched&limit=10&cursor={first['next_cursor']}",
        headers=bearer(finance),
    ).get_json()
    assert [line["amount"] for line in rest["lines"]] == ["3.00", "4.00", "5.00"]
    assert rest["next_cursor"] is None
    bad = client.get("/api/v1/statement-lines?status=lost", headers=bearer(finance))
    assert bad.status_code == 422


def test_manual_actions_are_for_finance_only(client, token_for, payer):
    account_token = token_for("account", payer["id"])
    assert match(client, account_token, 1, payer["id"]).status_code == 403
    assert unmatch(client, account_token, 1).status_code == 403
    assert client.post("/api/v1/reconcile", headers=bearer(account_token)).status_code == 403


def test_an_upload_whose_file_name_holds_a_nul_is_422_and_imports_nothing(client, finance, payer):
    response = upload(client, finance, csv_file(row(payer["remittance_code"], "100.00")), filename="a\x00.csv")
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["field"] == "file"
    assert lines(client, finance) == []


def test_the_customers_ledger_shows_a_plain_memo_for_a_match_by_hand_and_its_undo_never_the_reason(
        client, finance, payer, token_for, wallet):
    upload(client, finance, csv_file(row("房租", "250.00")))
    line = only_line(client, finance, "unmatched")
    match(client, finance, line["id"], payer["id"], "ticket 4411: the receipt looks forged")
    unmatch(client, finance, line["id"], "belongs to Beta Trading Ltd, account 6222029999")
    customer = token_for("account", payer["id"])
    response = client.get(f"/api/v1/accounts/{payer['id']}/ledger", headers=bearer(customer))
    memos = {entry["kind"]: entry["memo"] for entry in response.get_json()["entries"]}
    assert set(memos.values()) == {
        "bank transfer, matched by finance", "bank transfer credited in error, taken back by finance"}
    assert "forged" not in response.get_data(as_text=True)
    assert "Beta Trading" not in response.get_data(as_text=True)
    # Finance still reads why, on the line and in its recorded actions.
    assert only_line(client, finance)["reason"] == "belongs to Beta Trading Ltd, account 6222029999"
    assert [reason for _, _, _, reason, _ in actions(wallet)] == [
        "ticket 4411: the receipt looks forged", "belongs to Beta Trading Ltd, account 6222029999"]
