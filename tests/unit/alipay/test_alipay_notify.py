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


@pytest.mark.parametrize("body", [b"notify_id=%00&sign=x", b"out_trade_no=T1\x00&sign=x", b"a%00=1&sign=x"])
def test_notify_with_a_nul_character_is_refused(body):
    with pytest.raises(NotifyDecodeError, match="NUL"):
        decode_notify_body(body)
    with pytest.raises(NotifyDecodeError, match="NUL"):
        decode_return_query(body)


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


# -- the whole-body decoder agrees with the per-pair one ---------------------------------------

# Pieces a form body is made of, raw bytes included: structure, escapes of every kind (the
# marker bytes' own escapes too), "+", multi-byte text in both charsets, stray and lone bytes.
_FORM_PIECES = [
    b"&", b"=", b"+", b"%", b"%2", b"%25", b"%26", b"%3D", b"%3d", b"%2B", b"%00", b"%01", b"%0A",
    b"%C7%AE", b"%E9%92%B1", b"%FF", b"%81", b"\x00", b"\x01", b"\x81", b"\xc7\xae", b"\xe9\x92\xb1",
    b"\x81\x30\x81\x30", b"\xff", b"charset", b"charset=utf-8", b"charset=gbk", b"charset=GB2312",
    b"charset=latin1", b"%63harset", b"sign", b"sign=", b"sign=abc", b"sign=a%2Bb%3D%3D", b"a", b"b",
    b"subject", b"2026-11-26 20:00:05", b" ",
]


def _whole_and_by_pair(body: bytes):
    from app.adapters.alipay.notify import _decode_form_by_pair, _decode_whole_form

    try:
        reference = _decode_form_by_pair(body, "notify")
    except NotifyDecodeError:
        reference = NotifyDecodeError
    return _decode_whole_form(body), reference


def test_whole_body_decoder_agrees_with_the_per_pair_decoder_on_any_body():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    piece = st.sampled_from(_FORM_PIECES) | st.binary(max_size=4)
    # Mostly what real notifies hold (UTF-8 or GBK text among the escapes), sometimes anything.
    clean = st.sampled_from(
        [b"x", b"2026", b"+", b"%20", b"%3A", b"%25", b"%26", b"%3D", b"%2B", b"=", b"%E9%92%B1"]
    )
    tidy = st.lists(clean, max_size=6).map(b"".join)
    text = st.one_of(tidy, tidy, tidy, st.lists(clean | piece, max_size=6).map(b"".join))
    word = st.text("abcdefgh_", min_size=1, max_size=6).map(str.encode)
    name = st.one_of(word, word, word, st.sampled_from([b"sign", b"charset", b"%63harset", b""]), text)
    charset = st.one_of(st.sampled_from([b"utf-8", b"UTF8", b"gbk", b"gb18030", b"gb2312"]), text)
    # Mostly forms: name=value pairs (a sign and a charset among them most of the time), where
    # names and values are built from the same pieces; and some bodies of pieces alone.
    pairs = st.lists(st.tuples(name, text), max_size=8)
    form = st.tuples(pairs, st.integers(0, 3), charset, st.booleans()).map(
        lambda f: b"&".join(
            [k + b"=" + v for k, v in f[0]]
            + ([b"sign=a%2Bb%3D"] if f[1] else [])
            + ([b"charset=" + f[2]] if f[3] else [])
        )
    )
    loose = st.lists(piece, max_size=24).map(b"".join)

    @settings(max_examples=1000, deadline=None)
    @given(st.one_of(form, form, form, loose))
    def check(body):
        whole, reference = _whole_and_by_pair(body)
        # None hands the body to the per-pair decoder; anything else must be its exact answer.
        assert whole is None or whole == reference

    check()


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_real_notifies_take_the_whole_body_decoder(alipay_keys, charset):
    body = encode_form(build_signed_notify(alipay_keys.private, **_fields(charset)), charset)
    whole, reference = _whole_and_by_pair(body)
    assert whole is not None and whole == reference
    assert whole["subject"] == SUBJECT


@pytest.mark.parametrize(
    "body",
    [
        b"a=1%26b%3D2&sign=x%3D&c=d=e",  # escaped structure stays data; a raw "=" in a value
        b"charset=gb2312&subject=%C7%AE%B0%FC&sign=s",
        b"a=&=x&sign=s",  # an empty name
        b"a=1&a=2&sign=s",
        b"a=%00&sign=s",
        b"a=\x01&sign=s",
        b"charset=utf-8&charset=gbk&sign=s",
        b"subject=%C7%AE&sign=s",  # GBK bytes in a form that declares nothing (UTF-8)
    ],
)
def test_whole_body_decoder_answers_or_defers_on_edge_cases(body):
    whole, reference = _whole_and_by_pair(body)
    assert whole is None or whole == reference
    if reference is not NotifyDecodeError and b"\x00" not in body and b"\x01" not in body and b"%0" not in body:
        assert whole == reference  # only marker bytes make a well-formed body take the slow path


def test_whole_body_decoder_decodes_every_well_formed_form():
    from urllib.parse import quote_plus

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from app.adapters.alipay.notify import _decode_whole_form

    # Text of both charsets: ASCII (structure characters included) and Chinese; no marker bytes.
    alphabet = st.sampled_from(list("abcXYZ019 _-:/.,&=%+?#\"'{}[]") + list("钱包充值元支付宝"))
    names = st.text(alphabet, min_size=1, max_size=8)
    values = st.text(alphabet, max_size=16)

    @settings(max_examples=800, deadline=None)
    @given(
        st.dictionaries(names.filter(lambda k: k not in ("sign", "charset")), values, max_size=10),
        st.sampled_from(["utf-8", "gbk"]),
        st.lists(st.booleans(), min_size=12, max_size=12),
    )
    def check(params, charset, escape):
        params = {**params, "sign": "a+b/c==", "charset": charset}
        codec = "gb18030" if charset == "gbk" else charset
        parts = []
        for (name, value), escaped in zip(params.items(), escape):
            # Some senders leave values unescaped: raw bytes, a raw "=" (but never "&", "%", "+").
            raw = not escaped and not any(c in value for c in "&%+")
            encoded = value.encode(codec) if raw else quote_plus(value, encoding=codec).encode("ascii")
            parts.append(quote_plus(name, encoding=codec).encode("ascii") + b"=" + encoded)
        body = b"&".join(parts)
        assert _decode_whole_form(body) == params
        assert decode_notify_body(body) == params

    check()


def test_percent_decoding_equals_the_standard_librarys_wherever_every_escape_is_valid():
    from urllib.parse import unquote_to_bytes

    from hypothesis import assume, given, settings
    from hypothesis import strategies as st

    from app.adapters.alipay.notify import _BAD_PERCENT, _percent_decoded

    # Backslashes and the codec's own escape letters among escapes and arbitrary bytes.
    piece = st.sampled_from([b"\\", b"\\x", b"\\n", b"\\\\", b"x41", b"%5C", b"%5c", b"%41", b"%00", b"%ff", b"%"]) \
        | st.binary(max_size=3)

    @settings(max_examples=1000, deadline=None)
    @given(st.lists(piece, max_size=12).map(b"".join))
    def check(data):
        assume(not _BAD_PERCENT.search(data))
        assert _percent_decoded(data) == unquote_to_bytes(data)

    check()
