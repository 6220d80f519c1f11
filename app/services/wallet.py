"""What an account holds: the wallet figures and its ledger."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..adapters.db import Database
from ..adapters.db.models import LedgerEntry, LedgerTransaction
from .accounts import existing_account
from .units import SPENDABLE_TOTALS


@dataclass(frozen=True)
class WalletFigures:
    cash_fen: int
    arrears_fen: int
    regular_coupons_fen: int
    discount_coupons_fen: int
    prepaid_cards_fen: int
    invoiceable_fen: int


# Spendable totals of balance units (coupons, prepaid cards): a function per figure name taking
# (session, account_id, now) -> fen. The coupon and card services register theirs.
UNIT_TOTALS: dict[str, object] = dict(SPENDABLE_TOTALS)


def wallet_figures(db: Database, account_id: str, now: datetime) -> WalletFigures:
    """Return the spendable totals of one account now.

    The figures are read from one snapshot: a card bought while they are read moves cash into a
    card, and figures read across that commit would count the money twice (or not at all).
    """
    with db.snapshot() as session:
        account = existing_account(session, account_id)
        totals = {name: fn(session, account_id, now) for name, fn in UNIT_TOTALS.items()}
        return WalletFigures(
            cash_fen=account.cash_fen,
            arrears_fen=account.arrears_fen,
            regular_coupons_fen=totals.get("regular_coupons", 0),
            discount_coupons_fen=totals.get("discount_coupons", 0),
            prepaid_cards_fen=totals.get("prepaid_cards", 0),
            invoiceable_fen=account.invoiceable_fen,
        )


@dataclass(frozen=True)
class LedgerLine:
    id: int
    kind: str
    bucket: str
    unit_id: int | None
    amount_fen: int
    balance_after_fen: int
    reference: str
    memo: str
    created_at: datetime


def ledger_page(
    db: Database, account_id: str, *, before_id: int | None, limit: int
) -> tuple[list[LedgerLine], int | None]:
    """Return one page of an account's entries, newest first, and the cursor of the next."""
    with db.sessions() as session:
        existing_account(session, account_id)
        query = (
            select(LedgerEntry, LedgerTransaction.kind, LedgerTransaction.reference, LedgerTransaction.memo)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.account_id == account_id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit + 1)
        )
        if before_id is not None:
            query = query.where(LedgerEntry.id < before_id)
        rows = session.execute(query).all()
    lines = [
        LedgerLine(
            id=entry.id,
            kind=kind,
            bucket=entry.bucket,
            unit_id=entry.unit_id,
            amount_fen=entry.amount_fen,
            balance_after_fen=entry.balance_after_fen,
            reference=reference,
            memo=memo,
            created_at=entry.created_at,
        )
        for entry, kind, reference, memo in rows[:limit]
    ]
    next_cursor = lines[-1].id if len(rows) > limit else None
    return lines, next_cursor
