"""Grants made with an Idempotency-Key whose stored answer was lost with the process.

The answer of a request is stored after its effect commits. A process that dies in between
leaves the key "in progress"; once that counts as abandoned, the retry runs the request again,
and the grant must find what the first run gave instead of giving it twice.
"""
import pytest
from sqlalchemy import func, select, update

from app.adapters.db.models import Coupon, CouponCode, IdempotentRequest, PrepaidCard
from tests.conftest import bearer
from tests.integration.wallet_helpers import NEXT_YEAR, assert_ledger_clean, wallet_of

# path, body, the unit's model, and the wallet figure the grant adds to
GRANTS = {
    "coupon": ("/api/v1/coupons", {"kind": "regular", "amount": "50.00", "expires_at": NEXT_YEAR}, Coupon,
               lambda figures: figures["coupons"]["regular"]),
    "card": ("/api/v1/prepaid-cards", {"amount": "80.00", "expires_at": NEXT_YEAR}, PrepaidCard,
             lambda figures: figures["prepaid_cards"]),
}


def lose_the_stored_answers(wallet):
    with wallet.db.transaction() as session:
        session.execute(update(IdempotentRequest).values(
            state="in_progress", response_status=None, response_body=None, response_content_type=None))
    wallet.clock.advance(minutes=6)


@pytest.mark.parametrize("grant", sorted(GRANTS))
def test_a_grant_whose_answer_was_lost_is_not_given_again(grant, client, admin_token, new_account, wallet):
    path, body, model, figure = GRANTS[grant]
    account = new_account()
    body = {**body, "account_id": account["id"]}
    headers = dict(bearer(admin_token), **{"Idempotency-Key": f"grant-{grant}"})
    first = client.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    lose_the_stored_answers(wallet)
    again = client.post(path, json=body, headers=headers)
    assert again.status_code == 201, again.get_data(as_text=True)
    assert again.get_json()["id"] == first.get_json()["id"]
    with wallet.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(model)) == 1
    assert figure(wallet_of(client, admin_token, account["id"])) == body["amount"]
    assert_ledger_clean(wallet)


@pytest.mark.parametrize("grant", sorted(GRANTS))
def test_a_lost_grant_key_retried_with_other_terms_is_refused(grant, client, admin_token, new_account, wallet):
    path, body, model, _ = GRANTS[grant]
    account = new_account()
    headers = dict(bearer(admin_token), **{"Idempotency-Key": f"grant-{grant}"})
    assert client.post(path, json={**body, "account_id": account["id"]}, headers=headers).status_code == 201
    # A server error after the grant committed releases the key: a retry is a new request.
    with wallet.db.transaction() as session:
        session.execute(IdempotentRequest.__table__.delete())
    retry = client.post(path, json={**body, "account_id": account["id"], "amount": "1.00"}, headers=headers)
    assert retry.status_code == 422 and retry.get_json()["code"] == "idempotency_key_reused"
    with wallet.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(model)) == 1


def test_activation_codes_whose_answer_was_lost_are_shown_again_not_refused(client, admin_token, wallet):
    body = {"kind": "regular", "amount": "5.00", "expires_at": NEXT_YEAR, "count": 3}
    headers = dict(bearer(admin_token), **{"Idempotency-Key": "codes-1"})
    first = client.post("/api/v1/coupons", json=body, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    lose_the_stored_answers(wallet)
    again = client.post("/api/v1/coupons", json=body, headers=headers)
    assert again.status_code == 201, again.get_data(as_text=True)
    assert again.get_json()["codes"] == first.get_json()["codes"]
    with wallet.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CouponCode)) == 3
    # Stored this time: replayed from now on.
    assert client.post("/api/v1/coupons", json=body, headers=headers).get_json() == first.get_json()
