"""Settling pay-as-you-go bills over the API, on SQLite and PostgreSQL."""
import pytest
from sqlalchemy import func, select

from app.adapters.db.models import BillAllocation, CloudCharge, LedgerEntry, LedgerTransaction
from tests.conftest import bearer
from tests.integration.wallet_helpers import (
    add_workspace,
    assert_ledger_clean,
    drawn,
    give_card,
    give_coupon,
    post_bill,
    top_up,
    wallet_of,
)


@pytest.fixture
def funded(client, admin_token, new_account, wallet):
    """A guance account with workspace ws-1, a 30.00 coupon, a 50.00 card and 100.00 cash."""
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-1")
    coupon = give_coupon(client, admin_token, account["id"], "30.00")
    card = give_card(client, admin_token, account["id"], "50.00")
    top_up(wallet, account["id"], 100_00, "topup-1")
    return {"account": account, "coupon": coupon, "card": card}


def test_guance_general_bill_draws_coupon_card_cash_then_arrears(client, admin_token, funded, wallet):
    response = post_bill(client, admin_token, "b-1", "ws-1", "200.00")
    assert response.status_code == 201
    body = response.get_json()
    assert body["bill_id"] == "b-1" and body["amount"] == "200.00"
    assert body["allocations"] == [
        {"source": "regular_coupon", "id": funded["coupon"]["id"], "amount": "30.00"},
        {"source": "prepaid_card", "id": funded["card"]["id"], "amount": "50.00"},
        {"source": "cash", "id": None, "amount": "100.00"},
        {"source": "arrears", "id": None, "amount": "20.00"},
    ]
    figures = wallet_of(client, admin_token, funded["account"]["id"])
    assert figures == {"cash": "0.00", "arrears": "20.00", "coupons": {"regular": "0.00", "discount": "0.00"},
                       "prepaid_cards": "0.00", "invoiceable": "100.00"}
    assert_ledger_clean(wallet)


def test_settling_the_same_bill_again_is_200_with_the_first_body_and_moves_nothing(
        client, admin_token, funded, wallet):
    first = post_bill(client, admin_token, "b-1", "ws-1", "40.00")
    before = wallet_of(client, admin_token, funded["account"]["id"])
    again = post_bill(client, admin_token, "b-1", "ws-1", "40")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert wallet_of(client, admin_token, funded["account"]["id"]) == before
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerTransaction)
                              .where(LedgerTransaction.kind == "bill")) == 1


@pytest.mark.parametrize("change", [{"amount": "41.00"}, {"product": "sms"}, {"workspace_id": "ws-2"}])
def test_same_bill_id_with_another_body_is_409_and_moves_nothing(client, admin_token, funded, change):
    add_workspace(client, admin_token, funded["account"]["id"], "ws-2")
    post_bill(client, admin_token, "b-1", "ws-1", "40.00")
    before = wallet_of(client, admin_token, funded["account"]["id"])
    body = {"bill_id": "b-1", "workspace_id": "ws-1", "product": "general", "amount": "40.00", **change}
    response = client.post("/api/v1/bills", json=body, headers=bearer(admin_token))
    assert response.status_code == 409 and response.get_json()["code"] == "bill_conflict"
    assert response.mimetype == "application/problem+json"
    assert wallet_of(client, admin_token, funded["account"]["id"]) == before


def test_sms_bill_skips_coupons(client, admin_token, funded):
    response = post_bill(client, admin_token, "b-sms", "ws-1", "60.00", product="sms")
    assert drawn(response) == [("prepaid_card", "50.00"), ("cash", "10.00")]


def test_dial_testing_bill_skips_coupons(client, admin_token, funded):
    response = post_bill(client, admin_token, "b-dial", "ws-1", "10.00", product="dial_testing")
    assert drawn(response) == [("prepaid_card", "10.00")]


def test_cash_spent_on_a_bill_becomes_invoiceable_but_cards_coupons_and_arrears_do_not(
        client, admin_token, funded):
    post_bill(client, admin_token, "b-units", "ws-1", "80.00")  # coupon and card only
    assert wallet_of(client, admin_token, funded["account"]["id"])["invoiceable"] == "0.00"
    post_bill(client, admin_token, "b-cash", "ws-1", "150.00")  # 100.00 cash, 50.00 arrears
    figures = wallet_of(client, admin_token, funded["account"]["id"])
    assert (figures["invoiceable"], figures["arrears"]) == ("100.00", "50.00")


def test_topup_after_an_arrears_bill_clears_arrears_and_makes_that_amount_invoiceable(
        client, admin_token, new_account, wallet):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-a")
    post_bill(client, admin_token, "b-owe", "ws-a", "70.00")
    assert wallet_of(client, admin_token, account["id"])["arrears"] == "70.00"
    top_up(wallet, account["id"], 100_00, "topup-after-arrears")
    figures = wallet_of(client, admin_token, account["id"])
    assert (figures["arrears"], figures["cash"], figures["invoiceable"]) == ("0.00", "30.00", "70.00")
    assert_ledger_clean(wallet)


