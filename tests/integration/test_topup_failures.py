"""Alipay failing us: precreate refused, slow or forged; hostile return redirects; junk bodies."""
import json

import pytest
import requests
import responses
from sqlalchemy import select

from app.adapters.alipay.signing import sign
from app.adapters.db.models import TopupOrder
from tests.conftest import bearer

GATEWAY = "http://wallet.test/_sandbox/alipay/gateway.do"


@pytest.fixture
def account(new_account):
    return new_account("Payer")


@pytest.fixture
def token(token_for, account):
    return token_for("account", account["id"])


def orders(wallet):
    with wallet.db.sessions() as session:
        return session.execute(select(TopupOrder)).scalars().all()


def signed_response(sandbox, payload: dict) -> str:
    raw = json.dumps(payload, separators=(",", ":"))
    return '{"alipay_trade_precreate_response":%s,"sign":"%s"}' % (raw, sign(sandbox.alipay_private_key, raw))


def post_topup(client, account, token):
    return client.post(f"/api/v1/accounts/{account['id']}/topups",
                       json={"amount": "10.00", "method": "alipay"}, headers=bearer(token))


def test_precreate_rejected_by_alipay_is_422_and_closes_the_order(client, wallet, account, token, sandbox):
    body = signed_response(sandbox, {"code": "40004", "msg": "Business Failed",
                                     "sub_code": "ACQ.TOTAL_FEE_EXCEED", "sub_msg": "订单金额超过限额"})
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body=body)
        response = post_topup(client, account, token)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "TOTAL_FEE_EXCEED" in response.get_json()["code"]
    assert [o.status for o in orders(wallet)] == ["closed"]


def test_precreate_answered_with_a_system_error_is_502_and_leaves_the_order_for_the_poll_job(
    client, wallet, account, token, sandbox
):
    # ACQ.SYSTEM_ERROR is Alipay's trouble, to be retried with a new order: not a refusal (422).
    body = signed_response(sandbox, {"code": "40004", "msg": "Business Failed",
                                     "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统错误"})
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body=body)
        response = post_topup(client, account, token)
    assert response.status_code == 502
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "gateway_error"
    assert [o.status for o in orders(wallet)] == ["pending"]


def test_precreate_timeout_is_504_and_leaves_the_order_for_the_poll_job(client, wallet, account, token):
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body=requests.exceptions.ReadTimeout("slow"))
        response = post_topup(client, account, token)
    assert response.status_code == 504
    assert response.get_json()["code"] == "gateway_timeout"
    assert [o.status for o in orders(wallet)] == ["pending"]


def test_precreate_answer_with_a_bad_signature_is_502(client, wallet, account, token, sandbox):
    body = signed_response(sandbox, {"code": "10000", "msg": "Success", "out_trade_no": "X", "qr_code": "https://qr.alipay.com/x"})
    forged = body.replace("https://qr.alipay.com/x", "https://evil.example/x")
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body=forged)
        response = post_topup(client, account, token)
    assert response.status_code == 502
    assert response.mimetype == "application/problem+json"


def test_precreate_answer_that_is_not_json_is_502(client, account, token):
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body="<html>bad gateway</html>", status=502)
        assert post_topup(client, account, token).status_code == 502


