"""When a connection to the server last broke, shared by every connection of one ``Database``."""
from __future__ import annotations

import time


class LastBreak:
    """A backend seldom ends alone: a server restart, a failover or an administrator ending the
    database's sessions ends them all. When one connection breaks, those that sat idle since
    before it may be dead as well; each is pinged before its next use (and replaced if it fails),
    as one idle for a while is, instead of failing the next request that gets it.
    """

    def __init__(self) -> None:
        self.at = float("-inf")  # time.monotonic() of the last break

    def note(self) -> None:
        self.at = time.monotonic()

    def since(self, moment: float) -> bool:
        """Whether a connection broke at or after ``moment`` (a ``time.monotonic()`` reading)."""
        return self.at >= moment
