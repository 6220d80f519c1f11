"""Remittance codes: what a customer writes in a bank transfer's memo.

A code is eight body characters and one check character, all from a 32-symbol alphabet
without 0/O and 1/I, so it reads aloud and copies by hand without confusion. The check
character follows ISO 7064's hybrid system generalised to radix 32 (MOD 33,32): every single
wrong character and most swaps of neighbours are detected. A check character detects typos;
it never corrects them.
"""
from __future__ import annotations

import secrets
import unicodedata

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
RADIX = len(ALPHABET)  # 32; the modulus RADIX + 1 = 33 is odd, so doubling stays a bijection
BODY_LENGTH = 8
CODE_LENGTH = BODY_LENGTH + 1
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}


def _check_value(body: str) -> int:
    product = RADIX
    for ch in body:
        total = (product + _VALUE[ch]) % RADIX or RADIX
        product = (total * 2) % (RADIX + 1)
    # The check value c makes (product + c) % RADIX == 1.
    return (1 - product) % RADIX


def check_character(body: str) -> str:
    """Return the check character for ``body`` (characters of ``ALPHABET``)."""
    return ALPHABET[_check_value(body)]


def generate_code() -> str:
    """Return a new random remittance code, check character included."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return body + check_character(body)


def is_valid(code: str) -> bool:
    """Tell whether ``code`` (already normalised) is well formed and its check character fits."""
    if len(code) != CODE_LENGTH or any(ch not in _VALUE for ch in code):
        return False
    return check_character(code[:-1]) == code[-1]


# Separators people put inside a code: spaces, hyphens and dashes, underscores.
SEPARATORS = " \t\r\n-_\u2010\u2011\u2012\u2013\u2014\u2212"
_SEPARATORS = str.maketrans("", "", SEPARATORS)


def normalize_text(text: str) -> str:
    """Fold full-width characters and case, and drop spaces and hyphens, for code search."""
    # str.translate drops the separators in C: the reconciler folds every memo it reads.
    return unicodedata.normalize("NFKC", text).upper().translate(_SEPARATORS)


def display(code: str) -> str:
    """Group a code for people: ``ABCD-EFGH-J``."""
    return f"{code[:4]}-{code[4:8]}-{code[8:]}"
