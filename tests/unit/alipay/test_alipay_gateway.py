"""The real HTTP client, its SDK-built signed requests meeting the sandbox through ``responses``."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest
import requests
import responses

from app.adapters.alipay.beijing import parse_beijing
from app.adapters.alipay.gateway import HttpAlipayGateway, Precreated
from app.adapters.alipay.signing import request_sign_content, sign, verify
from app.domain.errors import GatewayError, GatewayRejected, GatewayTimeout

T = "T20261126120000AAAAAAAAAAAAAAAAAAAA"
# The same values as the sandbox fixture's (conftest.py), which tests cannot import.
APP_ID = "2021000000000042"
SANDBOX_HOST = "https://sandbox.test"
GATEWAY_URL = SANDBOX_HOST + "/_sandbox/alipay/gateway.do"
NOTIFY_URL = "https://merchant.test/alipay/notify"


def _precreate(gateway, out_trade_no=T, amount_fen=10000, minutes=15, subject="钱包充值"):
    return gateway.precreate(
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        subject=subject,
        notify_url=NOTIFY_URL,
        expires_at=datetime.now(timezone.utc) + timedelta(minutes=minutes),
    )


def _answer_with(sandbox, status=200, body=None, exception=None):
    """Make the gateway URL answer something other than the sandbox."""
    sandbox.http.remove(responses.POST, GATEWAY_URL)
    if exception is not None:
        sandbox.http.add(responses.POST, GATEWAY_URL, body=exception)
    else:
        sandbox.http.add(responses.POST, GATEWAY_URL, status=status, body=body)


def _signed(method: str, raw: str, key) -> str:
    return '{"%s":%s,"sign":"%s"}' % (method.replace(".", "_") + "_response", raw, sign(key, raw))


def _sent_params(sandbox) -> dict[str, str]:
    body = sandbox.http.calls[-1].request.body
    body = body.decode("ascii") if isinstance(body, bytes) else body
    return dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True))


# -- precreate -----------------------------------------------------------------------------


def test_constants_match_the_sandbox_fixture(sandbox):
    assert (sandbox.app_id, sandbox.host, sandbox.gateway_url, sandbox.notify_url) == (
        APP_ID, SANDBOX_HOST, GATEWAY_URL, NOTIFY_URL,
    )


def test_precreate_returns_the_qr_code_of_the_payer_page(gateway, sandbox):
    result = _precreate(gateway)
    assert isinstance(result, Precreated) and result.out_trade_no == T
    assert result.qr_code.startswith(SANDBOX_HOST + "/_sandbox/alipay/qr/")
    assert sandbox.state.trade(T).total_amount == "100.00"


def test_precreate_request_is_signed_over_the_alipay_request_rule(gateway, sandbox, app_keys):
    _precreate(gateway)
    sent = _sent_params(sandbox)
    assert verify(app_keys.public, request_sign_content(sent), sent["sign"])
    assert sent["method"] == "alipay.trade.precreate" and sent["app_id"] == APP_ID
    assert (sent["charset"], sent["sign_type"], sent["version"]) == ("utf-8", "RSA2", "1.0")
    assert sent["notify_url"] == NOTIFY_URL


def test_request_timestamp_and_time_expire_are_beijing_time(gateway, sandbox):
    before = datetime.now(timezone.utc)
    gateway.precreate(
        out_trade_no=T,
        amount_fen=1,
        subject="x",
        notify_url=NOTIFY_URL,
        expires_at=datetime(2026, 11, 26, 4, 15, tzinfo=timezone.utc),
    )
    sent = _sent_params(sandbox)
    assert abs(parse_beijing(sent["timestamp"]) - before) < timedelta(seconds=30)
    biz = json.loads(sent["biz_content"])
    assert biz["time_expire"] == "2026-11-26 12:15:00"
    assert biz["total_amount"] == "0.01"


def test_request_with_local_time_instead_of_beijing_time_is_refused(app_keys, alipay_keys, sandbox):
    # The SDK's own datetime.now() on a UTC server is eight hours behind Beijing.
    utc_clock_as_beijing = lambda: datetime.now(timezone.utc) - timedelta(hours=8)  # noqa: E731
    gateway = HttpAlipayGateway(
        APP_ID, app_keys.private_pem, alipay_keys.public_pem, GATEWAY_URL, now=utc_clock_as_beijing
    )
    with pytest.raises(GatewayError, match="40002") as caught:
        _precreate(gateway)
    assert not isinstance(caught.value, GatewayTimeout)


def test_precreate_over_the_alipay_limit_is_rejected(gateway):
    with pytest.raises(GatewayRejected) as caught:
        _precreate(gateway, amount_fen=100_000_000_01)
    assert caught.value.code == "alipay_ACQ.TOTAL_FEE_EXCEED"
    assert caught.value.status == 422
    assert caught.value.detail == "订单金额超过限额"


def test_precreate_repeated_with_another_amount_is_rejected(gateway):
    _precreate(gateway)
    with pytest.raises(GatewayRejected) as caught:
        _precreate(gateway, amount_fen=20000)
    assert caught.value.code == "alipay_ACQ.CONTEXT_INCONSISTENT"


def test_precreate_repeated_identically_returns_the_same_qr_code(gateway):
    assert _precreate(gateway) == _precreate(gateway)


def test_precreate_refuses_a_naive_expiry(gateway, sandbox):
    with pytest.raises(ValueError, match="aware"):
        gateway.precreate(
            out_trade_no=T, amount_fen=1, subject="x", notify_url=NOTIFY_URL,
            expires_at=datetime(2026, 1, 1),
        )
    assert not sandbox.http.calls


# -- transport failures --------------------------------------------------------------------


def test_read_timeout_is_a_gateway_timeout(gateway, sandbox):
    _answer_with(sandbox, exception=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(GatewayTimeout) as caught:
        gateway.query(T)
    assert caught.value.status == 504


def test_connect_timeout_is_a_gateway_timeout(gateway, sandbox):
    _answer_with(sandbox, exception=requests.exceptions.ConnectTimeout("no route"))
    with pytest.raises(GatewayTimeout):
        _precreate(gateway)


def test_connection_error_is_a_gateway_error(gateway, sandbox):
    _answer_with(sandbox, exception=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(GatewayError) as caught:
        gateway.close(T)
    assert not isinstance(caught.value, GatewayTimeout)
    assert caught.value.status == 502


def test_non_200_answer_is_a_gateway_error(gateway, sandbox):
    _answer_with(sandbox, status=502, body="<html>Bad Gateway</html>")
    with pytest.raises(GatewayError, match="HTTP 502"):
        gateway.query(T)


def test_non_json_answer_is_a_gateway_error(gateway, sandbox):
    _answer_with(sandbox, body="<html>maintenance</html>")
    with pytest.raises(GatewayError, match="not JSON") as caught:
        gateway.query(T)
    assert caught.value.code == "gateway_error"


def test_answer_that_is_not_utf8_is_a_gateway_error(gateway, sandbox):
    _answer_with(sandbox, body='{"a":"充值"}'.encode("gbk"))
    with pytest.raises(GatewayError, match="not JSON"):
        gateway.query(T)


# -- signatures ----------------------------------------------------------------------------


def test_answer_with_a_tampered_value_fails_signature_verification(gateway, sandbox):
    client = sandbox.client

    def tampering(request):
        answer = client.post(
            "/_sandbox/alipay/gateway.do",
            data=request.body,
            headers={"Content-Type": request.headers["Content-Type"]},
            base_url=SANDBOX_HOST,
        )
        text = answer.get_data(as_text=True).replace("qr\\/", "evil\\/")
        return 200, {}, text

    sandbox.http.remove(responses.POST, GATEWAY_URL)
    sandbox.http.add_callback(responses.POST, GATEWAY_URL, callback=tampering)
    with pytest.raises(GatewayError) as caught:
        _precreate(gateway)
    assert caught.value.code == "gateway_bad_signature"


def test_answer_signed_by_another_key_fails_signature_verification(app_keys, other_keys, sandbox):
    gateway = HttpAlipayGateway(APP_ID, app_keys.private_pem, other_keys.public_pem, GATEWAY_URL)
    with pytest.raises(GatewayError) as caught:
        _precreate(gateway)
    assert caught.value.code == "gateway_bad_signature"


def test_unsigned_method_answer_fails_signature_verification(gateway, sandbox):
    _answer_with(sandbox, body='{"alipay_trade_query_response":{"code":"10000","out_trade_no":"%s",'
                 '"trade_status":"TRADE_SUCCESS","total_amount":"100.00"}}' % T)
    with pytest.raises(GatewayError) as caught:
        gateway.query(T)
    assert caught.value.code == "gateway_bad_signature"


def test_answer_with_a_garbage_sign_fails_signature_verification(gateway, sandbox):
    _answer_with(sandbox, body='{"alipay_trade_close_response":{"code":"10000"},"sign":"@@@"}')
    with pytest.raises(GatewayError) as caught:
        gateway.close(T)
    assert caught.value.code == "gateway_bad_signature"


def test_unsigned_error_response_is_a_gateway_error_not_a_signature_failure(gateway, sandbox):
    _answer_with(sandbox, body='{"error_response":{"code":"40002","msg":"Invalid Arguments",'
                 '"sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}}')
    with pytest.raises(GatewayError, match="isv.invalid-app-id") as caught:
        gateway.query(T)
    assert caught.value.code == "gateway_error"


def test_request_signed_with_a_key_alipay_does_not_know_is_a_gateway_error(other_keys, alipay_keys, sandbox):
    gateway = HttpAlipayGateway(APP_ID, other_keys.private_pem, alipay_keys.public_pem, GATEWAY_URL)
    with pytest.raises(GatewayError, match="40002") as caught:
        gateway.query(T)
    assert caught.value.code == "gateway_error"


def test_signed_service_unavailable_is_a_gateway_error(gateway, sandbox, alipay_keys):
    raw = '{"code":"20000","msg":"Service Currently Unavailable","sub_code":"aop.unknow-error"}'
    _answer_with(sandbox, body=_signed("alipay.trade.query", raw, alipay_keys.private))
    with pytest.raises(GatewayError, match="20000") as caught:
        gateway.query(T)
    assert not isinstance(caught.value, GatewayRejected)


@pytest.mark.parametrize("sub_code", ["ACQ.SYSTEM_ERROR", "AQC.SYSTEM_ERROR"])
@pytest.mark.parametrize("method", ["alipay.trade.precreate", "alipay.trade.query", "alipay.trade.close"])
def test_signed_system_error_is_a_gateway_error_to_retry_not_a_refusal(gateway, sandbox, alipay_keys, method, sub_code):
    # Alipay's remedy for a system error is to send the request again: it says nothing about the
    # trade, unlike a refusal such as ACQ.TOTAL_FEE_EXCEED.
    raw = '{"code":"40004","msg":"Business Failed","sub_code":"%s","sub_msg":"系统错误"}' % sub_code
    _answer_with(sandbox, body=_signed(method, raw, alipay_keys.private))
    call = {
        "alipay.trade.precreate": lambda: _precreate(gateway),
        "alipay.trade.query": lambda: gateway.query(T),
        "alipay.trade.close": lambda: gateway.close(T),
    }[method]
    with pytest.raises(GatewayError, match=sub_code.replace(".", r"\.")) as caught:
        call()
    assert not isinstance(caught.value, GatewayRejected)
    assert caught.value.code == "gateway_error"


# -- query and close -----------------------------------------------------------------------


def test_query_before_the_scan_is_not_exist(gateway):
    _precreate(gateway)
    status = gateway.query(T)
    assert (status.status, status.trade_no, status.total_amount_fen, status.paid_at) == (
        "NOT_EXIST", None, None, None,
    )


def test_query_after_the_scan_is_wait_buyer_pay(gateway, sandbox):
    sandbox.open_payer_page(_precreate(gateway).qr_code)
    status = gateway.query(T)
    assert status.status == "WAIT_BUYER_PAY"
    assert status.trade_no and status.total_amount_fen == 10000 and status.paid_at is None
    assert not status.is_paid


def test_query_after_payment_is_trade_success_with_amount_and_beijing_paid_at(gateway, sandbox):
    qr = _precreate(gateway).qr_code
    sandbox.open_payer_page(qr)
    assert sandbox.pay(qr).status_code == 302
    status = gateway.query(T)
    assert status.status == "TRADE_SUCCESS" and status.is_paid
    assert status.total_amount_fen == 10000
    assert status.trade_no == sandbox.state.trade(T).trade_no
    assert status.paid_at.utcoffset() == timedelta(hours=8)
    assert status.paid_at == sandbox.state.trade(T).paid_at.replace(microsecond=0)


def test_close_before_the_scan_returns_false(gateway):
    _precreate(gateway)
    assert gateway.close(T) is False


def test_close_after_the_scan_closes_the_trade(gateway, sandbox):
    sandbox.open_payer_page(_precreate(gateway).qr_code)
    assert gateway.close(T) is True
    assert gateway.query(T).status == "TRADE_CLOSED"


def test_close_after_payment_is_rejected(gateway, sandbox):
    qr = _precreate(gateway).qr_code
    sandbox.pay(qr)
    with pytest.raises(GatewayRejected) as caught:
        gateway.close(T)
    assert caught.value.code == "alipay_ACQ.TRADE_STATUS_ERROR"


def test_query_answer_with_a_malformed_amount_is_a_gateway_error(gateway, sandbox, alipay_keys):
    raw = '{"code":"10000","msg":"Success","out_trade_no":"%s","trade_no":"1",' \
          '"trade_status":"TRADE_SUCCESS","total_amount":"1e2"}' % T
    _answer_with(sandbox, body=_signed("alipay.trade.query", raw, alipay_keys.private))
    with pytest.raises(GatewayError, match="malformed total_amount"):
        gateway.query(T)


def test_paid_query_answer_without_an_amount_is_a_gateway_error(gateway, sandbox, alipay_keys):
    raw = '{"code":"10000","out_trade_no":"%s","trade_status":"TRADE_FINISHED"}' % T
    _answer_with(sandbox, body=_signed("alipay.trade.query", raw, alipay_keys.private))
    with pytest.raises(GatewayError, match="no total_amount"):
        gateway.query(T)


def test_query_answer_about_another_trade_is_a_gateway_error(gateway, sandbox, alipay_keys):
    raw = '{"code":"10000","out_trade_no":"OTHER","trade_status":"TRADE_SUCCESS","total_amount":"1.00"}'
    _answer_with(sandbox, body=_signed("alipay.trade.query", raw, alipay_keys.private))
    with pytest.raises(GatewayError, match="another trade"):
        gateway.query(T)


def test_query_answer_with_an_unknown_status_is_a_gateway_error(gateway, sandbox, alipay_keys):
    raw = '{"code":"10000","out_trade_no":"%s","trade_status":"NOT_EXIST","total_amount":"1.00"}' % T
    _answer_with(sandbox, body=_signed("alipay.trade.query", raw, alipay_keys.private))
    with pytest.raises(GatewayError, match="unknown trade_status"):
        gateway.query(T)


def test_out_trade_no_outside_alipays_alphabet_is_a_programming_error(gateway):
    with pytest.raises(ValueError):
        gateway.query("T-1; DROP")


# -- logging -------------------------------------------------------------------------------


def test_logs_carry_out_trade_no_but_never_keys_or_signed_payloads(gateway, sandbox, app_keys, caplog):
    caplog.set_level(logging.DEBUG)
    _precreate(gateway)
    _answer_with(sandbox, body='{"alipay_trade_query_response":{"code":"10000"},"sign":"@@@"}')
    with pytest.raises(GatewayError):
        gateway.query(T)
    assert any(getattr(record, "out_trade_no", None) == T for record in caplog.records)
    everything = "\n".join(
        f"{record.getMessage()} {record.__dict__}" for record in caplog.records
    )
    assert "PRIVATE KEY" not in everything and "sign=" not in everything
    assert "biz_content" not in everything
