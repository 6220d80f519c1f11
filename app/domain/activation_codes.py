"""Coupon activation codes: generated at random, normalised as people type them, hashed with a key.

Codes use an alphabet without 0/O, 1/I/L and U/V look-alikes and are grouped ``XXXX-XXXX-...``
for reading. Sixteen symbols of 29 carry about 77 bits, beyond guessing under a rate limit.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
LENGTH = 16
GROUP = 4
_SEPARATORS = " \t\r\n-_\u2010\u2011\u2012\u2013\u2014\u2212\u3000"


def generate_code() -> str:
    """Return a new random code, grouped for display."""
    return _group("".join(secrets.choice(ALPHABET) for _ in range(LENGTH)))


def derive_code(key: bytes, seed: str) -> str:
    """Return the code derived from ``seed`` under ``key``: replays of one request repeat it."""
    number = int.from_bytes(hmac.new(key, seed.encode("utf-8"), hashlib.sha256).digest(), "big")
    symbols = []
    for _ in range(LENGTH):
        number, index = divmod(number, len(ALPHABET))
        symbols.append(ALPHABET[index])
    return _group("".join(symbols))


def normalize_code(text: str) -> str:
    """Fold full-width characters and case and drop spaces and hyphens, as people type codes."""
    folded = unicodedata.normalize("NFKC", text).upper()
    return "".join(ch for ch in folded if ch not in _SEPARATORS)


def hash_code(key: bytes, code: str) -> str:
    """Return the keyed hash under which a code is stored: HMAC-SHA256 of its normal form, hex."""
    return hmac.new(key, normalize_code(code).encode("utf-8"), hashlib.sha256).hexdigest()


def _group(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))