def test_topup_smaller_than_arrears_pays_part_of_them(client, admin_token, new_account, wallet):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-a")
    post_bill(client, admin_token, "b-owe", "ws-a", "70.00")
    top_up(wallet, account["id"], 20_00, "topup-small")
    figures = wallet_of(client, admin_token, account["id"])
    assert (figures["arrears"], figures["cash"], figures["invoiceable"]) == ("50.00", "0.00", "20.00")


def test_cloud_bill_charges_the_rest_to_the_cloud_account_and_never_runs_into_arrears(
        client, admin_token, new_account, wallet):
    account = new_account(settlement="cloud")
    add_workspace(client, admin_token, account["id"], "ws-c")
    give_card(client, admin_token, account["id"], "25.00")
    top_up(wallet, account["id"], 500_00, "topup-cloud")
    response = post_bill(client, admin_token, "b-cloud", "ws-c", "100.00")
    assert drawn(response) == [("prepaid_card", "25.00"), ("cloud_account", "75.00")]
    figures = wallet_of(client, admin_token, account["id"])
    assert (figures["cash"], figures["arrears"], figures["invoiceable"]) == ("500.00", "0.00", "0.00")
    with wallet.db.sessions() as session:
        charge = session.execute(select(CloudCharge)).scalar_one()
    assert (charge.bill_id, charge.account_id, charge.amount_fen) == ("b-cloud", account["id"], 75_00)
    assert_ledger_clean(wallet)


def test_a_coupon_outside_its_window_pays_nothing(client, admin_token, new_account, clock):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-w")
    give_coupon(client, admin_token, account["id"], "10.00", valid_from="2026-12-01T00:00:00+00:00")
    give_coupon(client, admin_token, account["id"], "10.00", expires_at="2026-11-27T00:00:00+00:00")
    clock.advance(days=2)  # the second has expired, the first has not started
    assert drawn(post_bill(client, admin_token, "b-w", "ws-w", "5.00")) == [("arrears", "5.00")]


def test_a_unit_pays_from_the_instant_its_window_opens_and_not_at_the_instant_it_ends(
        client, admin_token, new_account, clock):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-i")
    opens = give_coupon(client, admin_token, account["id"], "10.00", valid_from="2026-11-26T05:00:00+00:00",
                        expires_at="2026-11-26T06:00:00+00:00")
    clock.advance(hours=1)  # exactly valid_from
    assert wallet_of(client, admin_token, account["id"])["coupons"]["regular"] == "10.00"
    assert drawn(post_bill(client, admin_token, "b-open", "ws-i", "4.00")) == [("regular_coupon", "4.00")]
    clock.advance(hours=1)  # exactly expires_at
    assert wallet_of(client, admin_token, account["id"])["coupons"]["regular"] == "0.00"
    listed = client.get(f"/api/v1/accounts/{account['id']}/coupons", headers=bearer(admin_token)).get_json()
    assert [(c["id"], c["status"]) for c in listed["coupons"]] == [(opens["id"], "expired")]
    assert drawn(post_bill(client, admin_token, "b-end", "ws-i", "4.00")) == [("arrears", "4.00")]


def test_units_pay_only_the_bills_of_their_own_account(client, admin_token, new_account, wallet):
    other, mine = new_account("Other"), new_account("Mine")
    add_workspace(client, admin_token, other["id"], "ws-other")
    add_workspace(client, admin_token, mine["id"], "ws-mine")
    give_coupon(client, admin_token, other["id"], "10.00")
    give_card(client, admin_token, other["id"], "10.00")
    top_up(wallet, other["id"], 10_00, "topup-other")
    card = give_card(client, admin_token, mine["id"], "5.00")
    response = post_bill(client, admin_token, "b-mine", "ws-mine", "30.00")
    assert [(a["source"], a["id"], a["amount"]) for a in response.get_json()["allocations"]] == [
        ("prepaid_card", card["id"], "5.00"), ("arrears", None, "25.00")]
    assert wallet_of(client, admin_token, other["id"]) == {
        "cash": "10.00", "arrears": "0.00", "coupons": {"regular": "10.00", "discount": "0.00"},
        "prepaid_cards": "10.00", "invoiceable": "0.00"}
    assert_ledger_clean(wallet)


