import pytest

from tests.conftest import bearer


def test_admin_creates_an_account_with_a_valid_remittance_code(client, admin_token):
    from app.domain.remittance import is_valid

    response = client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "cloud"},
                           headers=bearer(admin_token))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "name", "settlement", "remittance_code"}
    assert body["settlement"] == "cloud" and is_valid(body["remittance_code"])


def test_missing_or_bad_token_is_401_with_problem_json(client):
    response = client.post("/api/v1/accounts", json={"name": "A", "settlement": "guance"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert {"status", "title", "detail", "code"} <= problem.keys()
    bad = client.post("/api/v1/accounts", json={}, headers=bearer("wlt_nope"))
    assert bad.status_code == 401 and bad.get_json()["code"] == "invalid_token"


def test_finance_may_not_create_accounts(client, token_for):
    response = client.post("/api/v1/accounts", json={"name": "A", "settlement": "guance"},
                           headers=bearer(token_for("finance")))
    assert response.status_code == 403


def test_account_token_reads_only_its_own_wallet(client, new_account, token_for):
    mine, other = new_account("Mine"), new_account("Other")
    token = token_for("account", mine["id"])
    assert client.get(f"/api/v1/accounts/{mine['id']}/wallet", headers=bearer(token)).status_code == 200
    assert client.get(f"/api/v1/accounts/{other['id']}/wallet", headers=bearer(token)).status_code == 403


def test_wallet_figures_are_two_decimal_strings(client, new_account, admin_token):
    account = new_account()
    body = client.get(f"/api/v1/accounts/{account['id']}/wallet", headers=bearer(admin_token)).get_json()
    assert body == {"cash": "0.00", "arrears": "0.00", "coupons": {"regular": "0.00", "discount": "0.00"},
                    "prepaid_cards": "0.00", "invoiceable": "0.00"}


def test_unknown_account_is_404(client, admin_token):
    response = client.get("/api/v1/accounts/acc_missing/wallet", headers=bearer(admin_token))
    assert response.status_code == 404 and response.get_json()["code"] == "account_not_found"


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b"NaN", b'{"a": NaN}'])
def test_body_that_is_not_json_is_400(client, admin_token, raw):
    response = client.post("/api/v1/accounts", data=raw, content_type="application/json",
                           headers=bearer(admin_token))
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("body", [[], {"name": "A"}, {"name": "A", "settlement": "moon"},
                                  {"name": 5, "settlement": "guance"}, {"name": "", "settlement": "cloud"}])
def test_missing_or_malformed_fields_are_422(client, admin_token, body):
    response = client.post("/api/v1/accounts", json=body, headers=bearer(admin_token))
    assert response.status_code == 422


@pytest.mark.parametrize("raw", ["[" * 60000, '{"a": ' * 5000 + "1" + "}" * 5000])
def test_json_nested_deeper_than_the_parser_reads_is_422(client, admin_token, raw):
    response = client.post("/api/v1/accounts", data=raw, content_type="application/json",
                           headers=bearer(admin_token))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "invalid_body"


def test_same_idempotency_key_and_body_returns_the_first_response(client, admin_token):
    headers = dict(bearer(admin_token), **{"Idempotency-Key": "create-acme"})
    first = client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "guance"}, headers=headers)
    again = client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "guance"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()


def test_same_idempotency_key_with_another_body_is_422(client, admin_token):
    headers = dict(bearer(admin_token), **{"Idempotency-Key": "k1"})
    client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "guance"}, headers=headers)
    other = client.post("/api/v1/accounts", json={"name": "Other", "settlement": "guance"}, headers=headers)
    assert other.status_code == 422 and other.get_json()["code"] == "idempotency_key_reused"


def test_idempotency_key_in_progress_is_409(client, admin_token, wallet):
    from app.services import idempotency
    from app.services.tokens import authenticate

    scope = authenticate(wallet.db, admin_token).actor
    body = b'{"name": "Acme", "settlement": "guance"}'
    import hashlib

    idempotency.begin(wallet.db, wallet.clock, scope=scope, key="busy", method="POST",
                      path="/api/v1/accounts", request_hash=hashlib.sha256(body).hexdigest())
    response = client.post("/api/v1/accounts", data=body, content_type="application/json",
                           headers=dict(bearer(admin_token), **{"Idempotency-Key": "busy"}))
    assert response.status_code == 409 and response.get_json()["code"] == "idempotency_in_progress"


def test_workspace_belongs_to_one_account(client, admin_token, new_account):
    a, b = new_account("A"), new_account("B")
    ok = client.post(f"/api/v1/accounts/{a['id']}/workspaces", json={"workspace_id": "ws-1"},
                     headers=bearer(admin_token))
    assert ok.status_code == 201
    taken = client.post(f"/api/v1/accounts/{b['id']}/workspaces", json={"workspace_id": "ws-1"},
                        headers=bearer(admin_token))
    assert taken.status_code == 409


