"""The OpenAPI document: served, valid, and unable to drift from the routes and responses."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from app.adapters.statements import FORMATS
from app.domain.deduction import PRODUCTS
from app.services.accounts import SETTLEMENTS
from app.services.reconcile import STATUSES
from tests.conftest import bearer

DOCUMENT = Path(__file__).resolve().parents[2] / "app" / "web" / "openapi.json"
OPENAPI_ROUTE = "/api/v1/openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
NEXT_YEAR = "2027-11-26T00:00:00+08:00"
STATEMENT = (
    "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo\n"
    "T-1,2026-11-26,100.00,CNY,张三,6222021234567890,no code here\n"
    "T-2,2026-11-26T09:30:00+08:00,-5.00,CNY,Bank,000,fee\n"
).encode("utf-8")


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


def _is_documented_route(path: str) -> bool:
    return path.startswith(("/api/v1/", "/alipay/")) or path in ("/healthz", "/readyz")


def served_routes(app) -> dict[str, set[str]]:
    """The app's routes in OpenAPI form (``<int:x>`` -> ``{x}``) and their methods."""
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not _is_documented_route(rule.rule):
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    return routes


def documented_routes(spec: dict) -> dict[str, set[str]]:
    return {
        path: {method.upper() for method in item if method in HTTP_METHODS}
        for path, item in spec["paths"].items()
    }


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_schema(spec: dict, path: str, method: str, status: int, media: str = "application/json"):
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    return resolve(spec, responses[str(status)])["content"][media]["schema"]


def assert_keys_as_documented(spec: dict, schema: dict, value, where: str = "body") -> None:
    """Every object's keys equal its schema's required properties, all the way down."""
    schema = resolve(spec, schema)
    if value is None:
        return
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            branches = [resolve(spec, branch) for branch in schema[combinator]]
            fitting = [b for b in branches if b.get("type") != "null"
                       and (not isinstance(value, dict) or set(b.get("required", ())) == set(value))]
            assert fitting, f"{where}: {sorted(value) if isinstance(value, dict) else value!r} fits no branch"
            assert_keys_as_documented(spec, fitting[0], value, where)
            return
    if schema.get("type") == "object" and "properties" in schema:
        assert isinstance(value, dict), where
        assert set(value) == set(schema["required"]), (
            f"{where}: keys {sorted(value)} != documented {sorted(schema['required'])}"
        )
        for name, sub in schema["properties"].items():
            assert_keys_as_documented(spec, sub, value[name], f"{where}.{name}")
    elif schema.get("type") == "array":
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            assert_keys_as_documented(spec, schema["items"], item, f"{where}[{index}]")


def assert_documented(spec: dict, path: str, method: str, response) -> dict:
    """The response's status, media type, keys (and, with jsonschema, values) are as documented."""
    media = response.mimetype
    schema = response_schema(spec, path, method, response.status_code, media)
    body = response.get_json(force=True)
    if media == "application/problem+json":
        assert set(resolve(spec, schema)["required"]) <= set(body)
    else:
        assert_keys_as_documented(spec, schema, body, f"{method.upper()} {path} {response.status_code}")
    try:
        import jsonschema
    except ImportError:
        return body
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": spec["components"], **schema}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(root).iter_errors(body))
    assert error is None, f"{method.upper()} {path} {response.status_code}: {error.json_path}: {error.message}"
    return body


def test_the_document_is_served_without_a_token(client):
    response = client.get(OPENAPI_ROUTE)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    served = response.get_json()
    assert served == json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert re.fullmatch(r"3\.1\.\d+", served["openapi"])


def test_the_document_is_valid_openapi_3_1(spec):
    validator = pytest.importorskip(
        "openapi_spec_validator", reason="openapi-spec-validator is not installed"
    )
    validator.validate(spec)


def test_every_served_route_is_documented_with_its_methods(app, spec):
    served = served_routes(app)
    served.pop(OPENAPI_ROUTE, None)
    documented = documented_routes(spec)
    missing = {path: methods for path, methods in served.items() if path not in documented}
    assert not missing, f"served but not documented: {missing}"
    for path, methods in served.items():
        assert documented[path] == methods, f"{path}: served {methods}, documented {documented[path]}"


def test_every_documented_path_is_served(app, spec):
    served = served_routes(app)
    for path, methods in documented_routes(spec).items():
        assert path in served, f"documented but not served: {path}"
        assert methods == served[path], f"{path}: documented {methods}, served {served[path]}"


