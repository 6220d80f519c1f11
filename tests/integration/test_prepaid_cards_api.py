"""Prepaid cards over the API: purchase with cash, discount-coupon tiers, allocation, listing."""
from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from app.adapters.db.models import Account, IdempotentRequest, LedgerEntry, PrepaidCard
from tests.conftest import bearer
from tests.integration.wallet_helpers import assert_ledger_clean, give_card, top_up, wallet_of


def buy(client, token, account_id, amount, headers=None):
    return client.post(f"/api/v1/accounts/{account_id}/prepaid-cards", json={"amount": amount},
                       headers=dict(bearer(token), **(headers or {})))


def test_buying_a_card_turns_cash_into_card_balance_and_makes_the_price_invoiceable(
        client, new_account, token_for, wallet):
    account = new_account()
    top_up(wallet, account["id"], 500_00, "t1")
    response = buy(client, token_for("account", account["id"]), account["id"], "300.00")
    assert response.status_code == 201
    body = response.get_json()
    assert body["bonus_coupon"] is None
    card = body["card"]
    assert (card["face_value"], card["balance"], card["status"]) == ("300.00", "300.00", "active")
    assert card["expires_at"] == "2027-11-26T04:00:00+00:00"  # a year by default
    figures = wallet_of(client, token_for("finance"), account["id"])
    assert (figures["cash"], figures["prepaid_cards"], figures["invoiceable"]) == ("200.00", "300.00", "300.00")
    assert_ledger_clean(wallet)


@pytest.mark.parametrize("amount", ["99.00", "150.00", "100.50", "0.00", "-100.00", 100])
def test_card_amount_must_be_a_whole_multiple_of_100_from_100(client, admin_token, new_account, wallet, amount):
    account = new_account()
    top_up(wallet, account["id"], 1_000_00, "t1")
    response = buy(client, admin_token, account["id"], amount)
    assert response.status_code == 422


def test_purchase_with_too_little_cash_is_409_and_changes_nothing(client, admin_token, new_account, wallet):
    account = new_account()
    top_up(wallet, account["id"], 199_99, "t1")
    before = wallet_of(client, admin_token, account["id"])
    with wallet.db.sessions() as session:
        entries = session.scalar(select(func.count()).select_from(LedgerEntry))
    response = buy(client, admin_token, account["id"], "200.00")
    assert response.status_code == 409 and response.get_json()["code"] == "insufficient_funds"
    assert wallet_of(client, admin_token, account["id"]) == before
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == entries
        assert session.scalar(select(func.count()).select_from(PrepaidCard)) == 0


@pytest.mark.parametrize("amount, bonus", [
    ("9900.00", None), ("10000.00", "1000.00"), ("29900.00", "1000.00"), ("30000.00", "5000.00"),
    ("100000.00", "20000.00"), ("150000.00", "20000.00"),
])
def test_a_purchase_earns_the_highest_discount_tier_it_reaches_once(client, admin_token, new_account, wallet,
                                                                     amount, bonus):
    account = new_account()
    top_up(wallet, account["id"], 200_000_00, "t1")
    body = buy(client, admin_token, account["id"], amount).get_json()
    if bonus is None:
        assert body["bonus_coupon"] is None
    else:
        coupon = body["bonus_coupon"]
        assert (coupon["kind"], coupon["face_value"], coupon["balance"]) == ("discount", bonus, bonus)
        assert coupon["expires_at"] == body["card"]["expires_at"]
    listed = client.get(f"/api/v1/accounts/{account['id']}/coupons", headers=bearer(admin_token)).get_json()
    assert len(listed["coupons"]) == (0 if bonus is None else 1)
    assert wallet_of(client, admin_token, account["id"])["coupons"]["discount"] == (bonus or "0.00")
    assert_ledger_clean(wallet)


def test_tiers_and_validity_follow_the_configuration(make_app, db_url, clock):
    from app.services.prepaid_cards import buy_prepaid_card

    app = make_app(db_url, DISCOUNT_TIERS="100:10,500:80", PREPAID_CARD_VALIDITY_DAYS="30")
    wallet = app.extensions["wallet"]
    from app.services.accounts import create_account

    account = create_account(wallet.db, clock, name="Cfg", settlement="guance")
    top_up(wallet, account.id, 1_000_00, "t1")
    result = buy_prepaid_card(wallet.db, clock, wallet.settings, account_id=account.id, amount_fen=600_00,
                              actor="test")
    assert result["bonus_coupon"]["face_value"] == "80.00"
    assert result["card"]["expires_at"] == "2026-12-26T04:00:00+00:00"


def test_a_bought_card_is_valid_for_a_calendar_year_by_default(make_app, db_url):
    from app.services.accounts import create_account
    from app.services.clock import FrozenClock
    from app.services.prepaid_cards import buy_prepaid_card

    app = make_app(db_url)
    wallet = app.extensions["wallet"]
    # 1 March 2027, 04:00 in Beijing: a year of validity spans 29 February 2028.
    clock = FrozenClock(datetime.fromisoformat("2027-02-28T20:00:00+00:00"))
    account = create_account(wallet.db, clock, name="Leap", settlement="guance")
    top_up(wallet, account.id, 100_00, "t1")
    result = buy_prepaid_card(wallet.db, clock, wallet.settings, account_id=account.id, amount_fen=100_00,
                              actor="test")
    assert result["card"]["expires_at"] == "2028-02-29T20:00:00+00:00"