def test_bank_transfer_details_show_the_remittance_code(client, new_account, token_for):
    account = new_account()
    body = client.get(f"/api/v1/accounts/{account['id']}/bank-transfer",
                      headers=bearer(token_for("account", account["id"]))).get_json()
    assert body["remittance_code"] == account["remittance_code"]
    assert {"bank_name", "account_name", "account_number"} <= body.keys()


def test_ledger_pages_newest_first_with_a_cursor(client, new_account, admin_token, wallet):
    from app.services import ledger

    account = new_account()
    for i in range(5):
        with wallet.db.transaction() as session:
            acc = ledger.lock_account(session, account["id"])
            ledger.credit_topup(session, acc, amount_fen=100 * (i + 1), key=f"k{i}", kind="topup",
                                now=wallet.clock.now())
    url = f"/api/v1/accounts/{account['id']}/ledger?limit=2"
    first = client.get(url, headers=bearer(admin_token)).get_json()
    assert [e["amount"] for e in first["entries"]] == ["5.00", "4.00"]
    second = client.get(url + "&cursor=" + first["next_cursor"], headers=bearer(admin_token)).get_json()
    assert [e["amount"] for e in second["entries"]] == ["3.00", "2.00"]
    assert client.get(url + "&cursor=%%%", headers=bearer(admin_token)).status_code == 422


@pytest.mark.parametrize("number", [10**30, 2**63, 0, -1])
def test_a_cursor_that_names_no_possible_entry_is_422(client, new_account, admin_token, number):
    import base64

    account = new_account()
    cursor = base64.urlsafe_b64encode(str(number).encode()).decode().rstrip("=")
    for url in (f"/api/v1/accounts/{account['id']}/ledger", "/api/v1/statement-lines"):
        response = client.get(f"{url}?cursor={cursor}", headers=bearer(admin_token))
        assert response.status_code == 422, response.get_data(as_text=True)
        assert response.get_json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("raw", [
    b'{"name": "Acme\\u0000Ltd", "settlement": "guance"}',
    b'{"name": "Acme\\ud800", "settlement": "guance"}',
])
def test_a_string_no_database_can_store_is_422_and_creates_nothing(client, admin_token, wallet, raw):
    from sqlalchemy import func, select

    from app.adapters.db.models import Account

    response = client.post("/api/v1/accounts", data=raw, content_type="application/json",
                           headers=bearer(admin_token))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert (response.get_json()["code"], response.get_json()["field"]) == ("invalid_field", "name")
    with wallet.db.sessions() as session:
        assert session.execute(select(func.count()).select_from(Account)).scalar_one() == 0


def test_a_nul_in_a_body_field_naming_a_row_is_422(client, admin_token, new_account):
    account = new_account()
    response = client.post(f"/api/v1/accounts/{account['id']}/workspaces", json={"workspace_id": "ws\u0000"},
                           headers=bearer(admin_token))
    assert response.status_code == 422 and response.get_json()["field"] == "workspace_id"
    bill = client.post("/api/v1/bills", json={"bill_id": "b\u0000", "workspace_id": "ws", "product": "general",
                                              "amount": "1.00"}, headers=bearer(admin_token))
    assert bill.status_code == 422 and bill.get_json()["field"] == "bill_id"


@pytest.mark.parametrize("path", ["/api/v1/accounts/acc%00x/wallet", "/api/v1/topups/T%00x", "/checkout/T%00x"])
def test_a_path_with_a_nul_names_nothing(client, admin_token, path):
    response = client.get(path, headers=bearer(admin_token))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_an_idempotency_key_with_a_nul_is_422(client, admin_token):
    response = client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "guance"},
                           headers=dict(bearer(admin_token), **{"Idempotency-Key": "k\x00"}))
    assert response.status_code == 422 and response.get_json()["code"] == "invalid_idempotency_key"


@pytest.mark.parametrize(
    "limit",
    # More digits than int() reads (4300) must be refused like any other bad limit, not a 500.
    [
        "0",
        "201",
        "x",
        "%C2%B2",
        pytest.param("0" * 4400 + "1", id="4401-digits"),
        pytest.param("9" * 5000, id="5000-digits"),
    ],
)
def test_a_limit_that_is_not_1_to_200_is_422(client, new_account, admin_token, limit):
    account = new_account()
    for url in (f"/api/v1/accounts/{account['id']}/ledger", "/api/v1/statement-lines"):
        response = client.get(f"{url}?limit={limit}", headers=bearer(admin_token))
        assert response.status_code == 422, response.get_data(as_text=True)
        assert response.get_json()["code"] == "invalid_limit"


def test_health_and_readiness(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_unknown_route_and_method_are_problem_json(client):
    assert client.get("/nope").mimetype == "application/problem+json"
    response = client.delete("/api/v1/accounts")
    assert response.status_code == 405