def test_path_parameters_are_declared(spec):
    for path, method, operation in operations(spec):
        declared = {resolve(spec, p)["name"] for p in operation.get("parameters", ())
                    if resolve(spec, p)["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), f"{method.upper()} {path}"


def test_api_posts_take_an_idempotency_key_and_api_calls_need_a_token(spec):
    for path, method, operation in operations(spec):
        if not path.startswith("/api/v1/") or path == OPENAPI_ROUTE:
            assert operation.get("security") == [], f"{method.upper()} {path} should be public"
            continue
        assert operation.get("security", spec["security"]) == [{"bearerAuth": []}]
        assert "401" in operation["responses"], f"{method.upper()} {path}"
        assert operation.get("x-roles"), f"{method.upper()} {path} names no roles"
        if method == "post":
            names = {resolve(spec, p)["name"] for p in operation.get("parameters", ())}
            assert "Idempotency-Key" in names, f"POST {path}"


def test_enumerations_follow_the_code(spec):
    schemas = spec["components"]["schemas"]
    assert set(schemas["StatementUpload"]["properties"]["format"]["enum"]) == set(FORMATS)
    assert set(schemas["AccountCreate"]["properties"]["settlement"]["enum"]) == set(SETTLEMENTS)
    assert set(schemas["BillRequest"]["properties"]["product"]["enum"]) == set(PRODUCTS)
    assert set(schemas["LineStatus"]["enum"]) == set(STATUSES)
    assert schemas["Amount"]["pattern"] == r"^(0|[1-9][0-9]{0,13})(\.[0-9]{1,2})?$"


def test_real_responses_carry_the_documented_fields(client, admin_token, spec):
    admin = bearer(admin_token)

    created = client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "guance"}, headers=admin)
    account = assert_documented(spec, "/api/v1/accounts", "post", created)
    account_id = account["id"]
    assert_documented(spec, "/api/v1/accounts/{account_id}", "get",
                      client.get(f"/api/v1/accounts/{account_id}", headers=admin))
    assert_documented(spec, "/api/v1/accounts/{account_id}/workspaces", "post",
                      client.post(f"/api/v1/accounts/{account_id}/workspaces",
                                  json={"workspace_id": "ws-1"}, headers=admin))

    coupon = client.post("/api/v1/coupons", headers=admin, json={
        "kind": "regular", "amount": "30.00", "expires_at": NEXT_YEAR, "account_id": account_id})
    assert_documented(spec, "/api/v1/coupons", "post", coupon)
    codes = client.post("/api/v1/coupons", headers=admin,
                        json={"amount": "5.00", "expires_at": NEXT_YEAR, "count": 2})
    assert_documented(spec, "/api/v1/coupons", "post", codes)
    card = client.post("/api/v1/prepaid-cards", headers=admin,
                       json={"account_id": account_id, "amount": "50.00", "expires_at": NEXT_YEAR})
    assert_documented(spec, "/api/v1/prepaid-cards", "post", card)

    bill = {"bill_id": "b-1", "workspace_id": "ws-1", "product": "general", "amount": "100.00"}
    first = client.post("/api/v1/bills", json=bill, headers=admin)
    assert first.status_code == 201
    assert_documented(spec, "/api/v1/bills", "post", first)
    again = client.post("/api/v1/bills", json=bill, headers=admin)
    assert again.status_code == 200
    assert_documented(spec, "/api/v1/bills", "post", again)
    assert_documented(spec, "/api/v1/bills", "post",
                      client.post("/api/v1/bills", json=dict(bill, amount=1), headers=admin))

    wallet = assert_documented(spec, "/api/v1/accounts/{account_id}/wallet", "get",
                               client.get(f"/api/v1/accounts/{account_id}/wallet", headers=admin))
    assert wallet["arrears"] == "20.00"
    ledger = assert_documented(spec, "/api/v1/accounts/{account_id}/ledger", "get",
                               client.get(f"/api/v1/accounts/{account_id}/ledger?limit=2", headers=admin))
    assert ledger["entries"] and ledger["next_cursor"]
    coupons = assert_documented(spec, "/api/v1/accounts/{account_id}/coupons", "get",
                                client.get(f"/api/v1/accounts/{account_id}/coupons", headers=admin))
    assert coupons["coupons"]
    cards = assert_documented(spec, "/api/v1/accounts/{account_id}/prepaid-cards", "get",
                              client.get(f"/api/v1/accounts/{account_id}/prepaid-cards", headers=admin))
    assert cards["cards"]
    assert_documented(spec, "/api/v1/accounts/{account_id}/bank-transfer", "get",
                      client.get(f"/api/v1/accounts/{account_id}/bank-transfer", headers=admin))

    upload = client.post("/api/v1/statements", headers=admin, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(STATEMENT), "statement.csv"), "format": "csv"})
    assert upload.status_code == 201
    assert_documented(spec, "/api/v1/statements", "post", upload)
    lines = assert_documented(spec, "/api/v1/statement-lines", "get",
                              client.get("/api/v1/statement-lines", headers=admin))
    assert len(lines["lines"]) == 2
    assert_documented(spec, "/api/v1/reconcile", "post", client.post("/api/v1/reconcile", headers=admin))


