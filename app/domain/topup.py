"""How a top-up is split: arrears are paid off first, the rest becomes cash."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopupSplit:
    arrears_paid_fen: int
    cash_fen: int


def split_topup(amount_fen: int, arrears_fen: int) -> TopupSplit:
    """Split a top-up of ``amount_fen`` against the arrears owed."""
    if amount_fen <= 0:
        raise ValueError("a top-up is positive")
    paid = min(amount_fen, max(arrears_fen, 0))
    return TopupSplit(arrears_paid_fen=paid, cash_fen=amount_fen - paid)
