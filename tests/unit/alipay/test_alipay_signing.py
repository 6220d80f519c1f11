from __future__ import annotations

import base64
from urllib.parse import parse_qsl

import pytest
from alipay import AliPay

from app.adapters.alipay.signing import notify_sign_content, request_sign_content, sign, verify


def test_signature_made_with_the_private_key_verifies_with_its_public_key(app_keys):
    signature = sign(app_keys.private, "a=1&b=充值")
    assert verify(app_keys.public, "a=1&b=充值", signature)
    assert verify(app_keys.public, "a=1&b=充值".encode(), signature)


def test_signature_covers_the_bytes_of_the_declared_charset(app_keys):
    signature = sign(app_keys.private, "subject=充值", charset="gbk")
    assert verify(app_keys.public, "subject=充值", signature, charset="gbk")
    assert not verify(app_keys.public, "subject=充值", signature, charset="utf-8")


def test_signature_does_not_verify_with_another_key(app_keys, other_keys):
    assert not verify(other_keys.public, "a=1", sign(app_keys.private, "a=1"))


def test_signature_does_not_verify_other_content(app_keys):
    assert not verify(app_keys.public, "a=2", sign(app_keys.private, "a=1"))


def test_signature_tolerates_line_breaks_inside_the_base64(app_keys):
    signature = sign(app_keys.private, "a=1")
    wrapped = "\n".join(signature[i : i + 76] for i in range(0, len(signature), 76))
    assert verify(app_keys.public, "a=1", wrapped)


@pytest.mark.parametrize(
    "garbage",
    ["", "not base64 at all!", "====", "QUJD", "A" * 5000, "AAA", None, 12345, "%%%%"],
)
def test_verify_returns_false_for_garbage_signatures_instead_of_raising(app_keys, garbage):
    assert verify(app_keys.public, "a=1", garbage) is False


def test_verify_returns_false_for_a_truncated_signature(app_keys):
    signature = base64.b64decode(sign(app_keys.private, "a=1"))
    assert not verify(app_keys.public, "a=1", base64.b64encode(signature[:-1]).decode())


def test_verify_returns_false_for_an_unknown_charset(app_keys):
    assert not verify(app_keys.public, "a=1", sign(app_keys.private, "a=1"), charset="x-unknown")


def test_request_content_leaves_out_sign_and_empty_values_but_keeps_sign_type():
    params = {
        "sign": "xxx",
        "sign_type": "RSA2",
        "method": "alipay.trade.query",
        "app_auth_token": "",
        "notify_url": None,
        "biz_content": '{"out_trade_no":"T1"}',
        "app_id": "2021",
    }
    assert request_sign_content(params) == (
        'app_id=2021&biz_content={"out_trade_no":"T1"}&method=alipay.trade.query&sign_type=RSA2'
    )


def test_notify_content_leaves_out_sign_and_sign_type_but_keeps_empty_values():
    params = {"sign": "x", "sign_type": "RSA2", "trade_status": "TRADE_SUCCESS", "body": "", "a": "1"}
    assert notify_sign_content(params) == "a=1&body=&trade_status=TRADE_SUCCESS"


def test_sign_contents_use_raw_values_not_url_encoded_ones():
    params = {"subject": "充值 a&b=c", "notify_url": "https://m.test/alipay/notify"}
    assert notify_sign_content(params) == "notify_url=https://m.test/alipay/notify&subject=充值 a&b=c"
    assert request_sign_content(params) == notify_sign_content(params)


def test_sdk_request_signature_equals_ours_over_the_alipay_request_rule(app_keys, alipay_keys):
    # PKCS#1 v1.5 signatures are deterministic: the SDK and we must produce the same bytes.
    sdk = AliPay(
        appid="2021",
        app_private_key_string=app_keys.private_pem,
        alipay_public_key_string=alipay_keys.public_pem,
        sign_type="RSA2",
    )
    data = sdk.build_body(
        "alipay.trade.precreate",
        {"out_trade_no": "T1", "total_amount": "1.00", "subject": "充值 \"wallet\" & co"},
        timestamp="2026-11-26 12:00:00",
        notify_url="https://m.test/alipay/notify?x=1",
    )
    sent = dict(parse_qsl(sdk.sign_data(data), keep_blank_values=True))
    assert sent["sign"] == sign(app_keys.private, request_sign_content(sent))
    assert verify(app_keys.public, request_sign_content(sent), sent["sign"])


def test_notify_content_is_the_sorted_pairs_for_any_parameters():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    names = st.one_of(st.sampled_from(["sign", "sign_type", "a", "a1", "a_b", "A", "body"]), st.text(max_size=8))

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(names, st.text(max_size=12), max_size=12))
    def check(params):
        pairs = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type"))
        assert notify_sign_content(params) == "&".join(f"{k}={v}" for k, v in pairs)

    check()
