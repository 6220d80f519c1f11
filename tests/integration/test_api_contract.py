"""The contract's rules that hold on every endpoint: tokens and roles, JSON bodies, and the
``Idempotency-Key`` replay, checked endpoint by endpoint as the contract lists them."""
from __future__ import annotations

import pytest

from tests.conftest import bearer
from tests.integration.statement_helpers import csv_file, row, upload
from tests.integration.wallet_helpers import NEXT_YEAR, add_workspace, top_up

PROBLEM = "application/problem+json"
ACC = "{account}"

# (method, path) of every endpoint of the contract that takes a token.
ENDPOINTS = [
    ("post", "/api/v1/accounts"),
    ("post", f"/api/v1/accounts/{ACC}/workspaces"),
    ("get", f"/api/v1/accounts/{ACC}/wallet"),
    ("get", f"/api/v1/accounts/{ACC}/ledger"),
    ("post", f"/api/v1/accounts/{ACC}/topups"),
    ("get", "/api/v1/topups/T0000"),
    ("get", f"/api/v1/accounts/{ACC}/bank-transfer"),
    ("post", "/api/v1/statements"),
    ("get", "/api/v1/statement-lines"),
    ("post", "/api/v1/statement-lines/1/match"),
    ("post", "/api/v1/statement-lines/1/unmatch"),
    ("post", "/api/v1/reconcile"),
    ("post", "/api/v1/coupons"),
    ("post", f"/api/v1/accounts/{ACC}/coupons/activate"),
    ("get", f"/api/v1/accounts/{ACC}/coupons"),
    ("post", f"/api/v1/accounts/{ACC}/prepaid-cards"),
    ("post", "/api/v1/prepaid-cards"),
    ("get", f"/api/v1/accounts/{ACC}/prepaid-cards"),
    ("post", "/api/v1/bills"),
]

# What the contract keeps from each role ("Roles: ..."): admin may call everything.
FINANCE_REFUSED = [
    ("post", "/api/v1/accounts"),
    ("post", f"/api/v1/accounts/{ACC}/workspaces"),
    ("post", "/api/v1/coupons"),
    ("post", "/api/v1/prepaid-cards"),
    ("post", "/api/v1/bills"),
]
ACCOUNT_REFUSED = FINANCE_REFUSED + [
    ("post", "/api/v1/statements"),
    ("get", "/api/v1/statement-lines"),
    ("post", "/api/v1/statement-lines/1/match"),
    ("post", "/api/v1/statement-lines/1/unmatch"),
    ("post", "/api/v1/reconcile"),
]
# An account token's own account only: another account's data is refused.
ACCOUNT_SCOPED = [(method, path) for method, path in ENDPOINTS if ACC in path and (method, path) not in FINANCE_REFUSED]
FINANCE_READS = [
    ("get", f"/api/v1/accounts/{ACC}/wallet"),
    ("get", f"/api/v1/accounts/{ACC}/ledger"),
    ("get", f"/api/v1/accounts/{ACC}/bank-transfer"),
    ("get", "/api/v1/statement-lines"),
    ("post", "/api/v1/reconcile"),
]
# JSON-body POSTs: a body that is not JSON is a 400.
JSON_POSTS = [(m, p) for m, p in ENDPOINTS if m == "post" and p not in ("/api/v1/statements", "/api/v1/reconcile")]


def call(client, method, path, account_id, token=None, **kwargs):
    headers = dict(kwargs.pop("headers", {}), **(bearer(token) if token else {}))
    return getattr(client, method)(path.replace(ACC, account_id), headers=headers, **kwargs)


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert {"status", "title", "detail", "code"} <= response.get_json().keys()
    assert response.get_json()["status"] == status


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_every_endpoint_without_a_token_or_with_a_bad_one_is_401(client, new_account, method, path):
    account_id = new_account()["id"]
    assert_problem(call(client, method, path, account_id, json={}), 401)
    assert_problem(call(client, method, path, account_id, "wlt_not-a-token", json={}), 401)


@pytest.mark.parametrize("method, path", FINANCE_REFUSED)
def test_finance_may_not_manage_accounts_grants_or_bills(client, new_account, token_for, method, path):
    account_id = new_account()["id"]
    response = call(client, method, path, account_id, token_for("finance"), json={})
    assert_problem(response, 403)
    assert response.get_json()["code"] == "wrong_role"


@pytest.mark.parametrize("method, path", ACCOUNT_REFUSED)
def test_account_tokens_may_not_use_admin_or_finance_endpoints(client, new_account, token_for, method, path):
    account_id = new_account()["id"]
    response = call(client, method, path, account_id, token_for("account", account_id), json={})
    assert_problem(response, 403)
    assert response.get_json()["code"] == "wrong_role"


@pytest.mark.parametrize("method, path", ACCOUNT_SCOPED)
def test_an_account_token_on_another_accounts_data_is_403(client, new_account, token_for, method, path):
    mine, other = new_account("Mine")["id"], new_account("Other")["id"]
    response = call(client, method, path, other, token_for("account", mine), json={})
    assert_problem(response, 403)
    assert response.get_json()["code"] == "other_account"


@pytest.mark.parametrize("method, path", FINANCE_READS)
def test_finance_reads_any_wallet_and_works_the_statement_queue(client, new_account, token_for, method, path):
    account_id = new_account()["id"]
    response = call(client, method, path, account_id, token_for("finance"))
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("method, path", JSON_POSTS)
def test_every_json_post_with_a_body_that_is_not_json_is_400(client, new_account, admin_token, method, path):
    account_id = new_account()["id"]
    response = call(client, method, path, account_id, admin_token, data=b'{"amount": "1.00"',
                    content_type="application/json")
    assert_problem(response, 400)


