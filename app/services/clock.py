"""Time, passed to services so tests can move it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session


class Clock:
    """The real clock: aware UTC now."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def shared_now(self, session: Session) -> datetime:
        """The time every host agrees on, for job leases and schedule slots.

        On PostgreSQL the server's clock: scheduler hosts whose clocks drift apart (or one set
        back) would otherwise each see the others' leases lapsed or their slots not yet due.
        On SQLite this host's clock, which is the database's own.
        """
        if session.get_bind().dialect.name == "postgresql":
            return session.scalar(text("SELECT clock_timestamp()"))
        return self.now()


class FrozenClock(Clock):
    """A clock that stands still until moved; for tests and replays."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def shared_now(self, session: Session) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        self.at = self.at + timedelta(**delta)
