"""The cloud marketplace account that pays what a cloud-settled bill's own sources do not.

``CloudMarketplace`` is the interface settlement calls inside its transaction. The recording
implementation writes the charge to ``cloud_charges`` in that same transaction, so a charge
exists exactly when its bill does; a real marketplace client plugs in later by shipping the
recorded charges (an outbox), never by calling out while the account's rows are locked.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import insert

from .db.fastpath import FastTransaction, Prepared
from .db.models import CloudCharge

INSERT_CHARGE = Prepared(
    insert(CloudCharge.__table__),
    columns=["bill_id", "account_id", "amount_fen", "status", "created_at"],
)


class CloudMarketplace(Protocol):
    def charge(
        self, tx: FastTransaction, *, account_id: str, bill_id: str, amount_fen: int, now: datetime
    ) -> None:
        """Charge ``amount_fen`` of bill ``bill_id`` to the account's cloud marketplace account."""


class RecordingCloudMarketplace:
    """Record each charge in ``cloud_charges``; the bill id is unique there."""

    def charge(
        self, tx: FastTransaction, *, account_id: str, bill_id: str, amount_fen: int, now: datetime
    ) -> None:
        tx.write(
            INSERT_CHARGE,
            {
                "bill_id": bill_id,
                "account_id": account_id,
                "amount_fen": amount_fen,
                "status": "recorded",
                "created_at": now,
            },
        )
