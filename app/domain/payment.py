"""What a verified Alipay notify means for an order: pure decisions, no I/O.

The signature is checked before this (in the adapter); here are the remaining checks of
Alipay's checklist (app_id, seller_id, known order, exact total_amount) and the reading of
``trade_status`` and refund fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from .errors import InvalidMoney
from .money import parse_amount

PAID = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
KNOWN_STATUSES = PAID | {"WAIT_BUYER_PAY", "TRADE_CLOSED"}


class Outcome(str, Enum):
    CREDIT = "credit"  # pay the order's amount into the wallet (once)
    WRONG_APP = "rejected_app_id"
    WRONG_SELLER = "rejected_seller_id"
    UNKNOWN_ORDER = "rejected_unknown_order"
    AMOUNT_MISMATCH = "rejected_amount"
    UNKNOWN_STATUS = "rejected_trade_status"
    REFUND = "refund_recorded"
    NOT_PAID = "not_paid"  # WAIT_BUYER_PAY, or TRADE_CLOSED of an unpaid trade


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    acknowledge: bool  # answer "success" (after the commit)
    needs_review: bool
    detail: str = ""


def _is_refund(params: Mapping[str, str]) -> bool:
    # Payment notifies may carry refund_fee=0.00: compare the value, not the key's presence.
    fee = (params.get("refund_fee") or "").strip()
    if fee:
        try:
            if parse_amount(fee, field="refund_fee", allow_zero=True) > 0:
                return True
        except InvalidMoney:
            return True  # a refund field we cannot read is never a payment
    return bool((params.get("gmt_refund") or "").strip() or (params.get("out_biz_no") or "").strip())


def decide_notify(
    params: Mapping[str, str],
    *,
    our_app_id: str,
    our_seller_id: str | None,
    order_amount_fen: int | None,
) -> Decision:
    """Decide what a signature-verified notify does; ``order_amount_fen`` None: unknown order."""
    if params.get("app_id") != our_app_id:
        return Decision(Outcome.WRONG_APP, False, True, "app_id is not ours")
    if our_seller_id is not None and params.get("seller_id") != our_seller_id:
        return Decision(Outcome.WRONG_SELLER, False, True, "seller_id is not ours")
    if order_amount_fen is None:
        return Decision(Outcome.UNKNOWN_ORDER, False, True, "out_trade_no is not one of ours")
    try:
        total = parse_amount(params.get("total_amount") or "", field="total_amount")
    except InvalidMoney as exc:
        return Decision(Outcome.AMOUNT_MISMATCH, False, True, exc.detail)
    if total != order_amount_fen:
        return Decision(Outcome.AMOUNT_MISMATCH, False, True, "total_amount differs from the order")
    status = params.get("trade_status") or ""
    if status not in KNOWN_STATUSES:
        return Decision(Outcome.UNKNOWN_STATUS, False, True, "trade_status is not known")
    if _is_refund(params):
        # Recorded for finance; it neither credits nor debits the wallet by itself.
        return Decision(Outcome.REFUND, True, True, "refund on Alipay's side")
    if status in PAID:
        return Decision(Outcome.CREDIT, True, False)
    return Decision(Outcome.NOT_PAID, True, False, f"trade_status {status}")
