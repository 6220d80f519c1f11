"""Balances stay within what the BIGINT fen columns hold, with the same answers on SQLite and PostgreSQL.

A movement past ``MAX_BALANCE_FEN`` is a 409 ``balance_limit`` that moves nothing, never a 500 from
the database (PostgreSQL's "bigint out of range", SQLite's "Python int too large"); sums over
many rows (the wallet's coupon total, ``ledger verify``) give the same figure on both.
"""
from datetime import timedelta

import pytest
from sqlalchemy import insert

from app.adapters.db.models import LedgerEntry, LedgerTransaction
from app.domain.errors import BalanceLimit
from app.domain.money import MAX_BALANCE_FEN, format_fen
from app.services import ledger
from app.services.units import grant_coupon
from tests.integration.wallet_helpers import (
    add_workspace,
    assert_ledger_clean,
    drawn,
    post_bill,
    top_up,
    wallet_of,
)

LARGEST_AMOUNT = "99999999999999.99"  # the largest amount a request's string can carry


def owe(wallet, account_id, fen):
    with wallet.db.transaction() as session:
        account = ledger.lock_account(session, account_id)
        ledger.record(session, account, key="seed-arrears", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", fen)])


def test_a_bill_reaching_the_limit_settles_and_one_past_it_is_409_moving_nothing(
    client, admin_token, new_account, wallet
):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws")
    owe(wallet, account["id"], MAX_BALANCE_FEN - 1)

    assert post_bill(client, admin_token, "b-last", "ws", "0.01").status_code == 201
    refused = post_bill(client, admin_token, "b-past", "ws", "0.01")
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.get_json()["code"] == "balance_limit"
    assert wallet_of(client, admin_token, account["id"])["arrears"] == format_fen(MAX_BALANCE_FEN)
    # Nothing of the refused bill was kept: the same id settles once there is room.
    top_up(wallet, account["id"], 100, "pay-some")
    assert post_bill(client, admin_token, "b-past", "ws", "0.01").status_code == 201
    assert_ledger_clean(wallet)


def test_the_largest_bills_over_and_over_end_in_409_never_a_500(client, admin_token, new_account, wallet):
    # 922 such bills used to overflow the arrears column: a 500 on both databases.
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws")
    owe(wallet, account["id"], MAX_BALANCE_FEN - 3 * 9_999_999_999_999_999 // 2)
    answers = [post_bill(client, admin_token, f"b{i}", "ws", LARGEST_AMOUNT) for i in range(3)]
    assert [a.status_code for a in answers] == [201, 409, 409]
    assert drawn(answers[0]) == [("arrears", LARGEST_AMOUNT)]
    assert_ledger_clean(wallet)


def test_a_top_up_past_the_cash_limit_is_refused_and_records_nothing(new_account, wallet):
    account = new_account()
    top_up(wallet, account["id"], MAX_BALANCE_FEN, "fill")
    with pytest.raises(BalanceLimit):
        top_up(wallet, account["id"], 1, "one-more")
    with pytest.raises(BalanceLimit):
        with wallet.db.transaction() as session:
            ledger.credit_topups_bulk(
                session, [ledger.TopupCredit(account["id"], 1, "bulk-one-more")], kind="topup", now=wallet.clock.now()
            )
    with wallet.db.sessions() as session:
        assert not ledger.is_recorded(session, "one-more")
        assert not ledger.is_recorded(session, "bulk-one-more")
    assert_ledger_clean(wallet)


def test_the_coupon_total_past_bigint_is_the_same_on_both_databases(client, admin_token, new_account, wallet):
    # Each coupon fits its column; a thousand of them add up past 2**63 - 1 fen, where SQLite's
    # SUM fails with "integer overflow" and PostgreSQL's answers.
    account = new_account()
    face = 9_999_999_999_999_999
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        locked = ledger.lock_account(session, account["id"])
        for _ in range(1000):
            grant_coupon(session, locked, kind="regular", face_value_fen=face, valid_from=now,
                         expires_at=now + timedelta(days=30), origin="allocation", now=now)
    figures = wallet_of(client, admin_token, account["id"])
    assert figures["coupons"]["regular"] == format_fen(1000 * face)


def test_ledger_verify_reports_entries_adding_up_past_bigint_on_both_databases(app, new_account, wallet):
    # A corrupted ledger is what the command is for: it must report it, not fail summing it.
    account = new_account()
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        txn_id = session.execute(
            insert(LedgerTransaction).values(idempotency_key="forged", account_id=account["id"], kind="topup",
                                             reference="", memo="", actor="", created_at=now)
        ).inserted_primary_key[0]
        for index in range(2):
            session.execute(
                insert(LedgerEntry).values(transaction_id=txn_id, idempotency_key=f"forged/{index}:cash",
                                           account_id=account["id"], bucket="cash", amount_fen=2**62,
                                           balance_after_fen=2**62 * (index + 1) - index, created_at=now)
            )
    with wallet.db.sessions() as session:
        assert ledger.verify(session) == [ledger.Difference(account["id"], "cash", None, 0, 2**63)]
