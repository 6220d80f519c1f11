"""Row locks for money movements, taken in one fixed order so that no two movements deadlock.

The order: the account row first, then its coupons by id, then its prepaid cards by id, then
anything else (an API token, an activation code). Every service that changes an account's
balances goes through these helpers: ``lock_account`` (an ORM session) or, on the settlement
hot path, ``LOCK_BILLED_ACCOUNT`` then ``LOCK_UNITS``/``LOCK_CARDS`` (prepared statements, sent
together and run in that order). SQLite
has no row locks; there each write transaction holds the database write lock from BEGIN (see
``adapters.db``), which is stricter.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, literal_column, select, union_all
from sqlalchemy.orm import Session

from ..adapters.db.fastpath import Prepared
from ..adapters.db.models import Account, ApiToken, Bill, Coupon, PrepaidCard, Workspace
from ..domain.deduction import PREPAID_CARD, Unit
from .ledger import lock_account

__all__ = [
    "LOCK_BILLED_ACCOUNT",
    "LOCK_CARDS",
    "LOCK_UNITS",
    "LockedUnit",
    "lock_account",
    "lock_account_skip_locked",
    "lock_due_units",
    "lock_token",
    "locked_units",
]


@dataclass
class LockedUnit:
    """A locked coupon or card row as plain values, for set-based writers."""

    bucket: str  # the ledger bucket: coupon | prepaid_card
    source: str  # the deduction source: regular_coupon | discount_coupon | prepaid_card
    id: int
    balance_fen: int
    valid_from: datetime
    expires_at: datetime
    created_at: datetime

    def as_unit(self) -> Unit:
        return Unit(
            self.source, self.id, self.balance_fen, self.valid_from, self.expires_at, self.created_at
        )


_accounts = Account.__table__

# The account a workspace bills to, locked, with what an earlier settlement of the bill left
# (its request hash and result, or NULLs): one round trip before anything else is locked.
LOCK_BILLED_ACCOUNT = Prepared(
    select(
        _accounts.c.id,
        _accounts.c.settlement,
        _accounts.c.cash_fen,
        _accounts.c.arrears_fen,
        _accounts.c.invoiceable_fen,
        select(Bill.request_hash).where(Bill.bill_id == bindparam("bill_id")).scalar_subquery(),
        select(Bill.result).where(Bill.bill_id == bindparam("bill_id")).scalar_subquery(),
    )
    .where(
        _accounts.c.id
        == select(Workspace.account_id)
        .where(Workspace.id == bindparam("workspace_id"))
        .scalar_subquery()
    )
    .with_for_update(of=_accounts)
)


def _spendable(model, bucket: str):
    """Lock the account's units that can pay at ``now``, by id."""
    table = model.__table__
    kind = table.c.kind if bucket == "coupon" else literal_column("'card'")
    now = bindparam("now", type_=table.c.valid_from.type)
    return (
        select(
            literal_column(f"'{bucket}'").label("bucket"),
            kind.label("kind"),
            table.c.id,
            table.c.balance_fen,
            table.c.valid_from,
            table.c.expires_at,
            table.c.created_at,
        )
        .where(
            # The account by its workspace, so this can be sent along with LOCK_BILLED_ACCOUNT.
            table.c.account_id
            == select(Workspace.account_id)
            .where(Workspace.id == bindparam("workspace_id"))
            .scalar_subquery(),
            table.c.status == literal_column("'active'"),
            table.c.balance_fen > 0,
            table.c.valid_from <= now,
            table.c.expires_at > now,
        )
        .order_by(table.c.id)
        .with_for_update()
    )


# Coupons, then cards, in one statement. A UNION cannot carry FOR UPDATE, so on PostgreSQL each
# branch is a CTE with its own; the append runs them in order.
LOCK_UNITS = Prepared(
    union_all(
        select(_spendable(Coupon, "coupon").cte("locked_coupons")),
        select(_spendable(PrepaidCard, "prepaid_card").cte("locked_cards")),
    )
)
LOCK_CARDS = Prepared(select(_spendable(PrepaidCard, "prepaid_card").cte("locked_cards")))


def locked_units(rows) -> list[LockedUnit]:
    """Turn the rows of ``LOCK_UNITS``/``LOCK_CARDS`` into units."""
    return [
        LockedUnit(
            bucket,
            PREPAID_CARD if bucket == "prepaid_card" else f"{kind}_coupon",
            unit_id,
            balance,
            valid_from,
            expires_at,
            created_at,
        )
        for bucket, kind, unit_id, balance, valid_from, expires_at, created_at in rows
    ]


def lock_account_skip_locked(session: Session, account_id: str) -> Account | None:
    """Lock an account row unless another transaction holds it (None then); for batch jobs."""
    return session.execute(
        select(Account).where(Account.id == account_id).with_for_update(skip_locked=True)
    ).scalar_one_or_none()


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
