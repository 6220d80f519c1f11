"""Ledger rows for set-based writers: what ``ledger.record`` writes, as plain row dicts.

The settlement hot path cannot afford the ORM flush (and the savepoint) of ``ledger.record``,
so it writes the same rows itself: one ``ledger_transactions`` row under the movement's key,
one entry per non-zero posting with the same entry keys and running ``balance_after_fen``, and
the new cached balances. A test holds this module and ``ledger.record`` to the same output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update

from ..adapters.db.fastpath import Prepared, PreparedRows
from ..adapters.db.models import Account, LedgerEntry, LedgerTransaction
from ..domain.errors import InsufficientFunds
from ..domain.money import check_balance
from .ledger import ACCOUNT_BUCKETS

_txns = LedgerTransaction.__table__
_accounts = Account.__table__

INSERT_TRANSACTION = Prepared(
    insert(_txns),
    columns=["idempotency_key", "account_id", "kind", "reference", "memo", "actor", "created_at"],
)
# Entries find their transaction by its key, so they can be queued right behind it.
INSERT_ENTRIES = PreparedRows(
    LedgerEntry.__table__,
    [
        "idempotency_key",
        "account_id",
        "bucket",
        "unit_id",
        "amount_fen",
        "balance_after_fen",
        "created_at",
    ],
    shared={
        "transaction_id": select(_txns.c.id)
        .where(_txns.c.idempotency_key == bindparam("transaction_key"))
        .scalar_subquery()
    },
)
UPDATE_ACCOUNT_BALANCES = Prepared(
    update(_accounts)
    .where(_accounts.c.id == bindparam("account"))
    .values(
        cash_fen=bindparam("cash"),
        arrears_fen=bindparam("arrears"),
        invoiceable_fen=bindparam("invoiceable"),
    )
)


@dataclass
class Movement:
    """One ledger transaction being built against known balances."""

    key: str
    account_id: str
    kind: str
    now: datetime
    balances: dict[str, int]  # cash, arrears, invoiceable: the locked account's current values
    reference: str = ""
    memo: str = ""
    actor: str = ""
    entries: list[dict] = field(default_factory=list)
    changed: bool = False

    def post(self, bucket: str, amount_fen: int, unit=None) -> None:
        """Add one signed change; ``unit`` (with ``id`` and ``balance_fen``) for unit buckets."""
        if not amount_fen:
            return
        if unit is None:
            if bucket not in ACCOUNT_BUCKETS:
                raise ValueError(f"bucket {bucket} needs a unit")
            new = check_balance(self.balances[bucket] + amount_fen, bucket)
            if new < 0:
                raise InsufficientFunds(f"{bucket} would go below zero")
            self.balances[bucket] = new
            self.changed = True
            suffix = ""
        else:
            new = unit.balance_fen + amount_fen
            if new < 0:
                raise InsufficientFunds(f"{bucket} {unit.id} would go below zero")
            unit.balance_fen = new
            suffix = f":{unit.id}"
        self.entries.append(
            {
                "idempotency_key": f"{self.key}/{len(self.entries)}:{bucket}{suffix}",
                "account_id": self.account_id,
                "bucket": bucket,
                "unit_id": unit.id if unit is not None else None,
                "amount_fen": amount_fen,
                "balance_after_fen": new,
                "created_at": self.now,
            }
        )

    def write(self, tx) -> None:
        """Queue the transaction row, its entries and the account's new balances on ``tx``."""
        tx.write(
            INSERT_TRANSACTION,
            {
                "idempotency_key": self.key,
                "account_id": self.account_id,
                "kind": self.kind,
                "reference": self.reference,
                "memo": self.memo,
                "actor": self.actor,
                "created_at": self.now,
            },
        )
        tx.insert_rows(INSERT_ENTRIES, self.entries, transaction_key=self.key)
        if self.changed:
            tx.write(UPDATE_ACCOUNT_BALANCES, {"account": self.account_id, **self.balances})
