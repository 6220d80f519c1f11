"""Random sequences of wallet movements, on SQLite and PostgreSQL, against the rules they obey.

Each example is a fresh account. After every step: cash and arrears are never negative and
never both held; what is invoiceable is exactly the cash actually spent (top-ups minus the cash
still held: bills paid from cash, card purchases, arrears paid off); every bill is split as the
pure deduction rules split it over the units and cash held just before, and a replay of it
moves nothing. At the end every cached balance equals its ledger entries.
"""
from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.adapters.db.models import Account, Coupon, PrepaidCard
from app.domain.deduction import PREPAID_CARD, Unit, allocate
from app.domain.errors import InsufficientFunds
from app.domain.money import parse_amount
from app.services.accounts import add_workspace, create_account
from app.services.bills import settle_bill
from app.services.coupons import allocate_coupon
from app.services.expiry import expire_credits
from app.services.prepaid_cards import allocate_prepaid_card, buy_prepaid_card
from tests.integration.wallet_helpers import assert_ledger_clean, top_up

HOUR = timedelta(hours=1)

steps = st.one_of(
    st.tuples(st.just("top_up"), st.integers(1, 150_000_00)),
    st.tuples(st.just("bill"), st.sampled_from(["general", "sms", "dial_testing"]), st.integers(1, 60_000_00)),
    st.tuples(st.just("buy_card"), st.sampled_from([100_00, 500_00, 10_000_00, 30_000_00, 100_000_00])),
    st.tuples(st.just("give_card"), st.integers(1, 20_000_00), st.integers(1, 72)),
    # A coupon's window: starting some hours before or after now, lasting some hours.
    st.tuples(st.just("give_coupon"), st.integers(1, 20_000_00), st.integers(-6, 6), st.integers(1, 72)),
    st.tuples(st.just("advance"), st.integers(1, 48)),
    st.tuples(st.just("expire"),),
)


def _held(wallet, account_id):
    """The account's cash and its active units, as the deduction rules see them."""
    with wallet.db.sessions() as session:
        cash = session.get(Account, account_id).cash_fen
        units = [
            Unit(f"{c.kind}_coupon", c.id, c.balance_fen, c.valid_from, c.expires_at, c.created_at)
            for c in session.execute(
                select(Coupon).where(Coupon.account_id == account_id, Coupon.status == "active")
            ).scalars()
        ] + [
            Unit(PREPAID_CARD, c.id, c.balance_fen, c.valid_from, c.expires_at, c.created_at)
            for c in session.execute(
                select(PrepaidCard).where(PrepaidCard.account_id == account_id, PrepaidCard.status == "active")
            ).scalars()
        ]
    return cash, units


def _balances(wallet, account_id):
    with wallet.db.sessions() as session:
        account = session.get(Account, account_id)
        return account.cash_fen, account.arrears_fen, account.invoiceable_fen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(settlement=st.sampled_from(["guance", "cloud"]), plan=st.lists(steps, min_size=1, max_size=25))
def test_any_sequence_of_movements_keeps_the_wallet_rules(wallet, settlement, plan):
    clock, db = wallet.clock, wallet.db
    account = create_account(db, clock, name="Seq", settlement=settlement)
    workspace = f"ws-{account.id}"
    add_workspace(db, clock, account_id=account.id, workspace_id=workspace)
    topped_up = 0
    for number, step in enumerate(plan):
        kind, args = step[0], step[1:]
        now = clock.now()
        if kind == "top_up":
            top_up(wallet, account.id, args[0], f"seq-topup:{account.id}:{number}")
            topped_up += args[0]
        elif kind == "bill":
            product, amount = args
            cash, units = _held(wallet, account.id)
            expected = [
                (a.source, None if a.unit_id is None else str(a.unit_id), a.amount_fen)
                for a in allocate(amount, settlement=settlement, product=product, units=units,
                                  cash_fen=cash, now=now)
            ]
            bill_id = f"seq-bill:{account.id}:{number}"
            settled = settle_bill(db, clock, bill_id=bill_id, workspace_id=workspace,
                                  product=product, amount_fen=amount)
            drawn = [(a["source"], a["id"], parse_amount(a["amount"])) for a in settled.result["allocations"]]
            assert drawn == expected
            before = _balances(wallet, account.id)
            again = settle_bill(db, clock, bill_id=bill_id, workspace_id=workspace,
                                product=product, amount_fen=amount)
            assert (again.replayed, again.result) == (True, settled.result)
            assert _balances(wallet, account.id) == before
        elif kind == "buy_card":
            cash = _balances(wallet, account.id)[0]
            try:
                buy_prepaid_card(db, clock, wallet.settings, account_id=account.id, amount_fen=args[0], actor="seq")
            except InsufficientFunds:
                assert cash < args[0]
                assert _balances(wallet, account.id)[0] == cash
            else:
                assert cash >= args[0]
        elif kind == "give_card":
            allocate_prepaid_card(db, clock, account_id=account.id, amount_fen=args[0],
                                  expires_at=now + args[1] * HOUR, actor="seq")
        elif kind == "give_coupon":
            fen, starts_in, lasts = args
            allocate_coupon(db, clock, account_id=account.id, face_value_fen=fen,
                            valid_from=now + starts_in * HOUR,
                            expires_at=now + (max(starts_in, 0) + lasts) * HOUR, actor="seq")
        elif kind == "advance":
            clock.advance(hours=args[0])
        else:
            expire_credits(db, clock)
            _, units = _held(wallet, account.id)
            assert all(unit.expires_at > clock.now() for unit in units)

        cash, arrears, invoiceable = _balances(wallet, account.id)
        assert cash >= 0 and arrears >= 0
        assert cash == 0 or arrears == 0
        assert invoiceable == topped_up - cash
    assert_ledger_clean(wallet)