def test_a_purchase_replayed_with_its_idempotency_key_buys_once(client, admin_token, new_account, wallet):
    account = new_account()
    top_up(wallet, account["id"], 1_000_00, "t1")
    key = {"Idempotency-Key": "buy-1"}
    first, again = (buy(client, admin_token, account["id"], "100.00", key) for _ in range(2))
    assert first.status_code == again.status_code == 201 and first.get_json() == again.get_json()
    assert wallet_of(client, admin_token, account["id"])["cash"] == "900.00"


def test_a_purchase_whose_answer_was_lost_with_its_process_is_not_bought_again(
        client, admin_token, new_account, wallet):
    account = new_account()
    top_up(wallet, account["id"], 50_000_00, "t1")
    key = {"Idempotency-Key": "buy-lost"}
    first = buy(client, admin_token, account["id"], "10000.00", key).get_json()
    # The process died after the purchase committed, before its answer was stored: the key is
    # still "in progress", and a retry after ABANDONED_AFTER runs the request again.
    with wallet.db.transaction() as session:
        session.execute(update(IdempotentRequest).values(
            state="in_progress", response_status=None, response_body=None, response_content_type=None))
    wallet.clock.advance(minutes=6)
    again = buy(client, admin_token, account["id"], "10000.00", key)
    assert again.status_code == 201, again.get_data(as_text=True)
    body = again.get_json()
    assert body["card"]["id"] == first["card"]["id"]
    assert body["bonus_coupon"]["id"] == first["bonus_coupon"]["id"]
    assert wallet_of(client, admin_token, account["id"])["cash"] == "40000.00"
    with wallet.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PrepaidCard)) == 1
    assert_ledger_clean(wallet)


def test_a_purchase_key_reused_for_another_amount_is_refused(new_account, wallet):
    from app.domain.errors import InvalidInput
    from app.services.prepaid_cards import buy_prepaid_card

    account = new_account()
    top_up(wallet, account["id"], 1_000_00, "t1")
    buy_prepaid_card(wallet.db, wallet.clock, wallet.settings, account_id=account["id"], amount_fen=100_00,
                     actor="test", request_key="k")
    with pytest.raises(InvalidInput) as refused:
        buy_prepaid_card(wallet.db, wallet.clock, wallet.settings, account_id=account["id"], amount_fen=200_00,
                         actor="test", request_key="k")
    assert refused.value.code == "idempotency_key_reused"
    assert wallet_of_cash(wallet, account["id"]) == 900_00


def test_admin_allocated_card_adds_balance_but_nothing_invoiceable(client, admin_token, new_account, wallet):
    account = new_account()
    card = give_card(client, admin_token, account["id"], "123.45", expires_at="2027-03-01T00:00:00+08:00")
    assert (card["face_value"], card["balance"]) == ("123.45", "123.45")
    assert card["expires_at"] == "2027-02-28T16:00:00+00:00"
    figures = wallet_of(client, admin_token, account["id"])
    assert (figures["prepaid_cards"], figures["invoiceable"], figures["cash"]) == ("123.45", "0.00", "0.00")
    assert_ledger_clean(wallet)


@pytest.mark.parametrize("change, code", [
    ({"account_id": "acc_missing"}, "unknown_account"),
    ({"expires_at": "2026-11-01T00:00:00+00:00"}, "invalid_window"),
    ({"expires_at": "9999-12-31T23:59:59-01:00"}, "invalid_field"),
    ({"amount": "0.00"}, "invalid_amount"),
])
def test_bad_card_allocation_is_422(client, admin_token, new_account, change, code):
    account = new_account()
    body = {"account_id": account["id"], "amount": "10.00", "expires_at": "2027-01-01T00:00:00Z", **change}
    response = client.post("/api/v1/prepaid-cards", json=body, headers=bearer(admin_token))
    assert response.status_code == 422 and response.get_json()["code"] == code


def test_listing_shows_each_card(client, admin_token, new_account, token_for):
    account = new_account()
    card = give_card(client, admin_token, account["id"], "50.00")
    listed = client.get(f"/api/v1/accounts/{account['id']}/prepaid-cards",
                        headers=bearer(token_for("account", account["id"]))).get_json()
    assert [{k: c[k] for k in ("id", "face_value", "balance", "status", "expires_at")}
            for c in listed["cards"]] == [{k: card[k] for k in ("id", "face_value", "balance", "status",
                                                                 "expires_at")}]


def test_roles_for_cards(client, new_account, token_for, wallet):
    mine, other = new_account("Mine"), new_account("Other")
    top_up(wallet, other["id"], 1_000_00, "t1")
    mine_token, finance = token_for("account", mine["id"]), token_for("finance")
    assert buy(client, mine_token, other["id"], "100.00").status_code == 403
    assert buy(client, finance, other["id"], "100.00").status_code == 403
    assert client.get(f"/api/v1/accounts/{other['id']}/prepaid-cards", headers=bearer(finance)).status_code == 200
    allocation = {"account_id": mine["id"], "amount": "10.00", "expires_at": "2027-01-01T00:00:00Z"}
    assert client.post("/api/v1/prepaid-cards", json=allocation, headers=bearer(mine_token)).status_code == 403
    assert wallet_of(client, finance, other["id"])["cash"] == "1000.00"


def wallet_of_cash(wallet, account_id):
    with wallet.db.transaction() as session:
        return session.get(Account, account_id).cash_fen
