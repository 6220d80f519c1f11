"""The append-only ledger: every balance change is an entry under a unique idempotency key.

The unique key on ``ledger_transactions`` is what makes a credit happen once; the account row
lock only keeps the cached balances consistent with the entries.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..adapters.db.models import UNIT_MODELS, Account, LedgerEntry, LedgerTransaction
from ..domain.errors import InsufficientFunds, NotFound
from ..domain.topup import TopupSplit, split_topup

log = logging.getLogger(__name__)

ACCOUNT_BUCKETS = {"cash": "cash_fen", "arrears": "arrears_fen", "invoiceable": "invoiceable_fen"}


class AlreadyRecorded(Exception):
    """A movement with this idempotency key exists already."""


@dataclass(frozen=True)
class Posting:
    """One signed change: ``unit`` is the coupon or prepaid card row for unit buckets."""

    bucket: str
    amount_fen: int
    unit: object | None = field(default=None, compare=False)


def lock_account(session: Session, account_id: str) -> Account:
    """Load an account and lock its row until the transaction ends."""
    account = session.execute(
        select(Account).where(Account.id == account_id).with_for_update()
    ).scalar_one_or_none()
    if account is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    return account


def is_recorded(session: Session, key: str) -> bool:
    """Tell whether a movement with idempotency ``key`` has been recorded."""
    return (
        session.execute(
            select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == key)
        ).first()
        is not None
    )


def record(
    session: Session,
    account: Account,
    *,
    key: str,
    kind: str,
    postings: list[Posting],
    now: datetime,
    reference: str = "",
    memo: str = "",
    actor: str = "",
) -> LedgerTransaction:
    """Write one money movement: its transaction row, its entries and the cached balances.

    The caller holds the account's row lock (``lock_account``) and the units' locks. Raises
    ``AlreadyRecorded`` when ``key`` was used before; the caller's transaction must then be
    rolled back, since the flush failed inside it.
    """
    txn = LedgerTransaction(
        idempotency_key=key,
        account_id=account.id,
        kind=kind,
        reference=reference,
        memo=memo,
        actor=actor,
        created_at=now,
    )
    session.add(txn)
    try:
        with session.begin_nested():
            session.flush([txn])
    except IntegrityError as exc:
        raise AlreadyRecorded(key) from exc

    entries = []
    for index, posting in enumerate(p for p in postings if p.amount_fen):
        balance_after = _apply(account, posting)
        unit_id = getattr(posting.unit, "id", None)
        entries.append(
            LedgerEntry(
                transaction_id=txn.id,
                idempotency_key=f"{key}/{index}:{posting.bucket}"
                + (f":{unit_id}" if unit_id is not None else ""),
                account_id=account.id,
                bucket=posting.bucket,
                unit_id=unit_id,
                amount_fen=posting.amount_fen,
                balance_after_fen=balance_after,
                created_at=now,
            )
        )
    session.add_all(entries)
    return txn


def _apply(account: Account, posting: Posting) -> int:
    if posting.bucket in ACCOUNT_BUCKETS:
        if posting.unit is not None:
            raise ValueError(f"bucket {posting.bucket} takes no unit")
        attr = ACCOUNT_BUCKETS[posting.bucket]
        new = getattr(account, attr) + posting.amount_fen
        if new < 0:
            raise InsufficientFunds(f"{posting.bucket} would go below zero")
        setattr(account, attr, new)
        return new
    if posting.bucket not in UNIT_MODELS or posting.unit is None:
        raise ValueError(f"bucket {posting.bucket} needs a unit")
    if posting.unit.account_id != account.id:
        raise ValueError("a unit moves only on its own account")
    new = posting.unit.balance_fen + posting.amount_fen
    if new < 0:
        raise InsufficientFunds(f"{posting.bucket} {posting.unit.id} would go below zero")
    posting.unit.balance_fen = new
    return new


def credit_topup(
    session: Session,
    account: Account,
    *,
    amount_fen: int,
    key: str,
    kind: str,
    now: datetime,
    reference: str = "",
    memo: str = "",
    actor: str = "",
) -> TopupSplit:
    """Credit a top-up: arrears are paid off first (and become invoiceable), the rest is cash."""
    split = split_topup(amount_fen, account.arrears_fen)
    record(
        session,
        account,
        key=key,
        kind=kind,
        now=now,
        reference=reference,
        memo=memo,
        actor=actor,
        postings=[
            Posting("arrears", -split.arrears_paid_fen),
            Posting("invoiceable", split.arrears_paid_fen),
            Posting("cash", split.cash_fen),
        ],
    )
    return split


@dataclass(frozen=True)
class Difference:
    account_id: str
    bucket: str
    unit_id: int | None
    cached_fen: int
    ledger_fen: int


def verify(session: Session) -> list[Difference]:
    """Compare every cached balance with the sum of its ledger entries."""
    sums: dict[tuple[str, str, int | None], int] = {}
    rows = session.execute(
        select(
            LedgerEntry.account_id,
            LedgerEntry.bucket,
            LedgerEntry.unit_id,
            func.sum(LedgerEntry.amount_fen),
        ).group_by(LedgerEntry.account_id, LedgerEntry.bucket, LedgerEntry.unit_id)
    )
    for account_id, bucket, unit_id, total in rows:
        sums[(account_id, bucket, unit_id)] = int(total or 0)

    differences = []
    for account in session.execute(select(Account)).scalars():
        for bucket, attr in ACCOUNT_BUCKETS.items():
            cached = getattr(account, attr)
            ledger = sums.pop((account.id, bucket, None), 0)
            if cached != ledger:
                differences.append(Difference(account.id, bucket, None, cached, ledger))
    for bucket, model in UNIT_MODELS.items():
        for unit in session.execute(select(model)).scalars():
            ledger = sums.pop((unit.account_id, bucket, unit.id), 0)
            if unit.balance_fen != ledger:
                differences.append(
                    Difference(unit.account_id, bucket, unit.id, unit.balance_fen, ledger)
                )
    # Entries whose balance holder does not exist at all.
    for (account_id, bucket, unit_id), total in sums.items():
        if total:
            differences.append(Difference(account_id, bucket, unit_id, 0, total))
    return differences
