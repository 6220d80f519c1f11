"""Unguessable public identifiers."""
from __future__ import annotations

import secrets
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def random_id(prefix: str, length: int = 16) -> str:
    """Return ``prefix_`` followed by ``length`` random base32 characters."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_out_trade_no(now: datetime) -> str:
    """Return a merchant order number: sortable by date, unguessable, at most 64 characters."""
    return "T" + now.strftime("%Y%m%d%H%M%S") + "".join(
        secrets.choice(_ALPHABET) for _ in range(20)
    ).upper()