def test_every_workspace_of_an_account_bills_the_same_wallet(client, admin_token, funded):
    add_workspace(client, admin_token, funded["account"]["id"], "ws-2")
    assert drawn(post_bill(client, admin_token, "b-ws1", "ws-1", "20.00")) == [("regular_coupon", "20.00")]
    assert drawn(post_bill(client, admin_token, "b-ws2", "ws-2", "20.00")) == [
        ("regular_coupon", "10.00"), ("prepaid_card", "10.00")]
    figures = wallet_of(client, admin_token, funded["account"]["id"])
    assert (figures["coupons"]["regular"], figures["prepaid_cards"], figures["cash"]) == ("0.00", "40.00", "100.00")


def test_a_topup_equal_to_the_arrears_clears_them_and_leaves_no_cash(client, admin_token, new_account, wallet):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-a")
    post_bill(client, admin_token, "b-owe", "ws-a", "70.00")
    top_up(wallet, account["id"], 70_00, "topup-exact")
    figures = wallet_of(client, admin_token, account["id"])
    assert (figures["arrears"], figures["cash"], figures["invoiceable"]) == ("0.00", "0.00", "70.00")
    assert drawn(post_bill(client, admin_token, "b-next", "ws-a", "1.00")) == [("arrears", "1.00")]


def test_the_coupon_that_expires_first_pays_first(client, admin_token, new_account):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-e")
    late = give_coupon(client, admin_token, account["id"], "10.00", expires_at="2027-06-01T00:00:00Z")
    soon = give_coupon(client, admin_token, account["id"], "10.00", expires_at="2027-01-01T00:00:00Z")
    response = post_bill(client, admin_token, "b-e", "ws-e", "15.00")
    assert [(a["id"], a["amount"]) for a in response.get_json()["allocations"]] == [
        (soon["id"], "10.00"), (late["id"], "5.00")]


def test_a_used_up_unit_shows_as_used_up(client, admin_token, funded):
    post_bill(client, admin_token, "b-1", "ws-1", "30.00")
    listed = client.get(f"/api/v1/accounts/{funded['account']['id']}/coupons",
                        headers=bearer(admin_token)).get_json()["coupons"]
    assert [(c["balance"], c["status"]) for c in listed] == [("0.00", "used_up")]


def test_a_bill_is_one_ledger_transaction_with_its_allocations_kept(client, admin_token, funded, wallet):
    post_bill(client, admin_token, "b-1", "ws-1", "200.00")
    with wallet.db.sessions() as session:
        txn = session.execute(select(LedgerTransaction).where(
            LedgerTransaction.idempotency_key == "bill:b-1")).scalar_one()
        buckets = sorted(session.execute(select(LedgerEntry.bucket, LedgerEntry.amount_fen)
                                         .where(LedgerEntry.transaction_id == txn.id)).all())
        stored = session.execute(select(BillAllocation.position, BillAllocation.source, BillAllocation.amount_fen)
                                 .where(BillAllocation.bill_id == "b-1")
                                 .order_by(BillAllocation.position)).all()
    assert buckets == [("arrears", 20_00), ("cash", -100_00), ("coupon", -30_00),
                       ("invoiceable", 100_00), ("prepaid_card", -50_00)]
    assert [tuple(row) for row in stored] == [(0, "regular_coupon", 30_00), (1, "prepaid_card", 50_00),
                                              (2, "cash", 100_00), (3, "arrears", 20_00)]


@pytest.mark.parametrize("body, code", [
    ({"workspace_id": "ws-1", "product": "general", "amount": "1.00"}, "missing_field"),
    ({"bill_id": "b", "workspace_id": "ws-1", "product": "voice", "amount": "1.00"}, "invalid_field"),
    ({"bill_id": "b", "workspace_id": "ws-1", "product": "general", "amount": 1.0}, "invalid_amount"),
    ({"bill_id": "b", "workspace_id": "ws-1", "product": "general", "amount": "0.00"}, "invalid_amount"),
    ({"bill_id": "b", "workspace_id": "ws-1", "product": "general", "amount": "1.001"}, "invalid_amount"),
    ({"bill_id": "b", "workspace_id": "ws-nope", "product": "general", "amount": "1.00"}, "unknown_workspace"),
])
def test_malformed_or_unknown_bill_fields_are_422(client, admin_token, funded, body, code):
    response = client.post("/api/v1/bills", json=body, headers=bearer(admin_token))
    assert response.status_code == 422 and response.get_json()["code"] == code


def test_bills_are_admin_only(client, funded, token_for):
    for token in (token_for("finance"), token_for("account", funded["account"]["id"])):
        assert post_bill(client, token, "b-x", "ws-1", "1.00").status_code == 403


def test_bill_with_idempotency_key_replays_the_first_response(client, admin_token, funded):
    headers = dict(bearer(admin_token), **{"Idempotency-Key": "bill-key"})
    body = {"bill_id": "b-k", "workspace_id": "ws-1", "product": "general", "amount": "5.00"}
    first = client.post("/api/v1/bills", json=body, headers=headers)
    again = client.post("/api/v1/bills", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
