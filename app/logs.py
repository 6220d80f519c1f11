"""Logging: constant messages with structured context appended as key=value."""
from __future__ import annotations

import logging
import time

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class ContextFormatter(logging.Formatter):
    """Append the ``extra=`` context of a record to its message."""

    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = vars(record)
        context = fields.keys() - _STANDARD
        if not context:
            return base
        return base + " " + " ".join(f"{k}={fields[k]!r}" for k in sorted(context))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """The standard ``asctime``, with the date and time of day formatted once per second."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (cached[1], record.msecs)


def configure_logging(level: str) -> None:
    """Send the project's logs to stderr once, at ``level``."""
    # The mt940 package logs every line it cannot match, raw account data included; our reader
    # refuses such files with its own message, so the package's logs add nothing but exposure.
    logging.getLogger("mt940").setLevel(logging.CRITICAL)
    # No format the service or gunicorn uses prints where in the source a call was made, or the
    # multiprocessing process name: records need not look them up (the logging HOWTO's
    # "Optimization" section). That was a third of the CPU of the notify's one INFO line.
    logging._srcfile = None
    logging.logMultiprocessing = False
    root = logging.getLogger("app")
    if getattr(root, "_wallet_configured", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = True
    root._wallet_configured = True
