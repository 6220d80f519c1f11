"""Build what Alipay sends back, signed as Alipay signs it: notifies and return query strings.

Pure functions, shared by the sandbox and by tests that need realistic signed notifies.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ..charsets import codec_for
from ..signing import SIGN_TYPE, notify_sign_content, sign


def sign_params(private_key: RSAPrivateKey, params: Mapping[str, object]) -> dict[str, str]:
    """Return a copy of ``params`` with ``sign_type`` (default RSA2) and ``sign`` added, notify rule."""
    signed = {key: str(value) for key, value in params.items() if key != "sign"}
    signed.setdefault("sign_type", SIGN_TYPE)
    codec = codec_for(signed.get("charset"))
    if codec is None:
        raise ValueError("unsupported charset")
    signed["sign"] = sign(private_key, notify_sign_content(signed), codec)
    return signed


def build_signed_notify(private_key: RSAPrivateKey, **fields: object) -> dict[str, str]:
    """Return the notify ``fields`` signed with ``private_key`` over the notify content rule."""
    return sign_params(private_key, fields)


def encode_form(params: Mapping[str, str], charset: str = "utf-8") -> bytes:
    """Form-encode ``params`` with their text in ``charset`` (utf-8 or gbk), as Alipay posts them."""
    codec = codec_for(charset)
    if codec is None:
        raise ValueError("unsupported charset")
    return urlencode(list(params.items()), encoding=codec).encode("ascii")


def fund_bill_list(total_amount: str) -> str:
    """Return the JSON text Alipay puts in a notify's ``fund_bill_list`` for a balance payment."""
    return json.dumps([{"amount": total_amount, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":"))


def payment_notify_fields(
    *,
    app_id: str,
    seller_id: str,
    out_trade_no: str,
    trade_no: str,
    total_amount: str,
    subject: str,
    buyer_id: str,
    buyer_logon_id: str,
    gmt_create: str,
    gmt_payment: str,
    notify_time: str,
    notify_id: str,
    charset: str = "utf-8",
    trade_status: str = "TRADE_SUCCESS",
) -> dict[str, str]:
    """Return the unsigned fields of a payment notify, complete like a real ``trade_status_sync``."""
    return {
        "notify_time": notify_time,
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": app_id,
        "auth_app_id": app_id,
        "charset": charset,
        "version": "1.0",
        "trade_no": trade_no,
        "out_trade_no": out_trade_no,
        "buyer_id": buyer_id,
        "buyer_logon_id": buyer_logon_id,
        "seller_id": seller_id,
        "trade_status": trade_status,
        "total_amount": total_amount,
        "receipt_amount": total_amount,
        "buyer_pay_amount": total_amount,
        "invoice_amount": total_amount,
        "point_amount": "0.00",
        "subject": subject,
        "gmt_create": gmt_create,
        "gmt_payment": gmt_payment,
        "fund_bill_list": fund_bill_list(total_amount),
    }
