"""Coupons over the API: allocation, activation codes, activation and its rate limit."""
import hashlib
import hmac

import pytest
from sqlalchemy import func, select

from app.adapters.db.models import ActivationFailure, Base, Coupon, CouponCode
from tests.conftest import bearer
from tests.integration.wallet_helpers import (
    NEXT_YEAR,
    add_workspace,
    assert_ledger_clean,
    drawn,
    give_coupon,
    post_bill,
    wallet_of,
)

SECRET = "test-secret-key-" + "x" * 32  # conftest's SECRET_KEY


def issue(client, admin_token, count=1, amount="20.00", expires_at=NEXT_YEAR, headers=None):
    response = client.post("/api/v1/coupons",
                           json={"kind": "regular", "amount": amount, "expires_at": expires_at, "count": count},
                           headers=dict(bearer(admin_token), **(headers or {})))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["codes"]


def activate(client, token, account_id, code):
    return client.post(f"/api/v1/accounts/{account_id}/coupons/activate", json={"code": code},
                       headers=bearer(token))


def test_admin_allocates_a_regular_coupon_to_an_account(client, admin_token, new_account):
    account = new_account()
    coupon = give_coupon(client, admin_token, account["id"], "50.00")
    assert set(coupon) == {"id", "kind", "face_value", "balance", "status", "valid_from", "expires_at",
                           "activated_at"}
    assert (coupon["kind"], coupon["face_value"], coupon["balance"], coupon["status"]) == (
        "regular", "50.00", "50.00", "active")
    assert isinstance(coupon["id"], str) and coupon["expires_at"] == NEXT_YEAR
    listed = client.get(f"/api/v1/accounts/{account['id']}/coupons", headers=bearer(admin_token)).get_json()
    assert listed == {"coupons": [coupon]}
    assert wallet_of(client, admin_token, account["id"])["coupons"] == {"regular": "50.00", "discount": "0.00"}


def test_only_admin_allocates_coupons(client, new_account, token_for):
    account = new_account()
    body = {"kind": "regular", "amount": "5.00", "expires_at": NEXT_YEAR, "account_id": account["id"]}
    for token in (token_for("finance"), token_for("account", account["id"])):
        assert client.post("/api/v1/coupons", json=body, headers=bearer(token)).status_code == 403


@pytest.mark.parametrize("change, code", [
    ({"kind": "discount"}, "invalid_field"),
    ({"amount": 5}, "invalid_amount"),
    ({"amount": "0.00"}, "invalid_amount"),
    ({"amount": "0.001"}, "invalid_amount"),
    ({"expires_at": "2026-11-25T00:00:00+00:00"}, "invalid_window"),
    ({"expires_at": "2026-11-26T12:00:00+08:00"}, "invalid_window"),  # exactly now: over already
    ({"valid_from": NEXT_YEAR}, "invalid_window"),  # an empty window
    ({"valid_from": "2027-12-01T00:00:00+00:00"}, "invalid_window"),
    ({"expires_at": "2027-01-01T00:00:00"}, "invalid_field"),
    ({"expires_at": "9999-12-31T23:59:59-01:00"}, "invalid_field"),
    ({"valid_from": "0001-01-01T00:00:00+01:00"}, "invalid_field"),
    ({"account_id": "acc_missing"}, "unknown_account"),
    ({"count": 2}, "invalid_field"),
])
def test_bad_coupon_allocation_is_422(client, admin_token, new_account, change, code):
    account = new_account()
    body = {"kind": "regular", "amount": "5.00", "expires_at": NEXT_YEAR, "account_id": account["id"], **change}
    response = client.post("/api/v1/coupons", json=body, headers=bearer(admin_token))
    assert response.status_code == 422 and response.get_json()["code"] == code


@pytest.mark.parametrize("count", [0, 1001, "3", True])
def test_code_count_out_of_range_is_422(client, admin_token, count):
    response = client.post("/api/v1/coupons", json={"amount": "1.00", "expires_at": NEXT_YEAR, "count": count},
                           headers=bearer(admin_token))
    assert response.status_code == 422


def test_codes_are_stored_only_as_keyed_hashes(client, admin_token, wallet):
    codes = issue(client, admin_token, count=3)
    assert len(set(codes)) == 3
    with wallet.db.sessions() as session:
        hashes = set(session.execute(select(CouponCode.code_hash)).scalars())
        everything = " ".join(str(tuple(row)) for table in Base.metadata.sorted_tables
                              for row in session.execute(select(table)))
    expected = {hmac.new(SECRET.encode(), c.replace("-", "").encode(), hashlib.sha256).hexdigest() for c in codes}
    assert hashes == expected
    for code in codes:
        assert code not in everything and code.replace("-", "") not in everything


