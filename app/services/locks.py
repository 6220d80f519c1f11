"""Row locks for money movements, taken in one fixed order so that no two movements deadlock.

The order: the account row first (``lock_account``), then its coupons by id, then its prepaid
cards by id, then anything else (an API token, an activation code). Every service that changes
an account's balances goes through these helpers. SQLite has no row locks; there each write
transaction holds the database write lock from BEGIN (see ``adapters.db``), which is stricter.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal, select, union_all
from sqlalchemy.orm import Session

from ..adapters.db.models import Account, ApiToken, Coupon, PrepaidCard
from ..domain.deduction import PREPAID_CARD, Unit
from .ledger import lock_account

__all__ = [
    "LockedUnit",
    "lock_account",
    "lock_account_skip_locked",
    "lock_due_units",
    "lock_spendable_units",
    "lock_token",
]


@dataclass
class LockedUnit:
    """A locked coupon or card row as plain values.

    It carries what ``ledger.record`` reads and changes on a unit (``id``, ``account_id``,
    ``balance_fen``), so settlement can post to it without loading ORM objects; the caller
    writes the new balance back (``bills._write_units``).
    """

    bucket: str  # the ledger bucket: coupon | prepaid_card
    source: str  # the deduction source: regular_coupon | discount_coupon | prepaid_card
    id: int
    account_id: str
    balance_fen: int
    valid_from: datetime
    expires_at: datetime
    created_at: datetime

    def as_unit(self) -> Unit:
        return Unit(
            self.source, self.id, self.balance_fen, self.valid_from, self.expires_at, self.created_at
        )


def lock_account_skip_locked(session: Session, account_id: str) -> Account | None:
    """Lock an account row unless another transaction holds it (None then); for batch jobs."""
    return session.execute(
        select(Account).where(Account.id == account_id).with_for_update(skip_locked=True)
    ).scalar_one_or_none()


def lock_spendable_units(
    session: Session, account_id: str, *, now: datetime, coupons: bool = True
) -> list[LockedUnit]:
    """Lock the account's units that can pay now, in one statement: coupons by id, then cards.

    The caller holds the account row lock already. On PostgreSQL each branch is a CTE with its
    own ``FOR UPDATE`` (a UNION cannot carry one), and the append runs them in order.
    """
    branches = []
    if coupons:
        branches.append(
            _spendable(Coupon, account_id, now)
            .add_columns(literal("coupon").label("bucket"), Coupon.kind.label("kind"))
            .cte("locked_coupons")
        )
    branches.append(
        _spendable(PrepaidCard, account_id, now)
        .add_columns(literal("prepaid_card").label("bucket"), literal("card").label("kind"))
        .cte("locked_cards")
    )
    query = union_all(*(select(branch) for branch in branches))
    rows = session.execute(query).all()
    return [
        LockedUnit(
            bucket=row.bucket,
            source=PREPAID_CARD if row.bucket == "prepaid_card" else f"{row.kind}_coupon",
            id=row.id,
            account_id=account_id,
            balance_fen=row.balance_fen,
            valid_from=row.valid_from,
            expires_at=row.expires_at,
            created_at=row.created_at,
        )
        for row in rows
    ]


def _spendable(model, account_id: str, now: datetime):
    return (
        select(model.id, model.balance_fen, model.valid_from, model.expires_at, model.created_at)
        .where(
            model.account_id == account_id,
            model.status == "active",
            model.balance_fen > 0,
            model.valid_from <= now,
            model.expires_at > now,
        )
        .order_by(model.id)
        .with_for_update()
    )


def lock_due_units(session: Session, model, account_id: str, now: datetime) -> list:
    """Claim an account's active units whose window has ended, skipping rows others hold."""
    return list(
        session.execute(
            select(model)
            .where(model.account_id == account_id, model.status == "active", model.expires_at <= now)
            .order_by(model.id)
            .with_for_update(skip_locked=True)
        ).scalars()
    )


def lock_token(session: Session, token_id: int) -> None:
    """Lock an API token's row: serialises what is counted per token (activation guesses)."""
    session.execute(select(ApiToken.id).where(ApiToken.id == token_id).with_for_update())
