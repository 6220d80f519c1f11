"""What is kept of notifies that are not Alipay's: bounded per row, per hour and in time.

Anyone can post to the notify URL. A notify whose signature verifies is kept whole, forever
(it is part of the payment record). One that does not verify, or cannot even be decoded, is
kept for review too, but only so much of it: its first ``notify_unverified_body_bytes`` bytes,
at most ``notify_unverified_per_hour`` rows in any hour (beyond that they are counted and
logged, not stored), and for ``notify_unverified_retention_days`` days.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select

from ..adapters.db import Database
from ..adapters.db.models import AlipayNotification
from .clock import Clock

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
# While the hourly budget is spent, how often a process logs how many it did not store.
REPORT_EVERY = timedelta(minutes=1)
# Rows deleted per transaction by the purge: no long lock, no huge transaction.
PURGE_BATCH = 1000

_notifications = AlipayNotification.__table__


def _unverified():
    # ``needs_review`` first: every unverified row needs review, and that partial index
    # (received_at, id) is what the queries below walk.
    return (_notifications.c.needs_review, ~_notifications.c.verified)


class UnverifiedNotifyBudget:
    """One process's view of the hourly budget of stored unverified notifies.

    The database decides (the rows of the last hour); the process remembers until when the
    budget is known to be spent, so a flood costs no query per request, and counts what it did
    not store.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent_until: datetime | None = None
        self._not_stored = 0
        self._reported_at: datetime | None = None

    def admits(self, connection: Connection, now: datetime, per_hour: int) -> bool:
        """Return whether one more unverified notify may be stored now; count it if not."""
        with self._lock:
            spent = self._spent_until is not None and now < self._spent_until
        if not spent:
            # The per_hour-th newest row of the last hour: while it is inside the window, the
            # budget is spent; it frees a place when that row is an hour old.
            oldest_counted = connection.execute(
                select(_notifications.c.received_at)
                .where(*_unverified(), _notifications.c.received_at > now - WINDOW)
                .order_by(_notifications.c.received_at.desc())
                .limit(1)
                .offset(per_hour - 1)
            ).scalar()
            if oldest_counted is None:
                self._storing_again()
                return True
            with self._lock:
                self._spent_until = oldest_counted + WINDOW
        self._not_storing(now)
        return False

    def _not_storing(self, now: datetime) -> None:
        with self._lock:
            self._not_stored += 1
            if self._reported_at is None:
                self._reported_at = now
                count = None
            elif now - self._reported_at >= REPORT_EVERY:
                self._reported_at, count, self._not_stored = now, self._not_stored, 0
            else:
                return
        if count is None:
            log.warning("unverified notifies over the hourly budget are no longer stored")
        else:
            log.warning("unverified notifies not stored: the hourly budget is spent", extra={"not_stored": count})

    def _storing_again(self) -> None:
        with self._lock:
            if self._reported_at is None:
                return
            count, self._not_stored, self._reported_at = self._not_stored, 0, None
        log.warning("unverified notifies stored again after the hourly budget was spent", extra={"not_stored": count})


def bounded_body(raw_body: bytes, limit: int) -> tuple[bytes, str]:
    """The part of an unverified notify's body that is kept, and a note when it was cut."""
    if len(raw_body) <= limit:
        return raw_body, ""
    return raw_body[:limit], f" (only its first {limit} bytes are kept)"


def purge_unverified_notifies(db: Database, clock: Clock, *, retention_days: int) -> int:
    """Forget unverified notifies received more than ``retention_days`` ago; return how many.

    Only rows whose signature did not verify: no money moved for them. Verified notifies,
    whatever was done with them, are kept.
    """
    cutoff = clock.now() - timedelta(days=retention_days)
    forgotten = 0
    while True:
        with db.engine.begin() as connection:
            ids = (
                connection.execute(
                    select(_notifications.c.id)
                    .where(*_unverified(), _notifications.c.received_at < cutoff)
                    .order_by(_notifications.c.received_at)
                    .limit(PURGE_BATCH)
                )
                .scalars()
                .all()
            )
            if not ids:
                return forgotten
            forgotten += connection.execute(
                delete(_notifications).where(_notifications.c.id.in_(ids), ~_notifications.c.verified)
            ).rowcount
