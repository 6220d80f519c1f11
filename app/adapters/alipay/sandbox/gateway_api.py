"""The sandbox's ``gateway.do``: check a request like Alipay does and answer like Alipay does.

Answers are ``{"<method>_response": {...}, "sign": "..."}`` where the signature covers the raw
text of the response value, with slashes escaped as ``\\/`` the way Alipay's serialiser writes
them, so clients that re-serialise the JSON before verifying fail here as they would in
production. ``error_response`` answers (unknown method or app) are unsigned, like Alipay's.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta

from app.domain.errors import InvalidMoney
from app.domain.money import format_fen, parse_amount

from ..beijing import format_beijing, parse_beijing
from ..response import response_key
from ..signing import SIGN_TYPE, request_sign_content, sign, verify
from .notify_builder import fund_bill_list
from .state import TRADE_SUCCESS, SandboxRefusal, SandboxState, parse_relative_timeout

SUPPORTED_METHODS = ("alipay.trade.precreate", "alipay.trade.query", "alipay.trade.close")
# Alipay refuses requests whose timestamp is too far from its clock.
MAX_CLOCK_SKEW = timedelta(minutes=15)


def handle_gateway_request(
    state: SandboxState, params: Mapping[str, str], qr_url_for: Callable[[str], str]
) -> str:
    """Answer one ``gateway.do`` request with the response text Alipay would send."""
    method = params.get("method", "")
    if not method:
        return _error_response("40001", "Missing Required Arguments", "isv.missing-method", "缺少方法名参数")
    if method not in SUPPORTED_METHODS:
        return _error_response("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
    if params.get("app_id") != state.app_id:
        return _error_response("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
    refusal = _check_envelope(state, params)
    if refusal is not None:
        return _signed(state, method, _failure(*refusal))
    try:
        biz = json.loads(params.get("biz_content", ""))
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        return _signed(state, method, _failure("40002", "isv.invalid-biz-content", "业务参数格式错误"))
    try:
        if method == "alipay.trade.precreate":
            payload = _precreate(state, params, biz, qr_url_for)
        elif method == "alipay.trade.query":
            payload = _query(state, biz)
        else:
            payload = _close(state, biz)
    except SandboxRefusal as refusal_:
        payload = {
            "code": "40004",
            "msg": "Business Failed",
            "sub_code": refusal_.sub_code,
            "sub_msg": refusal_.sub_msg,
        }
    return _signed(state, method, payload)


def _check_envelope(state: SandboxState, params: Mapping[str, str]) -> tuple[str, str, str] | None:
    """Return (code, sub_code, sub_msg) for a request Alipay would refuse before reading it."""
    if params.get("charset", "utf-8").lower() != "utf-8":
        return "40002", "isv.invalid-charset", "字符集错误"  # the sandbox speaks UTF-8 only
    if params.get("version") != "1.0":
        return "40002", "isv.invalid-version", "版本号错误"
    signature = params.get("sign")
    if not signature:
        return "40001", "isv.missing-signature", "缺少签名参数"
    if params.get("sign_type") != SIGN_TYPE:
        return "40002", "isv.invalid-signature-type", "无效的签名类型"
    if not verify(state.app_public_key, request_sign_content(params), signature, "utf-8"):
        return "40002", "isv.invalid-signature", "验签出错"
    try:
        sent_at = parse_beijing(params.get("timestamp", ""))
    except ValueError:
        return "40002", "isv.invalid-timestamp", "非法的时间戳参数"
    if abs(state.now() - sent_at) > MAX_CLOCK_SKEW:
        # The classic mistake this catches: sending the server's local time instead of Beijing time.
        return "40002", "isv.invalid-timestamp", "非法的时间戳参数"
    return None


def _precreate(state: SandboxState, params: Mapping[str, str], biz: dict, qr_url_for) -> dict:
    out_trade_no = biz.get("out_trade_no")
    subject = biz.get("subject")
    if not isinstance(out_trade_no, str) or not 0 < len(out_trade_no) <= 64:
        raise SandboxRefusal("ACQ.INVALID_PARAMETER", "参数无效: out_trade_no")
    if not isinstance(subject, str) or not subject:
        raise SandboxRefusal("ACQ.INVALID_PARAMETER", "参数无效: subject")
    try:
        amount_fen = parse_amount(biz.get("total_amount"), field="total_amount")
    except InvalidMoney:
        raise SandboxRefusal("ACQ.INVALID_PARAMETER", "参数无效: total_amount") from None
    time_expire = relative = None
    if biz.get("time_expire"):
        try:
            time_expire = parse_beijing(biz["time_expire"])
        except ValueError:
            raise SandboxRefusal("ACQ.INVALID_PARAMETER", "参数无效: time_expire") from None
    elif biz.get("timeout_express"):
        relative = parse_relative_timeout(str(biz["timeout_express"]))
        if relative is None:
            raise SandboxRefusal("ACQ.INVALID_PARAMETER", "参数无效: timeout_express")
    trade = state.precreate(
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        total_amount=format_fen(amount_fen),
        subject=subject,
        notify_url=params.get("notify_url") or None,
        time_expire=time_expire,
        relative_timeout=relative,
    )
    return {
        "code": "10000",
        "msg": "Success",
        "out_trade_no": out_trade_no,
        "qr_code": qr_url_for(trade.token),
    }


def _query(state: SandboxState, biz: dict) -> dict:
    trade = state.query(_text(biz, "out_trade_no"), _text(biz, "trade_no"))
    paid = trade.status == TRADE_SUCCESS
    payload = {
        "code": "10000",
        "msg": "Success",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_logon_id": trade.buyer_logon_id,
        "buyer_user_id": trade.buyer_id,
        "trade_status": trade.status,
        "total_amount": trade.total_amount,
        "buyer_pay_amount": trade.total_amount if paid else "0.00",
        "invoice_amount": trade.total_amount if paid else "0.00",
        "receipt_amount": trade.total_amount if paid else "0.00",
        "point_amount": "0.00",
    }
    if paid:
        payload["send_pay_date"] = format_beijing(trade.paid_at)
        payload["fund_bill_list"] = json.loads(fund_bill_list(trade.total_amount))
        # Alipay's query names the channel fund_channel, its notify fundChannel.
        for bill in payload["fund_bill_list"]:
            bill["fund_channel"] = bill.pop("fundChannel")
    return payload


def _close(state: SandboxState, biz: dict) -> dict:
    trade = state.close(_text(biz, "out_trade_no"), _text(biz, "trade_no"))
    return {"code": "10000", "msg": "Success", "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}


def _text(biz: dict, key: str) -> str | None:
    value = biz.get(key)
    return value if isinstance(value, str) and value else None


def _failure(code: str, sub_code: str, sub_msg: str) -> dict:
    msg = "Missing Required Arguments" if code == "40001" else "Invalid Arguments"
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


def _response_text(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")


def _signed(state: SandboxState, method: str, payload: dict) -> str:
    raw = _response_text(payload)
    signature = sign(state.alipay_private_key, raw, "utf-8")
    return '{"%s":%s,"sign":"%s"}' % (response_key(method), raw, signature)


def _error_response(code: str, msg: str, sub_code: str, sub_msg: str) -> str:
    body = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}
    return '{"error_response":%s}' % _response_text(body)

