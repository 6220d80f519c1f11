"""ledger.credit_topups_bulk books exactly what credit_topup would, on SQLite and PostgreSQL."""
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.adapters.db.models import LedgerEntry
from app.services import ledger
from app.services.accounts import create_account
from tests.integration.statement_helpers import assert_ledger_clean, balances


def owing(wallet, name: str, arrears_fen: int) -> str:
    account = create_account(wallet.db, wallet.clock, name=name, settlement="guance")
    if not arrears_fen:
        return account.id  # a bill of nothing would be a transaction without entries
    with wallet.db.transaction() as session:
        locked = ledger.lock_account(session, account.id)
        ledger.record(session, locked, key=f"bill:{name}", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", arrears_fen)])
    return account.id


def entries(wallet, account_id):
    with wallet.db.sessions() as session:
        rows = session.execute(
            select(LedgerEntry.bucket, LedgerEntry.amount_fen, LedgerEntry.balance_after_fen,
                   LedgerEntry.idempotency_key)
            .where(LedgerEntry.account_id == account_id)
            .order_by(LedgerEntry.id)
        ).all()
    return [tuple(row) for row in rows]


def test_bulk_credits_pay_arrears_first_in_the_order_given_like_single_credits(wallet):
    bulk_id, single_id = owing(wallet, "bulk", 30_00), owing(wallet, "single", 30_00)
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        credited = ledger.credit_topups_bulk(
            session,
            [ledger.TopupCredit(bulk_id, 10_00, "k1"), ledger.TopupCredit(bulk_id, 50_00, "k2")],
            kind="topup_bank",
            now=now,
        )
    assert credited == {"k1", "k2"}
    for key, amount in (("k1", 10_00), ("k2", 50_00)):
        with wallet.db.transaction() as session:
            account = ledger.lock_account(session, single_id)
            ledger.credit_topup(session, account, amount_fen=amount, key=key + "-single",
                                kind="topup_bank", now=now)
    assert balances(wallet, bulk_id) == balances(wallet, single_id) == (30_00, 0, 30_00)
    strip = [(bucket, amount, after, key.split("/")[1]) for bucket, amount, after, key in entries(wallet, bulk_id)]
    same = [(bucket, amount, after, key.split("/")[1]) for bucket, amount, after, key in entries(wallet, single_id)]
    assert strip == same
    assert_ledger_clean(wallet)


def test_bulk_credit_skips_keys_recorded_before(wallet):
    account_id = owing(wallet, "again", 0 + 1)
    now = wallet.clock.now()
    credits = [ledger.TopupCredit(account_id, 5_00, "bank:1")]
    with wallet.db.transaction() as session:
        assert ledger.credit_topups_bulk(session, credits, kind="topup_bank", now=now) == {"bank:1"}
    with wallet.db.transaction() as session:
        assert ledger.credit_topups_bulk(session, credits, kind="topup_bank", now=now) == set()
    assert balances(wallet, account_id) == (4_99, 0, 1)
    assert_ledger_clean(wallet)


def test_bulk_credits_book_every_split_like_single_credits(wallet):
    # Nothing owed (all cash), less than owed (no cash entry), exactly what is owed (no cash
    # entry, arrears reach zero), then more: each as credit_topup books it, accounts interleaved.
    amounts = [(0, [7_00, 3_00]), (25_00, [10_00, 15_00, 4_00]), (9_00, [9_00, 1_00])]
    now = wallet.clock.now()
    pairs = [(owing(wallet, f"bulk{n}", owed), owing(wallet, f"single{n}", owed), credits)
             for n, (owed, credits) in enumerate(amounts)]
    bulk = [ledger.TopupCredit(bulk_id, amount, f"b{n}:{i}")
            for i in range(3) for n, (bulk_id, _single, credits) in enumerate(pairs)
            for amount in credits[i : i + 1]]
    with wallet.db.transaction() as session:
        ledger.credit_topups_bulk(session, bulk, kind="topup_bank", now=now)
    for n, (_bulk, single_id, credits) in enumerate(pairs):
        for i, amount in enumerate(credits):
            with wallet.db.transaction() as session:
                account = ledger.lock_account(session, single_id)
                ledger.credit_topup(session, account, amount_fen=amount, key=f"s{n}:{i}",
                                    kind="topup_bank", now=now)
    for bulk_id, single_id, _credits in pairs:
        assert balances(wallet, bulk_id) == balances(wallet, single_id)
        suffixes = [[(bucket, amount, after, key.split("/")[1]) for bucket, amount, after, key in
                     entries(wallet, account_id)] for account_id in (bulk_id, single_id)]
        assert suffixes[0] == suffixes[1]
    assert balances(wallet, pairs[0][0]) == (10_00, 0, 0)
    assert balances(wallet, pairs[1][0]) == (4_00, 0, 25_00)
    assert balances(wallet, pairs[2][0]) == (1_00, 0, 9_00)
    assert_ledger_clean(wallet)


def test_bulk_credit_of_new_keys_books_like_the_probing_one(wallet):
    probed_id, new_id = owing(wallet, "probed", 12_00), owing(wallet, "new", 12_00)
    now = wallet.clock.now()
    amounts = (5_00, 10_00, 3_00)
    with wallet.db.transaction() as session:
        ledger.credit_topups_bulk(
            session, [ledger.TopupCredit(probed_id, a, f"p{n}") for n, a in enumerate(amounts)],
            kind="topup_bank", now=now,
        )
        ledger.credit_new_topups_bulk(
            session, (ledger.TopupCredit(new_id, a, f"n{n}") for n, a in enumerate(amounts)),
            count=len(amounts), account_ids={new_id}, kind="topup_bank", now=now,
        )
    assert balances(wallet, new_id) == balances(wallet, probed_id) == (6_00, 0, 12_00)
    suffixes = [[(bucket, amount, after, key.split("/")[1]) for bucket, amount, after, key in
                 entries(wallet, account_id)] for account_id in (probed_id, new_id)]
    assert suffixes[0] == suffixes[1]
    assert_ledger_clean(wallet)


def test_bulk_credit_of_new_keys_that_collide_fails_and_leaves_nothing(wallet):
    # Not probed for: the unique key refuses it, and the whole transaction rolls back.
    account_id = owing(wallet, "collide", 2_00)
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        ledger.credit_topups_bulk(session, [ledger.TopupCredit(account_id, 5_00, "bank:7")],
                                  kind="topup_bank", now=now)
    before = balances(wallet, account_id)
    credits = [ledger.TopupCredit(account_id, 3_00, "bank:8"), ledger.TopupCredit(account_id, 1_00, "bank:7")]
    with pytest.raises(IntegrityError):
        with wallet.db.transaction() as session:
            ledger.credit_new_topups_bulk(session, iter(credits), count=2, account_ids={account_id},
                                          kind="topup_bank", now=now)
    assert balances(wallet, account_id) == before == (3_00, 0, 2_00)
    with wallet.db.sessions() as session:
        assert not ledger.is_recorded(session, "bank:8")
    assert_ledger_clean(wallet)


def test_bulk_credit_of_new_keys_refuses_a_wrong_count(wallet):
    account_id = owing(wallet, "count", 0 + 1)
    now = wallet.clock.now()
    credits = [ledger.TopupCredit(account_id, 1_00, "c1"), ledger.TopupCredit(account_id, 1_00, "c2")]
    for count in (1, 3):
        with pytest.raises(ValueError):
            with wallet.db.transaction() as session:
                ledger.credit_new_topups_bulk(session, iter(credits), count=count,
                                              account_ids={account_id}, kind="topup_bank", now=now)
    assert balances(wallet, account_id) == (0, 1, 0)
    with wallet.db.sessions() as session:
        assert not ledger.is_recorded(session, "c1")
    assert_ledger_clean(wallet)
