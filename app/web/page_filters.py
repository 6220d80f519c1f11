"""Template helpers shared by the pages: money, times in Beijing time, the CSRF field."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Blueprint

from ..domain.money import format_fen
from .page_session import CSRF_FIELD, csrf_token

BEIJING = timezone(timedelta(hours=8))

page_filters = Blueprint("page_filters", __name__)


@page_filters.app_template_filter("money")
def money(fen: int) -> str:
    """Format fen as ``"100.00"``."""
    return format_fen(fen)


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
