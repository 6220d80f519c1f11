"""``ledger verify`` finds what a real incident leaves behind, on SQLite and PostgreSQL.

Each test builds a clean wallet through the services, corrupts one thing as a bad hand edit,
a restore from the wrong backup or a half-applied script would, and expects the command to
name it and exit 1.
"""
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from app.adapters.db.models import (
    Account,
    Coupon,
    LedgerEntry,
    LedgerTransaction,
    PrepaidCard,
    StatementLine,
    TopupOrder,
)
from app.services import ledger
from app.services.accounts import create_account
from tests.integration.statement_helpers import csv_file, finance, payer, row, upload  # noqa: F401
from tests.integration.wallet_helpers import (
    add_workspace,
    give_card,
    give_coupon,
    once_after_statement,
    post_bill,
    top_up,
)


def verify_command(app):
    return app.test_cli_runner().invoke(args=["ledger", "verify"])


def assert_clean(app):
    result = verify_command(app)
    assert result.exit_code == 0, result.output


def assert_reported(app, *words):
    result = verify_command(app)
    assert result.exit_code == 1, result.output
    for word in words:
        assert word in result.output, result.output
    return result.output


def paid_order(wallet, account_id, out_trade_no, amount_fen):
    """An Alipay order paid and credited as the notify handler does it."""
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        session.add(TopupOrder(out_trade_no=out_trade_no, account_id=account_id, amount_fen=amount_fen,
                               subject="top-up", status="paid", created_at=now,
                               expires_at=now + timedelta(minutes=15), paid_at=now, credited_by="notify"))
        account = ledger.lock_account(session, account_id)
        ledger.credit_topup(session, account, amount_fen=amount_fen, key=f"alipay:{out_trade_no}",
                            kind="topup_alipay", now=now, reference=out_trade_no)


@pytest.mark.parametrize("column", ["cash_fen", "arrears_fen", "invoiceable_fen"])
def test_a_cached_account_balance_one_fen_off_is_reported(app, wallet, new_account, client, admin_token, column):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-1")
    assert post_bill(client, admin_token, "b1", "ws-1", "3.00").status_code == 201  # arrears 3.00
    top_up(wallet, account["id"], 500, "t1")  # pays them off (invoiceable 3.00), cash 2.00
    assert_clean(app)
    with wallet.db.transaction() as session:
        session.execute(update(Account).where(Account.id == account["id"])
                        .values({column: getattr(Account, column) + 1}))
    assert_reported(app, f"DIFFERENCE account {account['id']} {column.removesuffix('_fen')}")


@pytest.mark.parametrize("model", [Coupon, PrepaidCard])
def test_a_unit_balance_that_differs_from_its_entries_is_reported(app, wallet, new_account, client, admin_token,
                                                                  model):
    account = new_account()
    give_coupon(client, admin_token, account["id"], "50.00")
    give_card(client, admin_token, account["id"], "100.00")
    assert_clean(app)
    with wallet.db.transaction() as session:
        session.execute(update(model).values(balance_fen=model.balance_fen - 1))
    assert_reported(app, "DIFFERENCE", "unit")


def test_an_entry_whose_balance_after_is_wrong_is_reported(app, wallet, new_account):
    account = new_account()
    top_up(wallet, account["id"], 500, "t1")
    top_up(wallet, account["id"], 700, "t2")
    assert_clean(app)
    with wallet.db.transaction() as session:
        entry_id = session.scalar(select(LedgerEntry.id).where(LedgerEntry.idempotency_key.like("t1/%")))
        session.execute(update(LedgerEntry).where(LedgerEntry.id == entry_id).values(balance_after_fen=501))
    assert_reported(app, f"ledger_entries {entry_id}", "balance after 5.01")


def test_an_entry_deleted_from_the_middle_of_a_history_is_reported_even_with_the_balance_made_to_fit(
    app, wallet, new_account
):
    account = new_account()
    for number, fen in enumerate((500, 700, 900)):
        top_up(wallet, account["id"], fen, f"t{number}")
    with wallet.db.transaction() as session:
        session.execute(delete(LedgerEntry).where(LedgerEntry.idempotency_key.like("t1/%")))
    assert_reported(app, "DIFFERENCE")
    with wallet.db.transaction() as session:  # whoever deleted it also "fixed" the cached balance
        session.execute(update(Account).where(Account.id == account["id"]).values(cash_fen=1400))
        later = session.scalar(select(LedgerEntry.id).where(LedgerEntry.idempotency_key.like("t2/%")))
    assert_reported(app, f"ledger_entries {later}")


def test_an_entry_without_its_transaction_is_reported(app, wallet, new_account):
    account = new_account()
    top_up(wallet, account["id"], 500, "t1")
    with wallet.db.transaction() as session:
        session.execute(delete(LedgerTransaction).where(LedgerTransaction.idempotency_key == "t1"))
    assert_reported(app, "BROKEN REFERENCE ledger_entries", "does not exist")


def test_a_transaction_without_entries_is_reported(app, wallet, new_account):
    account = new_account()
    top_up(wallet, account["id"], 500, "t1")
    top_up(wallet, account["id"], 700, "t2")
    with wallet.db.transaction() as session:
        session.execute(delete(LedgerEntry).where(LedgerEntry.idempotency_key.like("t2/%")))
        session.execute(update(Account).where(Account.id == account["id"]).values(cash_fen=500))
        txn_id = session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == "t2"))
    assert_reported(app, f"ledger_transactions {txn_id}", "no entries")


