"""Time, passed to services so tests can move it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


class Clock:
    """The real clock: aware UTC now."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FrozenClock(Clock):
    """A clock that stands still until moved; for tests and replays."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        self.at = self.at + timedelta(**delta)
