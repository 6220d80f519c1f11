"""Template helpers shared by the pages: money, times in Beijing time, the CSRF field."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Blueprint

from ..domain.money import format_fen
from .page_session import CSRF_FIELD, csrf_token

BEIJING = timezone(timedelta(hours=8))

# What ledger kinds and buckets, bill sources and products are called on the pages; others as written.
LABELS = {
    "topup_alipay": "Alipay top-up",
    "topup_bank": "Bank transfer",
    "topup_bank_reversal": "Bank transfer reversed",
    "bill": "Bill",
    "card_purchase": "Prepaid card purchase",
    "card_grant": "Prepaid card allocated",
    "coupon_grant": "Coupon allocated",
    "expiry": "Expired",
    "cash": "Cash",
    "arrears": "Arrears",
    "coupon": "Coupon",
    "regular_coupon": "Regular coupon",
    "discount_coupon": "Discount coupon",
    "prepaid_card": "Prepaid card",
    "invoiceable": "Invoiceable",
    "cloud_account": "Cloud account",
    "general": "General",
    "sms": "SMS",
    "dial_testing": "Dial testing",
}

page_filters = Blueprint("page_filters", __name__)


@page_filters.app_template_filter("money")
def money(fen: int) -> str:
    """Format fen as ``"100.00"``."""
    return format_fen(fen)


@page_filters.app_template_filter("label")
def label(name: str) -> str:
    """Name a ledger kind or bucket for people."""
    return LABELS.get(name, name.replace("_", " ").capitalize())


@page_filters.app_template_filter("beijing")
def beijing(value: datetime | str | None) -> str:
    """Format an aware datetime (or ISO text) as Beijing time, to the minute."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


@page_filters.app_context_processor
def _csrf():
    return {"csrf_token": csrf_token, "csrf_field": CSRF_FIELD}
