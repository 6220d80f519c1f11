import pytest
from sqlalchemy import insert, select, update

from app.adapters.db.models import Account, LedgerEntry, LedgerTransaction, Statement, StatementLine
from app.services import ledger
from app.services.ledger import AlreadyRecorded, Posting


def _credit(wallet, account_id, amount_fen, key):
    with wallet.db.transaction() as session:
        account = ledger.lock_account(session, account_id)
        return ledger.credit_topup(
            session, account, amount_fen=amount_fen, key=key, kind="topup", now=wallet.clock.now()
        )


def test_topup_becomes_cash_when_nothing_is_owed(wallet, new_account):
    account = new_account()
    split = _credit(wallet, account["id"], 10000, "t1")
    assert (split.arrears_paid_fen, split.cash_fen) == (0, 10000)
    with wallet.db.sessions() as session:
        assert session.get(Account, account["id"]).cash_fen == 10000


def test_topup_pays_off_arrears_first_and_that_part_becomes_invoiceable(wallet, new_account):
    account = new_account()
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.record(session, acc, key="bill-1", kind="bill", now=wallet.clock.now(),
                      postings=[Posting("arrears", 3000)])
    split = _credit(wallet, account["id"], 10000, "t1")
    assert (split.arrears_paid_fen, split.cash_fen) == (3000, 7000)
    with wallet.db.sessions() as session:
        acc = session.get(Account, account["id"])
        assert (acc.cash_fen, acc.arrears_fen, acc.invoiceable_fen) == (7000, 0, 3000)
        assert ledger.verify(session) == []


def test_same_idempotency_key_never_credits_twice(wallet, new_account):
    account = new_account()
    _credit(wallet, account["id"], 10000, "alipay:T1")
    with pytest.raises(AlreadyRecorded):
        _credit(wallet, account["id"], 10000, "alipay:T1")
    with wallet.db.sessions() as session:
        assert session.get(Account, account["id"]).cash_fen == 10000
        assert ledger.is_recorded(session, "alipay:T1")


def test_a_balance_never_goes_below_zero(wallet, new_account):
    from app.domain.errors import InsufficientFunds

    account = new_account()
    with pytest.raises(InsufficientFunds):
        with wallet.db.transaction() as session:
            acc = ledger.lock_account(session, account["id"])
            ledger.record(session, acc, key="x", kind="bill", now=wallet.clock.now(),
                          postings=[Posting("cash", -1)])
    with wallet.db.sessions() as session:
        assert not ledger.is_recorded(session, "x")


def test_verify_reports_a_cached_balance_that_differs_from_its_entries(wallet, new_account, app):
    account = new_account()
    _credit(wallet, account["id"], 10000, "t1")
    with wallet.db.transaction() as session:
        session.execute(update(Account).where(Account.id == account["id"]).values(cash_fen=99))
    with wallet.db.sessions() as session:
        [diff] = ledger.verify(session)
    assert (diff.bucket, diff.cached_fen, diff.ledger_fen) == ("cash", 99, 10000)

    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert "cached 0.99 ledger 100.00" in result.output


def test_verify_references_finds_rows_that_refer_to_missing_ones(wallet, new_account, app):
    # The ledger and statement lines have no foreign keys; verify is what checks them.
    account, other = new_account(), new_account("Other")
    _credit(wallet, account["id"], 500, "t1")
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        txn_id = session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == "t1"))
        ghost_txn = session.execute(
            insert(LedgerTransaction).values(idempotency_key="ghost", account_id="acc_missing", kind="topup",
                                             created_at=now).returning(LedgerTransaction.id)
        ).scalar_one()
        entries = session.execute(
            insert(LedgerEntry).returning(LedgerEntry.id),
            [
                dict(transaction_id=987654, idempotency_key="e1", account_id=account["id"], bucket="cash",
                     amount_fen=1, balance_after_fen=1, created_at=now),
                dict(transaction_id=txn_id, idempotency_key="e2", account_id=other["id"], bucket="cash",
                     amount_fen=1, balance_after_fen=1, created_at=now),
            ],
        ).scalars().all()
        statement_id = session.execute(
            insert(Statement).values(sha256="0" * 64, filename="s.csv", format="csv", content=b"",
                                     bank_account="", uploaded_by="t", uploaded_at=now, lines_total=1,
                                     lines_new=1).returning(Statement.id)
        ).scalar_one()
        line = dict(identity_key="k", line_no=1, raw="", booked_at="2026-11-26", amount_fen=1, currency="CNY",
                    direction="in", status="unmatched")
        lines = session.execute(
            insert(StatementLine).returning(StatementLine.id),
            [
                {**line, "statement_id": 424242, "identity_key": "k1"},
                {**line, "statement_id": statement_id, "identity_key": "k2", "status": "matched",
                 "account_id": "acc_gone"},
                {**line, "statement_id": statement_id, "identity_key": "k3", "status": "suggested",
                 "suggested_account_id": "acc_never"},
            ],
        ).scalars().all()
    with wallet.db.sessions() as session:
        found = {(b.table, b.row_id, b.problem) for b in ledger.verify_references(session)}
    assert found == {
        ("ledger_entries", entries[0], "its transaction 987654 does not exist"),
        ("ledger_entries", entries[1], f"its account {other['id']} is not its transaction's ({account['id']})"),
        ("ledger_transactions", ghost_txn, "its account acc_missing does not exist"),
        ("statement_lines", lines[0], "its statement 424242 does not exist"),
        ("statement_lines", lines[1], "its account acc_gone does not exist"),
        ("statement_lines", lines[2], "its suggested account acc_never does not exist"),
    }

    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN REFERENCE ledger_entries {entries[0]}: its transaction 987654 does not exist" in result.output


def test_ledger_verify_command_exits_zero_when_clean(wallet, new_account, app):
    account = new_account()
    _credit(wallet, account["id"], 500, "t1")
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output


def test_a_duplicate_key_leaves_the_callers_transaction_usable(wallet, new_account):
    account = new_account()
    _credit(wallet, account["id"], 100, "dup")
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        with pytest.raises(AlreadyRecorded):
            ledger.credit_topup(session, acc, amount_fen=100, key="dup", kind="topup", now=wallet.clock.now())
        # The same transaction goes on and commits other work.
        ledger.credit_topup(session, acc, amount_fen=250, key="other", kind="topup", now=wallet.clock.now())
    with wallet.db.sessions() as session:
        assert session.get(Account, account["id"]).cash_fen == 350
        assert ledger.verify(session) == []
