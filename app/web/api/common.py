"""Small helpers shared by the API views: the wallet container, cursors, timestamps."""
from __future__ import annotations

import base64
import binascii
from datetime import datetime

from flask import current_app, request

from ...domain.errors import InvalidInput
from ..inputs import query_number

MAX_ID = 2**63 - 1


def wallet():
    """Return the application's service container."""
    return current_app.extensions["wallet"]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def encode_cursor(value: int | None) -> str | None:
    if value is None:
        return None
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(name: str = "cursor") -> int | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the cursor is not valid", code="invalid_cursor") from exc
    # A cursor is a row id: anything outside a BIGINT id names no row, and the database
    # would refuse to compare with it.
    if not 1 <= value <= MAX_ID:
        raise InvalidInput("the cursor is not valid", code="invalid_cursor")
    return value


def page_limit(default: int = 50, maximum: int = 200) -> int:
    if request.args.get("limit") is None:
        return default
    limit = query_number("limit")
    if limit is None or not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be 1 to {maximum}", code="invalid_limit")
    return limit
