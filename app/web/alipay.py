"""Alipay's callbacks: the asynchronous notify and the customer's return redirect.

Thin on purpose: take the raw bytes, let the adapter decode and verify them, hand the result
to the idempotent service, answer.
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, redirect, request, url_for

from ..adapters.alipay.notify import (
    MAX_NOTIFY_BYTES,
    NotifyDecodeError,
    decode_notify_body,
    decode_return_query,
    verify_notify,
    verify_return,
)
from ..services import topups
from ..services.unverified_notifies import UnverifiedNotifyBudget

log = logging.getLogger(__name__)
alipay = Blueprint("alipay", __name__, url_prefix="/alipay")
_OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_]{1,64}")


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@alipay.post("/notify")
def notify():
    w = current_app.extensions["wallet"]
    # One byte more than any notify holds is enough to refuse a larger body: the rest is never
    # read into memory.
    raw = _read_at_most(MAX_NOTIFY_BYTES + 1)
    params, verified, decode_error = None, False, None
    try:
        params = decode_notify_body(raw)
        verified = verify_notify(params, w.extras["alipay_public_key"])
    except NotifyDecodeError as exc:
        decode_error = str(exc)[:500]
    charset = (params or {}).get("charset", "")
    try:
        result = topups.handle_alipay_notify(
            w.db,
            w.clock,
            w.settings,
            raw_body=raw[:MAX_NOTIFY_BYTES],
            params=params,
            verified=verified,
            charset=charset,
            decode_error=decode_error,
            budget=_unverified_notify_budget(w),
        )
    except Exception:
        # Not "success": Alipay retries later, and nothing was committed.
        log.exception("notify handling failed", extra={"out_trade_no": (params or {}).get("out_trade_no")})
        return _text("failure", 503)
    if result.acknowledge:
        return _text("success", 200)
    return _text("failure", 400)


def _unverified_notify_budget(w) -> UnverifiedNotifyBudget:
    """This process's memory of the hourly budget of stored unverified notifies."""
    budget = w.extras.get("unverified_notify_budget")
    if budget is None:
        budget = w.extras.setdefault("unverified_notify_budget", UnverifiedNotifyBudget())
    return budget


def _read_at_most(limit: int) -> bytes:
    """The request body's first ``limit`` bytes (a read may return fewer than asked)."""
    chunks, left = [], limit
    while left > 0:
        chunk = request.stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@alipay.get("/return")
def return_redirect():
    """Show the customer our result page; never credit, never redirect elsewhere."""
    w = current_app.extensions["wallet"]
    out_trade_no = None
    try:
        params = decode_return_query(request.query_string)
        if verify_return(params, w.extras["alipay_public_key"]):
            out_trade_no = params.get("out_trade_no")
    except NotifyDecodeError:
        pass
    if out_trade_no and _OUT_TRADE_NO.fullmatch(out_trade_no):
        return redirect(url_for("pages.topup_result", out_trade_no=out_trade_no), code=302)
    return redirect(url_for("pages.topup_result_unknown"), code=302)
