"""What the finance console lists: Alipay notifies waiting for a person to look at them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..adapters.db import Database
from ..adapters.db.models import AlipayNotification


@dataclass(frozen=True)
class NotifyForReview:
    id: int
    received_at: datetime
    out_trade_no: str | None
    trade_status: str | None
    verified: bool
    outcome: str
    detail: str


def notifies_for_review(db: Database, *, limit: int = 100) -> tuple[list[NotifyForReview], int]:
    """Return the newest notifies needing review (at most ``limit``) and how many there are."""
    with db.sessions() as session:
        total = session.execute(
            select(func.count()).select_from(AlipayNotification).where(AlipayNotification.needs_review)
        ).scalar_one()
        rows = session.execute(
            select(
                AlipayNotification.id,
                AlipayNotification.received_at,
                AlipayNotification.out_trade_no,
                AlipayNotification.trade_status,
                AlipayNotification.verified,
                AlipayNotification.outcome,
                AlipayNotification.detail,
            )
            .where(AlipayNotification.needs_review)
            .order_by(AlipayNotification.received_at.desc(), AlipayNotification.id.desc())
            .limit(limit)
        ).all()
    return [NotifyForReview(*row) for row in rows], int(total)
