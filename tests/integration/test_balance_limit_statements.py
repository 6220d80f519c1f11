"""Bank transfers that would take an account past the balance limit, on SQLite and PostgreSQL.

Such a line is left to finance as an exception, uncredited; it never refuses the rest of its
file, nor holds up the reconcile runs or the inbox for everyone else.
"""
import os
import time

from sqlalchemy import update

from app.adapters.db.models import Account
from app.domain.money import MAX_BALANCE_FEN
from app.jobs import run_job
from app.services import ledger
from tests.conftest import bearer
from tests.integration.statement_helpers import (  # noqa: F401 - finance, payer: fixtures
    assert_ledger_clean,
    balances,
    csv_file,
    finance,
    lines,
    payer,
    row,
    upload,
)
from tests.integration.wallet_helpers import top_up


def by_amount(client, token, status):
    return {line["amount"]: line for line in lines(client, token, status)}


def test_an_upload_credits_every_line_that_fits_and_leaves_the_rest_to_finance(
        client, finance, new_account, wallet):
    full, nearly, other = new_account("Full"), new_account("Nearly"), new_account("Other")
    top_up(wallet, full["id"], MAX_BALANCE_FEN, "fill")
    top_up(wallet, nearly["id"], MAX_BALANCE_FEN - 100, "fill-nearly")
    response = upload(client, finance, csv_file(
        row(full["remittance_code"], "0.01"),
        row(nearly["remittance_code"], "0.60"),
        row(nearly["remittance_code"], "0.70"),  # fits alone, not after the 0.60 before it
        row(nearly["remittance_code"], "0.40"),  # fits after the 0.60
        row(other["remittance_code"], "100.00"),
    ))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert (response.get_json()["matched"], response.get_json()["exception"]) == (3, 2)
    held = by_amount(client, finance, "exception")
    assert sorted(held) == ["0.01", "0.70"]
    assert "past the most a balance holds" in held["0.01"]["reason"]
    assert full["id"] in held["0.01"]["reason"]
    assert all(line["account_id"] is None for line in held.values())
    assert sorted(by_amount(client, finance, "matched")) == ["0.40", "0.60", "100.00"]
    assert balances(wallet, full["id"])[0] == MAX_BALANCE_FEN
    assert balances(wallet, nearly["id"])[0] == MAX_BALANCE_FEN
    assert balances(wallet, other["id"])[0] == 100_00
    assert_ledger_clean(wallet)


def test_a_line_paying_arrears_is_held_when_the_invoiceable_balance_is_full(wallet, new_account):
    account = new_account()
    top_up(wallet, account["id"], MAX_BALANCE_FEN, "fill")  # cash, nothing owed
    with wallet.db.transaction() as session:
        locked = ledger.lock_account(session, account["id"])
        ledger.record(session, locked, key="owe", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", 500), ledger.Posting("invoiceable", MAX_BALANCE_FEN - 200)])
    credits = [
        ledger.TopupCredit(account["id"], 300, "pays-300"),  # 200 fen room in invoiceable: no
        ledger.TopupCredit(account["id"], 200, "pays-200"),  # fits: arrears 300 left
    ]
    with wallet.db.transaction() as session:
        assert ledger.credits_past_limit(session, credits) == {"pays-300"}


def test_a_reconcile_run_holds_the_line_past_the_limit_and_credits_the_others(
        client, finance, new_account, wallet):
    full, latecomer = new_account("Full"), new_account("Latecomer")
    top_up(wallet, full["id"], MAX_BALANCE_FEN, "fill")
    codes = {"full": "K7M2P4Q9R", "latecomer": "H3J8N5T6Q"}  # not issued when the money arrives
    upload(client, finance, csv_file(row(f"汇款 {codes['full']}", "1.00"), row(f"汇款 {codes['latecomer']}", "60.00")))
    assert len(lines(client, finance, "unmatched")) == 2
    with wallet.db.transaction() as session:
        for name, account in (("full", full), ("latecomer", latecomer)):
            session.execute(update(Account).where(Account.id == account["id"]).values(remittance_code=codes[name]))
    response = client.post("/api/v1/reconcile", headers=bearer(finance))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert (response.get_json()["matched"], response.get_json()["exception"]) == (1, 1)
    assert balances(wallet, latecomer["id"])[0] == 60_00
    assert balances(wallet, full["id"])[0] == MAX_BALANCE_FEN
    (held,) = lines(client, finance, "exception")
    assert held["amount"] == "1.00" and "past the most a balance holds" in held["reason"]
    # The held line is finance's now: later runs leave it be.
    assert client.post("/api/v1/reconcile", headers=bearer(finance)).get_json()["lines"] == 0
    assert_ledger_clean(wallet)


def test_the_inbox_files_a_statement_away_when_a_line_is_held(wallet, new_account):
    full, other = new_account("Full"), new_account("Other")
    top_up(wallet, full["id"], MAX_BALANCE_FEN, "fill")
    inbox = wallet.settings.statement_inbox
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / "nov.csv"
    path.write_bytes(csv_file(row(full["remittance_code"], "1.00"), row(other["remittance_code"], "2.00")))
    then = time.time() - 60
    os.utime(path, (then, then))
    summary = run_job(wallet, "statements-import")
    assert "files imported 1" in summary and "errors 0" in summary
    assert (inbox / "processed" / "nov.csv").exists()
    assert balances(wallet, other["id"])[0] == 2_00
    assert balances(wallet, full["id"])[0] == MAX_BALANCE_FEN
    assert_ledger_clean(wallet)
