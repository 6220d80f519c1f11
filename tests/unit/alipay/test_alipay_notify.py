from __future__ import annotations

import json

import pytest

from app.adapters.alipay.notify import (
    MAX_NOTIFY_BYTES,
    NotifyDecodeError,
    decode_notify_body,
    decode_return_query,
    verify_notify,
    verify_return,
)
from app.adapters.alipay.sandbox.notify_builder import (
    build_signed_notify,
    encode_form,
    payment_notify_fields,
    sign_params,
)

SUBJECT = "钱包充值 100 元"


def _fields(charset="utf-8", **overrides):
    fields = payment_notify_fields(
        app_id="2021000000000042",
        seller_id="2088000000000042",
        out_trade_no="T20261126120000ABCDEF",
        trade_no="2026112622001400000000000001",
        total_amount="100.00",
        subject=SUBJECT,
        buyer_id="2088000000000099",
        buyer_logon_id="abc***@example.com",
        gmt_create="2026-11-26 20:00:00",
        gmt_payment="2026-11-26 20:00:05",
        notify_time="2026-11-26 20:00:06",
        notify_id="2026112600222200005000000000000001",
        charset=charset,
    )
    fields.update(overrides)
    return fields


# -- decoding --------------------------------------------------------------------------------


def test_utf8_notify_decodes_every_value_once():
    body = encode_form({"subject": SUBJECT, "charset": "utf-8", "sign": "s+/=", "pct": "100%25"})
    assert decode_notify_body(body) == {
        "subject": SUBJECT,
        "charset": "utf-8",
        "sign": "s+/=",
        "pct": "100%25",  # decoded exactly once: the literal text "%25" survives
    }


def test_gbk_notify_decodes_real_gbk_bytes():
    body = b"charset=gbk&subject=%C7%AE%B0%FC%B3%E4%D6%B5&sign=x"
    assert "钱包充值".encode("gbk") == b"\xc7\xae\xb0\xfc\xb3\xe4\xd6\xb5"
    assert decode_notify_body(body)["subject"] == "钱包充值"


def test_gbk_notify_with_unescaped_gbk_bytes_decodes_too():
    body = b"subject=" + "钱包充值".encode("gbk") + b"&charset=GBK&sign=x"
    assert decode_notify_body(body)["subject"] == "钱包充值"


@pytest.mark.parametrize(
    "charset, codec", [("gb2312", "gbk"), ("GB18030", "gbk"), ("UTF-8", "utf-8"), ("utf8", "utf-8")]
)
def test_declared_charset_names_are_accepted_case_insensitively(charset, codec):
    body = encode_form({"charset": charset, "subject": "充值", "sign": "x"}, codec)
    assert decode_notify_body(body)["subject"] == "充值"


def test_charset_defaults_to_utf8_when_not_declared():
    assert decode_notify_body(encode_form({"subject": "充值", "sign": "x"}))["subject"] == "充值"


def test_plus_is_a_space_and_escaped_plus_is_a_plus():
    assert decode_notify_body(b"a=1+2&b=1%2B2&sign=x") == {"a": "1 2", "b": "1+2", "sign": "x"}


def test_notify_with_a_duplicate_key_is_refused():
    with pytest.raises(NotifyDecodeError, match="repeats"):
        decode_notify_body(b"total_amount=1.00&total_amount=100.00&sign=x")


def test_notify_with_a_duplicate_charset_is_refused():
    with pytest.raises(NotifyDecodeError, match="repeats"):
        decode_notify_body(b"charset=gbk&charset=utf-8&sign=x")


def test_gbk_bytes_in_a_notify_declared_utf8_are_refused():
    with pytest.raises(NotifyDecodeError, match="not valid utf-8"):
        decode_notify_body(b"charset=utf-8&subject=%C7%AE%B0%FC&sign=x")


def test_notify_with_an_unsupported_charset_is_refused():
    with pytest.raises(NotifyDecodeError, match="unsupported charset"):
        decode_notify_body(b"charset=latin-1&sign=x")


def test_notify_larger_than_64_kib_is_refused():
    body = b"sign=x&body=" + b"a" * MAX_NOTIFY_BYTES
    with pytest.raises(NotifyDecodeError, match="larger than"):
        decode_notify_body(body)


def test_notify_without_sign_is_refused():
    with pytest.raises(NotifyDecodeError, match="no sign"):
        decode_notify_body(b"trade_status=TRADE_SUCCESS&sign_type=RSA2")


def test_notify_with_a_malformed_percent_escape_is_refused():
    with pytest.raises(NotifyDecodeError, match="percent"):
        decode_notify_body(b"subject=100%&sign=x")


