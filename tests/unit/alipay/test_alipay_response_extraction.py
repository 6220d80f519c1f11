from __future__ import annotations

import pytest
from alipay import AliPay

from app.adapters.alipay.response import MalformedResponse, response_key, top_level_members
from app.adapters.alipay.signing import sign, verify

KEY = "alipay_trade_query_response"


def test_response_key_replaces_dots_with_underscores():
    assert response_key("alipay.trade.precreate") == "alipay_trade_precreate_response"


def test_raw_value_keeps_escaped_slashes_exactly_as_received():
    raw = '{"code":"10000","qr_code":"https:\\/\\/qr.alipay.com\\/bax03431"}'
    members = top_level_members('{"%s":%s,"sign":"abc"}' % (KEY, raw))
    assert members[KEY].raw == raw
    assert members[KEY].value["qr_code"] == "https://qr.alipay.com/bax03431"


def test_raw_value_is_not_cut_short_by_braces_inside_strings():
    raw = '{"code":"10000","subject":"a } b { c }}","nested":{"x":"}"}}'
    members = top_level_members('{"%s":%s,"sign":"abc"}' % (KEY, raw))
    assert members[KEY].raw == raw
    assert members[KEY].value["subject"] == "a } b { c }}"


def test_raw_value_keeps_escaped_quotes_and_unicode_escapes():
    raw = '{"sub_msg":"\\"quoted\\" \\u8ba2\\u5355 \\\\","code":"40004"}'
    members = top_level_members('{"%s":%s,"sign":"abc"}' % (KEY, raw))
    assert members[KEY].raw == raw
    assert members[KEY].value["sub_msg"] == '"quoted" 订单 \\'


def test_members_are_found_whatever_their_order_and_spacing():
    raw = '{ "code" : "10000" ,\n "msg":"Success" }'
    text = '{\n  "sign" : "abc",\n  "alipay_cert_sn":"x",\n  "%s" :  %s\n}\n' % (KEY, raw)
    members = top_level_members(text)
    assert members[KEY].raw == raw
    assert members["sign"].value == "abc"


def test_response_key_mentioned_inside_a_string_value_is_not_mistaken_for_the_member():
    decoy = '{"note":"alipay_trade_query_response {\\"code\\":\\"10000\\"}"}'
    raw = '{"code":"40004","sub_code":"ACQ.TRADE_NOT_EXIST"}'
    members = top_level_members('{"error_hint":%s,"%s":%s,"sign":"abc"}' % (decoy, KEY, raw))
    assert members[KEY].raw == raw


def test_sdk_brace_counting_is_fooled_where_our_scanner_is_not(app_keys, alipay_keys):
    raw = '{"code":"10000","subject":"} tricky","trade_status":"TRADE_SUCCESS"}'
    text = '{"%s":%s,"sign":"%s"}' % (KEY, raw, sign(alipay_keys.private, raw))
    sdk = AliPay(
        appid="1",
        app_private_key_string=app_keys.private_pem,
        alipay_public_key_string=alipay_keys.public_pem,
    )
    assert sdk._get_string_to_be_signed(text, KEY) != raw
    members = top_level_members(text)
    assert verify(alipay_keys.public, members[KEY].raw, members["sign"].value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html>502 Bad Gateway</html>",
        "[1, 2]",
        '{"a":1',
        '{"a":1} trailing',
        '{"a":1,}',
        '{a:1}',
        '{"a" 1}',
    ],
)
def test_text_that_is_not_one_json_object_is_malformed(text):
    with pytest.raises(MalformedResponse):
        top_level_members(text)


def test_duplicate_top_level_members_are_malformed():
    with pytest.raises(MalformedResponse, match="repeats"):
        top_level_members('{"%s":{"code":"10000"},"%s":{"code":"40004"},"sign":"x"}' % (KEY, KEY))


def test_empty_object_has_no_members():
    assert top_level_members(" {} ") == {}


def test_a_value_nested_deeper_than_the_parser_goes_is_malformed():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(MalformedResponse):
        top_level_members('{"%s":%s,"sign":"x"}' % (KEY, deep))