def test_codes_issued_with_an_idempotency_key_replay_without_being_stored(client, admin_token, wallet):
    key = {"Idempotency-Key": "codes-batch-1"}
    first = issue(client, admin_token, count=2, headers=key)
    again = issue(client, admin_token, count=2, headers=key)
    assert first == again
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CouponCode)) == 2
        everything = " ".join(str(tuple(row)) for table in Base.metadata.sorted_tables
                              for row in session.execute(select(table)))
    assert all(code not in everything for code in first)
    other = client.post("/api/v1/coupons", json={"amount": "9.00", "expires_at": NEXT_YEAR, "count": 2},
                        headers=dict(bearer(admin_token), **key))
    assert other.status_code == 422 and other.get_json()["code"] == "idempotency_key_reused"


def test_codes_replayed_after_the_secret_key_changed_are_refused_not_made_up(client, admin_token, make_app,
                                                                           db_url, new_account, token_for):
    key = {"Idempotency-Key": "codes-batch-rotated"}
    first = issue(client, admin_token, count=2, headers=key)
    rotated = make_app(db_url, SECRET_KEY="another-secret-key-" + "y" * 32).test_client()
    again = rotated.post("/api/v1/coupons", json={"kind": "regular", "amount": "20.00", "expires_at": NEXT_YEAR,
                                                  "count": 2}, headers=dict(bearer(admin_token), **key))
    assert again.status_code == 409, again.get_data(as_text=True)
    assert again.get_json()["code"] == "activation_codes_not_shown" and "codes" not in again.get_json()
    assert issue(client, admin_token, count=2, headers=key) == first  # under the key they were issued with


def test_activation_binds_the_code_to_the_redeeming_account(client, admin_token, new_account, token_for, wallet):
    mine, other = new_account("Mine"), new_account("Other")
    [code] = issue(client, admin_token, amount="20.00")
    response = activate(client, token_for("account", mine["id"]), mine["id"], code)
    assert response.status_code == 201
    coupon = response.get_json()
    assert (coupon["kind"], coupon["balance"], coupon["activated_at"]) == ("regular", "20.00",
                                                                           "2026-11-26T04:00:00+00:00")
    assert wallet_of(client, admin_token, mine["id"])["coupons"]["regular"] == "20.00"
    again = activate(client, token_for("account", other["id"]), other["id"], code)
    assert again.status_code == 422 and again.get_json()["code"] == "activation_code_used"
    assert wallet_of(client, admin_token, other["id"])["coupons"]["regular"] == "0.00"
    assert_ledger_clean(wallet)


def test_a_code_this_account_already_redeemed_is_used_but_no_wrong_guess(client, admin_token, new_account, token_for):
    # A form or request sent twice: the second is refused as used, says the coupon is there, and
    # ten of them do not lock the account out of activating its next code.
    account = new_account()
    token = token_for("account", account["id"])
    [code, following] = issue(client, admin_token, count=2)
    assert activate(client, token, account["id"], code).status_code == 201
    for _ in range(10):
        again = activate(client, token, account["id"], code)
        assert again.status_code == 422 and again.get_json()["code"] == "activation_code_used"
        assert "already been activated for this account" in again.get_json()["detail"]
    assert activate(client, token, account["id"], following).status_code == 201
    assert wallet_of(client, admin_token, account["id"])["coupons"]["regular"] == "40.00"


def test_activation_ignores_case_spaces_and_hyphens(client, admin_token, new_account):
    account = new_account()
    [code] = issue(client, admin_token)
    typed = "  " + " ".join(code.lower().replace("-", "")) + " "
    assert activate(client, admin_token, account["id"], typed).status_code == 201


def test_unknown_used_and_expired_codes_get_distinct_errors_and_change_nothing(
        client, admin_token, new_account, clock):
    account = new_account()
    [used] = issue(client, admin_token)
    [expiring] = issue(client, admin_token, expires_at="2026-11-27T00:00:00+00:00")
    activate(client, admin_token, account["id"], used)
    before = wallet_of(client, admin_token, account["id"])
    clock.advance(days=2)
    answers = [activate(client, admin_token, account["id"], code).get_json()
               for code in ("AAAA-BBBB-CCCC-DDDD", used, expiring)]
    assert [a["code"] for a in answers] == ["activation_code_unknown", "activation_code_used",
                                            "activation_code_expired"]
    assert all(a["status"] == 422 for a in answers)
    assert wallet_of(client, admin_token, account["id"]) == before


def test_a_code_is_expired_at_the_instant_its_window_ends(client, admin_token, new_account, clock, wallet):
    account = new_account()
    [code] = issue(client, admin_token, expires_at="2026-11-26T05:00:00+00:00")
    clock.advance(hours=1)
    refused = activate(client, admin_token, account["id"], code)
    assert refused.status_code == 422 and refused.get_json()["code"] == "activation_code_expired"
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 0