def test_a_bill_charged_wholly_to_the_cloud_account_has_no_entries_and_is_clean(app, new_account, client,
                                                                               admin_token):
    account = new_account("Cloud Co", settlement="cloud")
    add_workspace(client, admin_token, account["id"], "ws-c")
    assert post_bill(client, admin_token, "cloud-1", "ws-c", "9.00").status_code == 201
    assert_clean(app)


def test_a_paid_order_without_its_credit_is_reported(app, wallet, new_account):
    account = new_account()
    paid_order(wallet, account["id"], "ORDER1", 500)
    assert_clean(app)
    with wallet.db.transaction() as session:
        session.execute(delete(LedgerEntry).where(LedgerEntry.idempotency_key.like("alipay:ORDER1/%")))
        session.execute(delete(LedgerTransaction).where(LedgerTransaction.idempotency_key == "alipay:ORDER1"))
        session.execute(update(Account).where(Account.id == account["id"]).values(cash_fen=0))
    assert_reported(app, "topup_orders ORDER1", "paid")


def test_a_credit_without_a_paid_order_is_reported(app, wallet, new_account):
    account = new_account()
    paid_order(wallet, account["id"], "ORDER1", 500)
    with wallet.db.transaction() as session:
        session.execute(update(TopupOrder).values(status="pending", paid_at=None, credited_by=None))
    assert_reported(app, "ORDER1", "not paid")
    with wallet.db.transaction() as session:
        session.execute(delete(TopupOrder))
    assert_reported(app, "ORDER1", "does not exist")


def test_a_matched_statement_line_without_its_credit_is_reported(app, wallet, client, finance, payer):  # noqa: F811
    assert upload(client, finance, csv_file(row(payer["remittance_code"], "100.00"))).status_code == 201
    assert_clean(app)
    with wallet.db.transaction() as session:
        line_id = session.scalar(select(StatementLine.id).where(StatementLine.status == "matched"))
        session.execute(delete(LedgerEntry).where(LedgerEntry.idempotency_key.like(f"bank:{line_id}/%")))
        session.execute(delete(LedgerTransaction).where(LedgerTransaction.idempotency_key == f"bank:{line_id}"))
        session.execute(update(Account).where(Account.id == payer["id"]).values(cash_fen=0))
    assert_reported(app, f"statement_lines {line_id}", "credit")


def test_a_matched_and_undone_line_rematched_by_hand_is_clean(app, wallet, client, finance, payer,  # noqa: F811
                                                              new_account):
    other = new_account("Other")
    assert upload(client, finance, csv_file(row(payer["remittance_code"], "100.00"))).status_code == 201
    with wallet.db.sessions() as session:
        line_id = session.scalar(select(StatementLine.id))
    headers = {"Authorization": f"Bearer {finance}"}
    assert client.post(f"/api/v1/statement-lines/{line_id}/unmatch", json={"reason": "wrong payer"},
                       headers=headers).status_code == 200
    assert_clean(app)
    assert client.post(f"/api/v1/statement-lines/{line_id}/match",
                       json={"account_id": other["id"], "reason": "called them"}, headers=headers).status_code == 200
    assert_clean(app)
    with wallet.db.transaction() as session:  # the line claims the payer, the credit went to the other
        session.execute(update(StatementLine).values(account_id=payer["id"]))
    assert_reported(app, f"statement_lines {line_id}")


def test_verify_streams_the_balance_holders_in_batches_and_keeps_none_of_them(
    wallet, new_account, client, admin_token, monkeypatch
):
    # Batches smaller than the holders: accounts, coupons and cards each span several.
    monkeypatch.setattr(ledger, "_VERIFY_BATCH", 2)
    accounts = [new_account()["id"] for _ in range(5)]
    for account_id in accounts:
        top_up(wallet, account_id, 500, f"t-{account_id}")
        give_coupon(client, admin_token, account_id, "50.00")
        give_card(client, admin_token, account_id, "100.00")
    with wallet.db.transaction() as session:
        session.execute(update(Account).where(Account.id == accounts[3]).values(cash_fen=Account.cash_fen + 1))
        session.execute(
            update(Coupon).where(Coupon.account_id == accounts[4]).values(balance_fen=Coupon.balance_fen - 1)
        )
    with wallet.db.sessions() as session:
        differences = ledger.verify(session)
        # A hundred thousand accounts and their units as entities took 560 MB; rows are dropped.
        assert len(session.identity_map) == 0
    assert {(d.account_id, d.bucket, d.cached_fen - d.ledger_fen) for d in differences} == {
        (accounts[3], "cash", 1),
        (accounts[4], "coupon", -1),
    }


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["command", "job"])
def test_money_moving_while_the_ledger_is_checked_is_no_difference(make_app, pg_url, how):
    from app.jobs import JOBS

    app = make_app(pg_url)
    wallet = app.extensions["wallet"]
    account = create_account(wallet.db, wallet.clock, name="Busy", settlement="guance")
    top_up(wallet, account.id, 100_00, "t0")
    # A top-up commits just after the check has summed the entries, before it reads the cached
    # balances: as a notify or a bill does at any moment in production.
    moved = once_after_statement(
        wallet.db.engine,
        lambda sql: "GROUP BY ledger_entries.account_id" in sql,
        lambda: top_up(wallet, account.id, 250_00, "t1"),
    )

    if how == "command":
        assert_clean(app)
    else:
        assert JOBS["ledger-verify"].run(wallet) == "ledger clean"
    assert moved
    assert_clean(app)  # and the movement is there for the next check
