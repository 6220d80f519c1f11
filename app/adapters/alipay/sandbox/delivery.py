"""Deliver a signed payment notify to the merchant, the way Alipay does (form POST, expect ``success``)."""
from __future__ import annotations

import logging
import secrets
import time

import requests

from ..beijing import format_beijing
from .notify_builder import build_signed_notify, encode_form, payment_notify_fields
from .state import NotifyAttempt, SandboxState, SandboxTrade

logger = logging.getLogger(__name__)


def build_payment_notify(state: SandboxState, trade: SandboxTrade) -> dict[str, str]:
    """Return the complete signed notify for a paid trade, in the charset chosen at payment."""
    return build_signed_notify(
        state.alipay_private_key,
        **payment_notify_fields(
            app_id=state.app_id,
            seller_id=state.seller_id,
            out_trade_no=trade.out_trade_no,
            trade_no=trade.trade_no,
            total_amount=trade.total_amount,
            subject=trade.subject,
            buyer_id=trade.buyer_id,
            buyer_logon_id=trade.buyer_logon_id,
            gmt_create=format_beijing(trade.scanned_at),
            gmt_payment=format_beijing(trade.paid_at),
            notify_time=format_beijing(state.now()),
            # Alipay keeps the notify_id across resends of one notification.
            notify_id=secrets.token_hex(16),
            charset=trade.notify_charset or state.notify_charset,
        ),
    )


def deliver_payment_notify(state: SandboxState, trade: SandboxTrade) -> bool:
    """POST the notify to the trade's notify_url, retrying quickly; return whether it was acknowledged."""
    if not trade.notify_url:
        return False
    notify = build_payment_notify(state, trade)
    body = encode_form(notify, notify["charset"])
    headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={notify['charset']}"}
    post = state.http.post if state.http is not None else requests.post
    for attempt in range(1, state.max_notify_attempts + 1):
        status = text = error = None
        try:
            answer = post(
                trade.notify_url,
                data=body,
                headers=headers,
                timeout=state.notify_timeout,
                allow_redirects=False,  # Alipay does not follow redirects on notify URLs
            )
            status, text = answer.status_code, answer.text[:200]
        except requests.RequestException as exc:
            error = type(exc).__name__
        # Anything but the bare body "success" means "send it again".
        acknowledged = status == 200 and text == "success"
        state.record_attempt(
            NotifyAttempt(
                out_trade_no=trade.out_trade_no,
                notify_id=notify["notify_id"],
                url=trade.notify_url,
                attempt=attempt,
                body=body,
                status_code=status,
                response_text=text,
                error=error,
                acknowledged=acknowledged,
            )
        )
        if acknowledged:
            return True
        logger.info(
            "sandbox notify not acknowledged",
            extra={"out_trade_no": trade.out_trade_no, "attempt": attempt},
        )
        if attempt < state.max_notify_attempts and state.notify_retry_delay > 0:
            time.sleep(state.notify_retry_delay)
    return False
