"""The sandbox behaves like Alipay where the app can tell: payer page, notifies, return, refusals."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import requests
import responses
from alipay import AliPay

from app.adapters.alipay.beijing import format_beijing
from app.adapters.alipay.notify import (
    decode_notify_body,
    decode_return_query,
    verify_notify,
    verify_return,
)
from app.adapters.alipay.response import top_level_members
from app.adapters.alipay.sandbox import SandboxState
from app.adapters.alipay.sandbox.state import parse_relative_timeout
from app.adapters.alipay.signing import verify

T = "T20261126120000BBBBBBBBBBBBBBBBBBBB"
NOTIFY_FIELDS = {
    "notify_time", "notify_type", "notify_id", "app_id", "charset", "version", "sign_type", "sign",
    "trade_no", "out_trade_no", "buyer_id", "buyer_logon_id", "seller_id", "trade_status",
    "total_amount", "receipt_amount", "buyer_pay_amount", "invoice_amount", "subject",
    "gmt_create", "gmt_payment", "fund_bill_list",
}


def _precreate(gateway, sandbox, subject="钱包充值", amount_fen=10000, minutes=15):
    return gateway.precreate(
        out_trade_no=T,
        amount_fen=amount_fen,
        subject=subject,
        notify_url=sandbox.notify_url,
        expires_at=datetime.now(timezone.utc) + timedelta(minutes=minutes),
    ).qr_code


def _sdk_request(sandbox, private_pem, alipay_public_pem, method, biz, **overrides) -> str:
    sdk = AliPay(
        appid=sandbox.app_id,
        app_private_key_string=private_pem,
        alipay_public_key_string=alipay_public_pem,
    )
    data = sdk.build_body(method, biz, timestamp=format_beijing(datetime.now(timezone.utc)))
    data.update(overrides)
    return sdk.sign_data(data)


def _post_gateway(sandbox, body: str):
    return sandbox.client.post(
        "/_sandbox/alipay/gateway.do",
        data=body,
        content_type="application/x-www-form-urlencoded",
        base_url=sandbox.host,
    )


# -- payer page ----------------------------------------------------------------------------


def test_payer_page_shows_subject_amount_and_the_pay_button(gateway, sandbox):
    page = sandbox.open_payer_page(_precreate(gateway, sandbox))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "钱包充值" in html and "100.00" in html
    assert 'data-testid="sandbox-pay"' in html


def test_payer_page_escapes_the_subject(gateway, sandbox):
    html = sandbox.open_payer_page(_precreate(gateway, sandbox, subject="<script>x</script>"))
    assert "<script>x</script>" not in html.get_data(as_text=True)


def test_unknown_qr_token_is_not_found(sandbox):
    assert sandbox.client.get("/_sandbox/alipay/qr/nope", base_url=sandbox.host).status_code == 404


def test_expired_qr_code_cannot_be_scanned_or_paid(gateway, sandbox):
    qr = _precreate(gateway, sandbox, minutes=-1)
    html = sandbox.open_payer_page(qr).get_data(as_text=True)
    assert "EXPIRED" in html and "sandbox-pay" not in html
    assert sandbox.pay(qr).status_code == 409
    assert gateway.query(T).status == "NOT_EXIST"
    assert sandbox.notify.bodies == []


def test_scanned_trade_closes_when_its_time_expires(app_keys, alipay_keys):
    clock = {"now": datetime(2026, 11, 26, 4, 0, tzinfo=timezone.utc)}
    state = SandboxState(
        app_id="1", app_public_key=app_keys.public, return_url="https://m.test/r",
        alipay_private_key=alipay_keys.private, now=lambda: clock["now"],
    )
    trade = state.precreate(
        out_trade_no=T, amount_fen=100, total_amount="1.00", subject="x", notify_url=None,
        time_expire=None, relative_timeout=parse_relative_timeout("15m"),
    )
    clock["now"] += timedelta(hours=1)  # precreate's relative timeout only starts at the scan
    assert state.scan(trade.token).status == "WAIT_BUYER_PAY"
    clock["now"] += timedelta(minutes=15)
    assert state.query(T).status == "TRADE_CLOSED"


# -- paying: notify and return -------------------------------------------------------------


def test_paying_posts_a_complete_notify_signed_with_the_sandbox_alipay_key(gateway, sandbox):
    qr = _precreate(gateway, sandbox)
    sandbox.open_payer_page(qr)
    sandbox.pay(qr)
    [body] = sandbox.notify.bodies
    params = decode_notify_body(body)
    assert NOTIFY_FIELDS <= set(params)
    assert verify_notify(params, sandbox.state.alipay_public_key)
    trade = sandbox.state.trade(T)
    assert params["trade_status"] == "TRADE_SUCCESS" and params["notify_type"] == "trade_status_sync"
    assert (params["out_trade_no"], params["trade_no"], params["total_amount"]) == (
        T, trade.trade_no, "100.00",
    )
    assert (params["app_id"], params["seller_id"]) == (sandbox.app_id, sandbox.state.seller_id)
    assert params["subject"] == "钱包充值" and params["charset"] == "utf-8"
    assert json.loads(params["fund_bill_list"])[0]["amount"] == "100.00"
    assert "charset=utf-8" in sandbox.notify.content_types[0]


def test_notify_is_gbk_encoded_when_the_payer_form_chooses_gbk(gateway, sandbox):
    qr = _precreate(gateway, sandbox)
    sandbox.pay(qr, charset="gbk")
    [body] = sandbox.notify.bodies
    assert b"subject=%C7%AE%B0%FC%B3%E4%D6%B5" in body
    params = decode_notify_body(body)
    assert params["charset"] == "gbk" and params["subject"] == "钱包充值"
    assert verify_notify(params, sandbox.state.alipay_public_key)


def test_notify_charset_defaults_to_the_state_option(gateway, sandbox):
    sandbox.state.notify_charset = "gbk"
    sandbox.pay(_precreate(gateway, sandbox))
    assert decode_notify_body(sandbox.notify.bodies[0])["charset"] == "gbk"


def test_paying_redirects_to_the_return_url_with_a_signed_query(gateway, sandbox):
    qr = _precreate(gateway, sandbox)
    answer = sandbox.pay(qr, charset="gbk")
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(sandbox.return_url + "?")
    params = decode_return_query(urlsplit(location).query.encode("ascii"))
    assert verify_return(params, sandbox.state.alipay_public_key)
    assert params["method"] == "alipay.trade.page.pay.return"
    assert (params["out_trade_no"], params["total_amount"], params["charset"]) == (T, "100.00", "gbk")
    assert {"trade_no", "app_id", "seller_id", "timestamp", "sign_type", "version"} <= set(params)


def test_unacknowledged_notify_is_retried_with_the_same_notify_id(gateway, sandbox):
    sandbox.notify.answers = [(500, "error"), (200, "fail")]
    qr = _precreate(gateway, sandbox)
    assert sandbox.pay(qr).status_code == 302
    attempts = sandbox.state.notify_attempts(T)
    assert [a.acknowledged for a in attempts] == [False, False, True]
    assert [a.status_code for a in attempts] == [500, 200, 200]
    assert len({a.notify_id for a in attempts}) == 1
    assert len(set(sandbox.notify.bodies)) == 1  # resends carry the very same notify


def test_notify_acknowledged_with_anything_but_bare_success_is_retried(gateway, sandbox):
    sandbox.notify.answers = [(200, "success\n"), (200, "<html>success</html>"), (200, "SUCCESS")]
    answer = sandbox.pay(_precreate(gateway, sandbox))
    assert [a.acknowledged for a in sandbox.state.notify_attempts(T)] == [False, False, False]
    assert answer.status_code == 302  # the browser goes back anyway; the merchant must query


def test_undeliverable_notify_is_recorded_and_the_browser_still_redirected(gateway, sandbox):
    sandbox.http.remove(responses.POST, sandbox.notify_url)
    sandbox.http.add(responses.POST, sandbox.notify_url, body=requests.exceptions.ConnectionError())
    answer = sandbox.pay(_precreate(gateway, sandbox))
    assert answer.status_code == 302
    attempts = sandbox.state.notify_attempts(T)
    assert len(attempts) == 3 and {a.error for a in attempts} == {"ConnectionError"}
    assert gateway.query(T).status == "TRADE_SUCCESS"  # what the merchant's poll finds


def test_paying_twice_sends_one_notify(gateway, sandbox):
    qr = _precreate(gateway, sandbox)
    sandbox.pay(qr)
    assert sandbox.pay(qr).status_code == 302
    assert len(sandbox.notify.bodies) == 1


def test_closed_trade_cannot_be_paid(gateway, sandbox):
    qr = _precreate(gateway, sandbox)
    sandbox.open_payer_page(qr)
    assert gateway.close(T) is True
    assert sandbox.pay(qr).status_code == 409
    assert sandbox.notify.bodies == []


def test_trade_closed_before_the_scan_can_still_be_paid_like_at_alipay(gateway, sandbox):
    qr = _precreate(gateway, sandbox)
    assert gateway.close(T) is False  # TRADE_NOT_EXIST: nothing was closed
    assert sandbox.pay(qr).status_code == 302
    assert gateway.query(T).status == "TRADE_SUCCESS"


def test_paid_trade_cannot_be_precreated_again(gateway, sandbox):
    from app.domain.errors import GatewayRejected

    sandbox.pay(_precreate(gateway, sandbox))
    with pytest.raises(GatewayRejected) as caught:
        _precreate(gateway, sandbox)
    assert caught.value.code == "alipay_ACQ.TRADE_HAS_SUCCESS"


def test_concurrent_payments_of_one_trade_pay_it_once(app_keys, alipay_keys):
    state = SandboxState(
        app_id="1", app_public_key=app_keys.public, return_url="https://m.test/r",
        alipay_private_key=alipay_keys.private,
    )
    trade = state.precreate(
        out_trade_no=T, amount_fen=100, total_amount="1.00", subject="x", notify_url=None,
        time_expire=None, relative_timeout=None,
    )
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(state.pay(trade.token, charset="utf-8")[1]))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]


# -- gateway.do refusals -------------------------------------------------------------------


def test_request_signed_with_another_key_gets_a_signed_invalid_signature_answer(
    sandbox, other_keys, alipay_keys
):
    body = _sdk_request(
        sandbox, other_keys.private_pem, alipay_keys.public_pem, "alipay.trade.query", {"out_trade_no": T}
    )
    text = _post_gateway(sandbox, body).get_data(as_text=True)
    members = top_level_members(text)
    answer = members["alipay_trade_query_response"]
    assert answer.value["code"] == "40002" and answer.value["sub_code"] == "isv.invalid-signature"
    assert verify(sandbox.state.alipay_public_key, answer.raw, members["sign"].value)


def test_request_with_a_tampered_parameter_is_refused(sandbox, app_keys, alipay_keys):
    body = _sdk_request(
        sandbox, app_keys.private_pem, alipay_keys.public_pem, "alipay.trade.query", {"out_trade_no": T}
    ).replace("alipay.trade.query", "alipay.trade.close")
    text = _post_gateway(sandbox, body).get_data(as_text=True)
    assert json.loads(text)["alipay_trade_close_response"]["sub_code"] == "isv.invalid-signature"


def test_unknown_method_gets_an_unsigned_error_response(sandbox, app_keys, alipay_keys):
    body = _sdk_request(sandbox, app_keys.private_pem, alipay_keys.public_pem, "alipay.trade.cancel", {})
    answer = json.loads(_post_gateway(sandbox, body).get_data(as_text=True))
    assert answer == {"error_response": answer["error_response"]}
    assert answer["error_response"]["sub_code"] == "isv.invalid-method"


def test_unknown_app_id_gets_an_unsigned_error_response(sandbox, app_keys, alipay_keys):
    body = _sdk_request(
        sandbox, app_keys.private_pem, alipay_keys.public_pem, "alipay.trade.query", {"out_trade_no": T},
        app_id="2021999999999999",
    )
    answer = json.loads(_post_gateway(sandbox, body).get_data(as_text=True))
    assert answer["error_response"]["sub_code"] == "isv.invalid-app-id"


def test_request_repeating_a_parameter_is_refused(sandbox, app_keys, alipay_keys):
    body = _sdk_request(
        sandbox, app_keys.private_pem, alipay_keys.public_pem, "alipay.trade.query", {"out_trade_no": T}
    )
    answer = json.loads(_post_gateway(sandbox, body + "&method=alipay.trade.close").get_data(as_text=True))
    assert answer["error_response"]["sub_code"] == "isv.duplicate-parameter"


def test_gateway_answers_escape_slashes_like_alipay(gateway, sandbox):
    _precreate(gateway, sandbox)
    raw = sandbox.http.calls[0].response.text
    assert "https:\\/\\/sandbox.test\\/_sandbox\\/alipay\\/qr\\/" in raw