def test_errors_are_documented_problems(client, admin_token, new_account, spec):
    account_id = new_account()["id"]
    assert_documented(spec, "/api/v1/accounts/{account_id}/wallet", "get",
                      client.get(f"/api/v1/accounts/{account_id}/wallet"))
    assert_documented(spec, "/api/v1/accounts", "post",
                      client.post("/api/v1/accounts", data="{", headers=bearer(admin_token),
                                  content_type="application/json"))
    assert_documented(spec, "/api/v1/accounts", "post",
                      client.post("/api/v1/accounts", json={"name": "x", "settlement": "moon"},
                                  headers=bearer(admin_token)))
    assert_documented(spec, "/api/v1/accounts/{account_id}/wallet", "get",
                      client.get("/api/v1/accounts/acc_missing/wallet", headers=bearer(admin_token)))


def test_health_answers_are_documented(client, spec):
    assert_documented(spec, "/healthz", "get", client.get("/healthz"))
    assert_documented(spec, "/readyz", "get", client.get("/readyz"))


def test_topup_coupon_card_and_statement_line_answers_are_as_documented(
    client, admin_token, new_account, token_for, wallet, alipay_http, spec
):
    from tests.integration.wallet_helpers import top_up

    account_id = new_account()["id"]
    mine, finance = bearer(token_for("account", account_id)), bearer(token_for("finance"))

    order = assert_documented(spec, "/api/v1/accounts/{account_id}/topups", "post", client.post(
        f"/api/v1/accounts/{account_id}/topups", json={"amount": "10.00", "method": "alipay"}, headers=mine))
    assert order["status"] == "pending"
    for out_trade_no in (order["out_trade_no"], "T-none"):
        assert_documented(spec, "/api/v1/topups/{out_trade_no}", "get",
                          client.get(f"/api/v1/topups/{out_trade_no}", headers=mine))

    [code] = client.post("/api/v1/coupons", headers=bearer(admin_token),
                         json={"amount": "5.00", "expires_at": NEXT_YEAR, "count": 1}).get_json()["codes"]
    activate = f"/api/v1/accounts/{account_id}/coupons/activate"
    for _ in range(2):  # activated, then used
        assert_documented(spec, "/api/v1/accounts/{account_id}/coupons/activate", "post",
                          client.post(activate, json={"code": code}, headers=mine))

    top_up(wallet, account_id, 20_000_00, "seed")
    buy = f"/api/v1/accounts/{account_id}/prepaid-cards"
    for amount in ("100.00", "10000.00", "150.00", "100000.00"):  # no bonus, a bonus, refused, cash short
        assert_documented(spec, "/api/v1/accounts/{account_id}/prepaid-cards", "post",
                          client.post(buy, json={"amount": amount}, headers=mine))

    for _ in range(2):  # new, then already imported
        assert_documented(spec, "/api/v1/statements", "post", client.post(
            "/api/v1/statements", headers=finance, content_type="multipart/form-data",
            data={"file": (io.BytesIO(STATEMENT), "statement.csv")}))
    assert_documented(spec, "/api/v1/statements", "post", client.post(
        "/api/v1/statements", headers=finance, content_type="multipart/form-data",
        data={"file": (io.BytesIO(b"transaction_id,booked_at,amount\nT,2026-11-26,1.00x\n"), "bad.csv")}))
    [line] = client.get("/api/v1/statement-lines?status=unmatched", headers=finance).get_json()["lines"]
    match = f"/api/v1/statement-lines/{line['id']}/match"
    for _ in range(2):  # matched, then already matched
        assert_documented(spec, "/api/v1/statement-lines/{line_id}/match", "post",
                          client.post(match, json={"account_id": account_id, "reason": "phoned"}, headers=finance))
    undone = assert_documented(spec, "/api/v1/statement-lines/{line_id}/unmatch", "post", client.post(
        f"/api/v1/statement-lines/{line['id']}/unmatch", json={"reason": "wrong"}, headers=finance))
    assert undone["status"] == "unmatched"
    assert_documented(spec, "/api/v1/statement-lines", "get",
                      client.get("/api/v1/statement-lines?status=nope", headers=finance))

    for _ in range(11):  # ten wrong codes, then refused
        refused = client.post(activate, json={"code": "WRONG"}, headers=mine)
    assert refused.status_code == 429
    assert_documented(spec, "/api/v1/accounts/{account_id}/coupons/activate", "post", refused)
