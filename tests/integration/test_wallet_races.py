"""Concurrency on PostgreSQL: row locks keep balances right, unique keys keep movements single."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.adapters.db.models import Account, ActivationFailure, Bill, Coupon, PrepaidCard
from app.domain.errors import DomainError
from app.services import ledger
from app.services.accounts import add_workspace, create_account
from app.services.bills import settle_bill
from app.services.coupons import activate_coupon, allocate_coupon
from app.services.expiry import expire_credits
from app.services.prepaid_cards import allocate_prepaid_card, buy_prepaid_card
from app.services.tokens import authenticate, create_token
from tests.integration.wallet_helpers import assert_ledger_clean, at_once, top_up

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_wallet(make_app, pg_url):
    return make_app(pg_url).extensions["wallet"]


def funded_account(wallet, *, cash_fen, coupons=(), cards=()):
    account = create_account(wallet.db, wallet.clock, name="Hot", settlement="guance")
    add_workspace(wallet.db, wallet.clock, account_id=account.id, workspace_id=f"ws-{account.id}")
    expires = wallet.clock.now() + timedelta(days=30)
    for fen in coupons:
        allocate_coupon(wallet.db, wallet.clock, account_id=account.id, face_value_fen=fen, valid_from=None,
                        expires_at=expires, actor="test")
    for fen in cards:
        allocate_prepaid_card(wallet.db, wallet.clock, account_id=account.id, amount_fen=fen,
                              expires_at=expires, actor="test")
    if cash_fen:
        top_up(wallet, account.id, cash_fen, f"topup-{account.id}")
    return account


def test_twenty_concurrent_bills_on_one_account_never_overspend(pg_wallet):
    wallet = pg_wallet
    account = funded_account(wallet, cash_fen=300_00, coupons=[100_00, 50_00], cards=[200_00, 150_00])
    held = 300_00 + 150_00 + 350_00
    amounts = [(i % 7 + 1) * 11_11 for i in range(20)]

    results = at_once(20, lambda i: settle_bill(
        wallet.db, wallet.clock, bill_id=f"race-{i}", workspace_id=f"ws-{account.id}",
        product="general", amount_fen=amounts[i]))

    assert all(not isinstance(r, Exception) for r in results), results
    by_source = Counter()
    for settled in results:
        assert not settled.replayed
        assert sum(_fen(a["amount"]) for a in settled.result["allocations"]) == _fen(settled.result["amount"])
        for a in settled.result["allocations"]:
            by_source[a["source"]] += _fen(a["amount"])
    total = sum(amounts)
    assert by_source["arrears"] == total - held  # every source drained, the rest owed
    assert by_source["cash"] == 300_00
    with wallet.db.sessions() as session:
        row = session.get(Account, account.id)
        assert (row.cash_fen, row.arrears_fen, row.invoiceable_fen) == (0, total - held, 300_00)
        assert session.scalar(select(func.sum(Coupon.balance_fen))) == 0
        assert session.scalar(select(func.sum(PrepaidCard.balance_fen))) == 0
        assert session.scalar(select(func.count()).select_from(Bill)) == 20
    assert_ledger_clean(wallet)


def test_the_same_bill_sent_ten_times_at_once_settles_once(pg_wallet):
    wallet = pg_wallet
    account = funded_account(wallet, cash_fen=100_00)
    results = at_once(10, lambda i: settle_bill(
        wallet.db, wallet.clock, bill_id="dup", workspace_id=f"ws-{account.id}", product="sms",
        amount_fen=30_00))
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(not r.replayed for r in results) == 1
    assert len({str(r.result) for r in results}) == 1
    with wallet.db.sessions() as session:
        assert session.get(Account, account.id).cash_fen == 70_00
    assert_ledger_clean(wallet)


def test_concurrent_wrong_codes_are_limited_to_ten_per_account(pg_wallet):
    wallet = pg_wallet
    account = funded_account(wallet, cash_fen=0)
    tokens = [create_token(wallet.db, wallet.clock, role="account", account_id=account.id) for _ in range(20)]
    principals = [authenticate(wallet.db, token) for token in tokens]
    results = at_once(20, lambda i: activate_coupon(
        wallet.db, wallet.clock, secret_key=wallet.settings.secret_key, account_id=account.id,
        code=f"WRONG{i}", token_id=principals[i].token_id, actor="test"))
    codes = Counter(r.code for r in results if isinstance(r, DomainError))
    assert codes == {"activation_code_unknown": 10, "too_many_activation_attempts": 10}
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ActivationFailure)) == 10


def test_concurrent_card_purchases_never_spend_more_cash_than_there_is(pg_wallet):
    wallet = pg_wallet
    account = funded_account(wallet, cash_fen=250_00)
    results = at_once(5, lambda i: buy_prepaid_card(
        wallet.db, wallet.clock, wallet.settings, account_id=account.id, amount_fen=100_00, actor="test"))
    assert sum(isinstance(r, dict) for r in results) == 2
    assert sum(getattr(r, "code", None) == "insufficient_funds" for r in results) == 3
    with wallet.db.sessions() as session:
        assert session.get(Account, account.id).cash_fen == 50_00
    assert_ledger_clean(wallet)


def test_expiry_and_bills_at_once_neither_deadlock_nor_double_spend(pg_wallet):
    wallet = pg_wallet
    accounts = [funded_account(wallet, cash_fen=10_00, coupons=[20_00], cards=[30_00]) for _ in range(4)]
    wallet.clock.advance(days=31)  # every unit is past its window, not yet expired

    def work(i):
        if i < 2:
            return expire_credits(wallet.db, wallet.clock)
        account = accounts[i % 4]
        return settle_bill(wallet.db, wallet.clock, bill_id=f"x-{i}", workspace_id=f"ws-{account.id}",
                           product="general", amount_fen=15_00)

    results = at_once(8, work)
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.forfeited_fen for r in results[:2]) == 4 * 50_00
    for settled in results[2:]:  # expired units pay nothing, whoever ran first
        assert {a["source"] for a in settled.result["allocations"]} <= {"cash", "arrears"}
    with wallet.db.sessions() as session:
        assert ledger.verify(session) == []


def _fen(amount: str) -> int:
    whole, frac = amount.split(".")
    return int(whole) * 100 + int(frac)