@pytest.fixture
def funded(client, admin_token, new_account, token_for, wallet):
    """An account with cash, a workspace, an unmatched and a matched statement line, and codes."""
    account = new_account("Funded")
    add_workspace(client, admin_token, account["id"], "ws-1")
    top_up(wallet, account["id"], 1_000_00, "seed")
    finance = token_for("finance")
    assert upload(client, finance, csv_file(row("no code", tid="L1"), row("no code", tid="L2"))).status_code == 201
    matched = client.post("/api/v1/statement-lines/2/match", json={"account_id": account["id"], "reason": "phoned"},
                          headers=bearer(finance))
    assert matched.status_code == 200, matched.get_data(as_text=True)
    codes = client.post("/api/v1/coupons", json={"amount": "5.00", "expires_at": NEXT_YEAR, "count": 2},
                        headers=bearer(admin_token)).get_json()["codes"]
    return {"id": account["id"], "finance": finance, "account": token_for("account", account["id"]),
            "admin": admin_token, "codes": codes}


def _posts(funded):
    """(role, path, body, another body) for each JSON POST of the contract."""
    acc = funded["id"]
    return {
        "accounts": ("admin", "/api/v1/accounts", {"name": "Acme", "settlement": "guance"},
                     {"name": "Other", "settlement": "guance"}),
        "workspaces": ("admin", f"/api/v1/accounts/{acc}/workspaces", {"workspace_id": "ws-2"},
                       {"workspace_id": "ws-3"}),
        "topups": ("account", f"/api/v1/accounts/{acc}/topups", {"amount": "10.00", "method": "alipay"},
                   {"amount": "20.00", "method": "alipay"}),
        "match": ("finance", "/api/v1/statement-lines/1/match", {"account_id": acc, "reason": "phoned"},
                  {"account_id": acc, "reason": "emailed"}),
        "unmatch": ("finance", "/api/v1/statement-lines/2/unmatch", {"reason": "wrong account"},
                    {"reason": "another reason"}),
        "reconcile": ("finance", "/api/v1/reconcile", {}, {"again": True}),
        "coupon": ("admin", "/api/v1/coupons",
                   {"kind": "regular", "amount": "5.00", "expires_at": NEXT_YEAR, "account_id": acc},
                   {"kind": "regular", "amount": "6.00", "expires_at": NEXT_YEAR, "account_id": acc}),
        "activate": ("account", f"/api/v1/accounts/{acc}/coupons/activate", {"code": funded["codes"][0]},
                     {"code": funded["codes"][1]}),
        "card purchase": ("account", f"/api/v1/accounts/{acc}/prepaid-cards", {"amount": "100.00"},
                          {"amount": "200.00"}),
        "card allocation": ("admin", "/api/v1/prepaid-cards",
                            {"account_id": acc, "amount": "10.00", "expires_at": NEXT_YEAR},
                            {"account_id": acc, "amount": "20.00", "expires_at": NEXT_YEAR}),
        "bill": ("admin", "/api/v1/bills",
                 {"bill_id": "b-1", "workspace_id": "ws-1", "product": "general", "amount": "1.00"},
                 {"bill_id": "b-2", "workspace_id": "ws-1", "product": "general", "amount": "1.00"}),
    }


POST_NAMES = ["accounts", "workspaces", "topups", "match", "unmatch", "reconcile", "coupon", "activate",
              "card purchase", "card allocation", "bill"]


@pytest.mark.parametrize("name", POST_NAMES)
def test_every_post_replays_its_first_answer_for_the_same_key_and_refuses_another_body(
    client, funded, alipay_http, name
):
    role, path, body, other = _posts(funded)[name]
    headers = dict(bearer(funded[role]), **{"Idempotency-Key": f"key-{name}"})
    first = client.post(path, json=body, headers=headers)
    assert first.status_code in (200, 201), first.get_data(as_text=True)
    again = client.post(path, json=body, headers=headers)
    assert (again.status_code, again.get_data()) == (first.status_code, first.get_data())
    assert again.headers.get("Idempotent-Replayed") == "true"
    refused = client.post(path, json=other, headers=headers)
    assert_problem(refused, 422)
    assert refused.get_json()["code"] == "idempotency_key_reused"


AMOUNT_POSTS = {
    "topups": ("account", f"/api/v1/accounts/{ACC}/topups", {"method": "alipay"}),
    "coupon": ("admin", "/api/v1/coupons", {"kind": "regular", "expires_at": NEXT_YEAR, "account_id": ACC}),
    "card purchase": ("account", f"/api/v1/accounts/{ACC}/prepaid-cards", {}),
    "card allocation": ("admin", "/api/v1/prepaid-cards", {"account_id": ACC, "expires_at": NEXT_YEAR}),
    "bill": ("admin", "/api/v1/bills", {"bill_id": "b-1", "workspace_id": "ws-1", "product": "general"}),
}


@pytest.mark.parametrize("amount", [100, 100.0, "100.001", "1e2", "-1.00", " 100.00", ""])
@pytest.mark.parametrize("name", sorted(AMOUNT_POSTS))
def test_an_amount_that_is_a_number_or_malformed_is_422_naming_the_field(client, funded, name, amount):
    role, path, body = AMOUNT_POSTS[name]
    body = {key: value.replace(ACC, funded["id"]) if isinstance(value, str) else value for key, value in body.items()}
    response = client.post(path.replace(ACC, funded["id"]), json=dict(body, amount=amount),
                           headers=bearer(funded[role]))
    assert_problem(response, 422)
    assert (response.get_json()["code"], response.get_json()["field"]) == ("invalid_amount", "amount")
