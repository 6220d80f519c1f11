"""The service container each entrypoint reaches through ``app.extensions['wallet']``."""
from __future__ import annotations

from dataclasses import dataclass, field

from .adapters.db import Database
from .config import Settings
from .services.clock import Clock


@dataclass
class Wallet:
    settings: Settings
    db: Database
    clock: Clock
    gateway: object | None = None  # an AlipayGateway
    extras: dict = field(default_factory=dict)