def test_a_code_redeemed_before_its_window_gives_a_coupon_that_waits_for_it(client, admin_token, new_account,
                                                                          clock):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-1")
    response = client.post("/api/v1/coupons", json={"amount": "20.00", "count": 1, "expires_at": NEXT_YEAR,
                                                    "valid_from": "2026-12-01T00:00:00+08:00"},
                           headers=bearer(admin_token))
    [code] = response.get_json()["codes"]
    coupon = activate(client, admin_token, account["id"], code).get_json()
    assert (coupon["status"], coupon["balance"], coupon["valid_from"]) == ("active", "20.00",
                                                                         "2026-11-30T16:00:00+00:00")
    assert wallet_of(client, admin_token, account["id"])["coupons"]["regular"] == "0.00"
    assert drawn(post_bill(client, admin_token, "b-early", "ws-1", "5.00")) == [("arrears", "5.00")]
    clock.advance(days=4, hours=12)  # 1 December 00:00 in Beijing
    assert wallet_of(client, admin_token, account["id"])["coupons"]["regular"] == "20.00"
    assert drawn(post_bill(client, admin_token, "b-open", "ws-1", "5.00")) == [("regular_coupon", "5.00")]


def test_eleventh_attempt_after_ten_wrong_codes_for_one_account_is_429(client, admin_token, new_account,
                                                                         token_for):
    account = new_account()
    [good] = issue(client, admin_token)
    tokens = [token_for("account", account["id"]) for _ in range(2)]
    for attempt in range(10):  # two tokens, so only the per-account count can trip
        assert activate(client, tokens[attempt % 2], account["id"], f"WRONG-{attempt}").status_code == 422
    blocked = activate(client, token_for("account", account["id"]), account["id"], good)
    assert blocked.status_code == 429 and blocked.get_json()["code"] == "too_many_activation_attempts"
    assert wallet_of(client, admin_token, account["id"])["coupons"]["regular"] == "0.00"


def test_ten_wrong_codes_from_one_token_block_that_token_for_every_account(client, admin_token, new_account):
    [good] = issue(client, admin_token)
    for attempt in range(10):  # ten accounts, so only the per-token count can trip
        assert activate(client, admin_token, new_account(f"A{attempt}")["id"], "WRONG").status_code == 422
    fresh = new_account("Fresh")
    assert activate(client, admin_token, fresh["id"], good).status_code == 429


def test_wrong_codes_older_than_an_hour_no_longer_count(client, admin_token, new_account, clock):
    account = new_account()
    [good] = issue(client, admin_token)
    for _ in range(10):
        activate(client, admin_token, account["id"], "WRONG")
    clock.advance(minutes=59)
    assert activate(client, admin_token, account["id"], good).status_code == 429
    clock.advance(minutes=2)
    assert activate(client, admin_token, account["id"], good).status_code == 201


def test_failed_attempts_are_recorded_in_the_database(client, admin_token, new_account, wallet):
    account = new_account()
    for _ in range(3):
        activate(client, admin_token, account["id"], "WRONG")
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ActivationFailure)
                              .where(ActivationFailure.account_id == account["id"])) == 3


def test_account_may_not_activate_or_list_for_another_account(client, new_account, token_for):
    mine, other = new_account("Mine"), new_account("Other")
    token = token_for("account", mine["id"])
    assert activate(client, token, other["id"], "X").status_code == 403
    assert client.get(f"/api/v1/accounts/{other['id']}/coupons", headers=bearer(token)).status_code == 403


def test_finance_reads_coupons_but_cannot_activate(client, new_account, token_for):
    account = new_account()
    finance = token_for("finance")
    assert client.get(f"/api/v1/accounts/{account['id']}/coupons", headers=bearer(finance)).status_code == 200
    assert activate(client, finance, account["id"], "X").status_code == 403


def test_listing_an_unknown_account_is_404(client, admin_token):
    response = client.get("/api/v1/accounts/acc_missing/coupons", headers=bearer(admin_token))
    assert response.status_code == 404


def test_activation_with_an_empty_or_non_string_code_is_422(client, admin_token, new_account):
    account = new_account()
    for body in ({}, {"code": ""}, {"code": 12345}):
        response = client.post(f"/api/v1/accounts/{account['id']}/coupons/activate", json=body,
                               headers=bearer(admin_token))
        assert response.status_code == 422


def test_a_coupon_expired_but_not_yet_forfeited_is_listed_as_expired(client, admin_token, new_account, clock,
                                                                      wallet):
    account = new_account()
    give_coupon(client, admin_token, account["id"], "5.00", expires_at="2026-11-27T00:00:00+00:00")
    clock.advance(days=2)
    [listed] = client.get(f"/api/v1/accounts/{account['id']}/coupons",
                          headers=bearer(admin_token)).get_json()["coupons"]
    assert listed["status"] == "expired"
    assert wallet_of(client, admin_token, account["id"])["coupons"]["regular"] == "0.00"
    with wallet.db.sessions() as session:
        assert session.execute(select(Coupon.status)).scalar_one() == "active"
