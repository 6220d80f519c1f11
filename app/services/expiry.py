"""Expiring coupons and prepaid cards: their remaining balance is forfeited by a ledger entry.

Each unit expires under the key ``expire:<bucket>:<id>``, so it is forfeited once however many
runs overlap. Runs claim accounts with ``SKIP LOCKED`` (a busy account is retried at the end
of the run, waiting then) and keep the lock order: the account row, then its units.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.models import Coupon, PrepaidCard
from . import ledger
from .clock import Clock
from .ledger import Posting
from .locks import lock_account, lock_account_skip_locked, lock_due_units

log = logging.getLogger(__name__)

_UNITS = (("coupon", Coupon), ("prepaid_card", PrepaidCard))


@dataclass
class ExpirySummary:
    coupons: int = 0
    cards: int = 0
    forfeited_fen: int = 0

    def line(self) -> str:
        return (
            f"expired {self.coupons} coupon(s), {self.cards} card(s),"
            f" forfeited {self.forfeited_fen} fen"
        )


def expire_credits(db: Database, clock: Clock) -> ExpirySummary:
    """Expire every active unit whose window has ended, forfeiting its balance once."""
    now = clock.now()
    summary = ExpirySummary()
    with db.sessions() as session:
        account_ids = list(
            session.execute(
                union(
                    *(
                        select(model.account_id).where(
                            model.status == "active", model.expires_at <= now
                        )
                        for _, model in _UNITS
                    )
                )
            ).scalars()
        )
    busy = [
        account_id
        for account_id in account_ids
        if not _expire(db, account_id, now, summary, wait=False)
    ]
    for account_id in busy:
        _expire(db, account_id, now, summary, wait=True)
    if summary.coupons or summary.cards:
        log.info(
            "credits expired",
            extra={
                "coupons": summary.coupons,
                "cards": summary.cards,
                "forfeited_fen": summary.forfeited_fen,
            },
        )
    return summary


def _expire(
    db: Database, account_id: str, now: datetime, summary: ExpirySummary, *, wait: bool
) -> bool:
    """Expire one account's due units in one transaction; False when skipped as busy."""
    found = ExpirySummary()
    try:
        with db.transaction() as session:
            if wait:
                account = lock_account(session, account_id)
            else:
                account = lock_account_skip_locked(session, account_id)
                if account is None:
                    return False
            _expire_account(session, account, now, found)
    except ledger.AlreadyRecorded:
        # The status is checked under the row lock, so this means a hand-made entry: report it.
        log.error("expiry already recorded for an active unit", extra={"account_id": account_id})
        return True
    summary.coupons += found.coupons
    summary.cards += found.cards
    summary.forfeited_fen += found.forfeited_fen
    return True


def _expire_account(session: Session, account, now: datetime, summary: ExpirySummary) -> None:
    for bucket, model in _UNITS:
        for unit in lock_due_units(session, model, account.id, now):
            forfeited = unit.balance_fen
            ledger.record(
                session,
                account,
                key=f"expire:{bucket}:{unit.id}",
                kind="expiry",
                postings=[Posting(bucket, -forfeited, unit)],
                now=now,
                reference=f"{bucket}:{unit.id}",
                memo="validity ended; remaining balance forfeited",
            )
            unit.status = "expired"
            summary.forfeited_fen += forfeited
            if bucket == "coupon":
                summary.coupons += 1
            else:
                summary.cards += 1