@pytest.mark.parametrize("path", ["/api/v1/topups/{}", "/checkout/{}/status", "/checkout/{}/result"])
@pytest.mark.parametrize(
    "sub_code, sub_msg",
    [
        ("ACQ.INVALID_PARAMETER", "参数无效"),  # a refusal
        ("ACQ.SYSTEM_ERROR", "系统错误"),  # Alipay's own trouble: a gateway error, asked again later
    ],
)
def test_status_read_shows_the_order_when_alipay_refuses_the_query(
        client, wallet, account, token, alipay_http, sandbox, path, sub_code, sub_msg):
    order = post_topup(client, account, token).get_json()
    refused = {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}
    raw = json.dumps(refused, separators=(",", ":"))
    body = '{"alipay_trade_query_response":%s,"sign":"%s"}' % (raw, sign(sandbox.alipay_private_key, raw))
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body=body)
        response = client.get(path.format(order["out_trade_no"]), headers=bearer(token))
        assert len(mock.calls) == 1  # Alipay was asked, and said no
    assert response.status_code == 200
    if path.startswith("/api/"):
        assert response.get_json()["status"] == "pending"
    assert [o.status for o in orders(wallet)] == ["pending"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "out_trade_no=T1&sign=abc&sign_type=RSA2&charset=utf-8",
        "redirect=https://evil.example&next=//evil.example&out_trade_no=..%2F..%2Fevil",
        "out_trade_no=https://evil.example/&sign=x&sign_type=RSA2",
        "charset=latin-9&sign=1",
        "%ZZ=1",
        "out_trade_no=a&out_trade_no=b&sign=x",
    ],
)
def test_return_redirect_goes_only_to_our_own_result_page(client, query):
    response = client.get("/alipay/return?" + query)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/checkout/") and "//" not in location and "evil" not in location


def test_return_redirect_never_credits(client, wallet, account, token, alipay_http, sandbox):
    from urllib.parse import urlsplit

    order = post_topup(client, account, token).get_json()
    path = urlsplit(order["qr_code"]).path
    client.get(path)
    sandbox.max_notify_attempts = 1
    alipay_http._registry._responses.insert(
        0, responses.Response("POST", "http://wallet.test/alipay/notify", body=requests.ConnectionError("lost"))
    )
    paid = client.post(path + "/pay")
    back = urlsplit(paid.headers["Location"])
    with wallet.db.sessions() as session:
        before = session.get(TopupOrder, order["out_trade_no"]).status
    # The browser comes back with a validly signed return query string: display only.
    response = client.get(back.path + "?" + back.query)
    assert response.headers["Location"] == f"/checkout/{order['out_trade_no']}/result"
    with wallet.db.sessions() as session:
        assert session.get(TopupOrder, order["out_trade_no"]).status == before == "pending"


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"\x00\xff\xfe", b"a=1&a=2&sign=x", b"sign=%ZZ", b"x" * 70000,
     "charset=gbk&subject=\u4e2d".encode("utf-8"), b"charset=klingon&sign=x",
     # Text no database column can store, where a forged notify would put it.
     b"notify_id=%00&sign=x", b"out_trade_no=T%00&sign=x", b"sign=x&sign_type=RSA2&trade_status=\x00"],
)
def test_junk_notify_bodies_are_4xx_and_recorded(client, wallet, body):
    response = client.post("/alipay/notify", data=body, content_type="application/x-www-form-urlencoded")
    assert 400 <= response.status_code < 500
    assert response.get_data() != b"success"
    from app.adapters.db.models import AlipayNotification

    with wallet.db.sessions() as session:
        [row] = session.execute(select(AlipayNotification)).scalars().all()
    assert row.outcome.startswith("rejected_") and row.needs_review and not row.verified


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("post", "/api/v1/accounts", {"data": b"\xff", "content_type": "application/json"}),
        ("post", "/api/v1/accounts/acc_x/topups", {"data": b"[", "content_type": "application/json"}),
        ("get", "/api/v1/topups/" + "x" * 300, {}),
        ("get", "/checkout/" + "x" * 300, {}),
        ("get", "/checkout/nope/status", {}),
        ("post", "/alipay/return", {}),
        ("get", "/api/v1/accounts/acc_x/ledger?limit=abc", {}),
    ],
)
def test_junk_requests_on_every_endpoint_are_4xx_never_500(client, admin_token, method, path, kwargs):
    response = getattr(client, method)(path, headers=bearer(admin_token), **kwargs)
    assert 400 <= response.status_code < 500, (path, response.status_code)


def test_precreate_answer_nested_too_deep_to_parse_is_502_and_leaves_the_order_pending(client, wallet, account, token):
    deep = "[" * 100_000 + "]" * 100_000
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body='{"alipay_trade_precreate_response":%s,"sign":"x"}' % deep)
        response = post_topup(client, account, token)
    assert response.status_code == 502
    assert response.mimetype == "application/problem+json"
    assert [o.status for o in orders(wallet)] == ["pending"]