def test_notify_body_must_be_bytes():
    with pytest.raises(NotifyDecodeError):
        decode_notify_body("sign=x")  # type: ignore[arg-type]


# -- verification ----------------------------------------------------------------------------


def test_signed_utf8_notify_verifies_with_alipay_public_key(alipay_keys):
    body = encode_form(build_signed_notify(alipay_keys.private, **_fields()))
    assert verify_notify(decode_notify_body(body), alipay_keys.public)


def test_signed_gbk_notify_with_chinese_subject_verifies(alipay_keys):
    notify = build_signed_notify(alipay_keys.private, **_fields(charset="gbk"))
    body = encode_form(notify, "gbk")
    assert b"subject=%C7%AE%B0%FC%B3%E4%D6%B5" in body  # GBK bytes of the subject, escaped
    params = decode_notify_body(body)
    assert params["subject"] == SUBJECT
    assert verify_notify(params, alipay_keys.public)


def test_notify_signed_with_merchant_key_is_refused(app_keys, alipay_keys):
    params = decode_notify_body(encode_form(build_signed_notify(app_keys.private, **_fields())))
    assert not verify_notify(params, alipay_keys.public)


def test_notify_signed_with_another_key_is_refused(other_keys, alipay_keys):
    params = build_signed_notify(other_keys.private, **_fields())
    assert not verify_notify(params, alipay_keys.public)


def test_notify_with_tampered_amount_is_refused(alipay_keys):
    params = build_signed_notify(alipay_keys.private, **_fields())
    params["total_amount"] = "10000.00"
    assert not verify_notify(params, alipay_keys.public)


def test_notify_with_an_added_parameter_is_refused(alipay_keys):
    params = build_signed_notify(alipay_keys.private, **_fields())
    params["refund_fee"] = "0.00"
    assert not verify_notify(params, alipay_keys.public)


def test_notify_without_sign_is_refused_by_verify(alipay_keys):
    params = build_signed_notify(alipay_keys.private, **_fields())
    del params["sign"]
    assert not verify_notify(params, alipay_keys.public)


@pytest.mark.parametrize("sign_type", ["RSA", "rsa2", "", None])
def test_notify_with_wrong_sign_type_is_refused(alipay_keys, sign_type):
    params = build_signed_notify(alipay_keys.private, **_fields())
    if sign_type is None:
        del params["sign_type"]
    else:
        params["sign_type"] = sign_type
    assert not verify_notify(params, alipay_keys.public)


def test_notify_with_html_escaped_fund_bill_list_is_refused(alipay_keys):
    # What a framework filter that HTML-escapes input would hand over.
    params = build_signed_notify(alipay_keys.private, **_fields())
    params["fund_bill_list"] = params["fund_bill_list"].replace('"', "&quot;")
    assert not verify_notify(params, alipay_keys.public)


def test_verify_notify_does_not_mutate_the_params(alipay_keys):
    params = build_signed_notify(alipay_keys.private, **_fields())
    before = dict(params)
    assert verify_notify(params, alipay_keys.public)
    assert params == before and list(params) == list(before)


def test_notify_with_empty_values_verifies_because_empty_values_are_signed(alipay_keys):
    params = build_signed_notify(alipay_keys.private, **_fields(body="", passback_params=""))
    decoded = decode_notify_body(encode_form(params))
    assert decoded["body"] == ""
    assert verify_notify(decoded, alipay_keys.public)
    del decoded["body"]
    assert not verify_notify(decoded, alipay_keys.public)


def test_fund_bill_list_json_with_quotes_survives_the_round_trip(alipay_keys):
    params = build_signed_notify(alipay_keys.private, **_fields())
    decoded = decode_notify_body(encode_form(params))
    assert json.loads(decoded["fund_bill_list"]) == [{"amount": "100.00", "fundChannel": "ALIPAYACCOUNT"}]
    assert verify_notify(decoded, alipay_keys.public)


def test_signed_return_query_verifies_and_a_tampered_one_does_not(alipay_keys):
    signed = sign_params(
        alipay_keys.private,
        {
            "out_trade_no": "T1",
            "trade_no": "2026",
            "total_amount": "100.00",
            "method": "alipay.trade.page.pay.return",
            "charset": "gbk",
            "timestamp": "2026-11-26 20:00:07",
        },
    )
    params = decode_return_query(encode_form(signed, "gbk"))
    assert verify_return(params, alipay_keys.public)
    params["total_amount"] = "1.00"
    assert not verify_return(params, alipay_keys.public)
