"""Logging: constant messages with structured context appended as key=value."""
from __future__ import annotations

import logging

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class ContextFormatter(logging.Formatter):
    """Append the ``extra=`` context of a record to its message."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        context = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not context:
            return base
        return base + " " + " ".join(f"{k}={v!r}" for k, v in sorted(context.items()))


def configure_logging(level: str) -> None:
    """Send the project's logs to stderr once, at ``level``."""
    # The mt940 package logs every line it cannot match, raw account data included; our reader
    # refuses such files with its own message, so the package's logs add nothing but exposure.
    logging.getLogger("mt940").setLevel(logging.CRITICAL)
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
