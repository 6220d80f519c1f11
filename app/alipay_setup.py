"""Choose and build the Alipay gateway: the real one, or the local sandbox in development."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from .config import ConfigError, Settings

log = logging.getLogger(__name__)

SANDBOX_PREFIX = "/_sandbox/alipay"


@dataclass
class AlipaySetup:
    gateway: object
    alipay_public_key: object
    sandbox: object | None  # a SandboxState when the local sandbox stands in for Alipay


def _key_file(path: Path) -> str:
    """Return the private key PEM at ``path``, generating it on first use (development only)."""
    from .adapters.alipay.keys import generate_keypair

    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            private_pem, _public_pem = generate_keypair()
            path.write_text(private_pem)
            path.chmod(0o600)
            log.info("generated a development key", extra={"path": str(path)})
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"development key file {str(path)!r} cannot be created or read: {exc.strerror}") from None


def build_alipay(settings: Settings, now=None) -> AlipaySetup:
    """Build the gateway client and load Alipay's public key from the settings."""
    from .adapters.alipay.gateway import HttpAlipayGateway
    from .adapters.alipay.keys import (
        load_alipay_public_key,
        load_app_private_key,
        public_key_pem,
    )

    if not settings.uses_sandbox:
        try:
            private_key = load_app_private_key(settings.alipay_app_private_key)
            public_key = load_alipay_public_key(settings.alipay_public_key)
        except ValueError as exc:
            raise ConfigError(f"Alipay keys: {exc}") from exc
        if public_key.public_numbers() == private_key.public_key().public_numbers():
            # Alipay's answers and notifies would all fail verification: refuse it at start-up.
            raise ConfigError("ALIPAY_PUBLIC_KEY is the app's own public key; it must be Alipay's")
        gateway = HttpAlipayGateway(
            settings.alipay_app_id, private_key, public_key, settings.alipay_gateway_url, now=now
        )
        return AlipaySetup(gateway, public_key, None)

    if settings.is_production:
        raise ConfigError("the local Alipay sandbox cannot be used in production")
    from .adapters.alipay.sandbox import SandboxState

    keys = settings.instance_path / "keys"
    try:
        app_private = load_app_private_key(settings.alipay_app_private_key or _key_file(keys / "app_private.pem"))
        sandbox_private = load_app_private_key(_key_file(keys / "sandbox_alipay_private.pem"))
    except ValueError as exc:
        raise ConfigError(f"Alipay keys: {exc}") from exc
    alipay_public = sandbox_private.public_key()
    sandbox = SandboxState(
        app_id=settings.alipay_app_id,
        app_public_key=public_key_pem(app_private.public_key()),
        return_url=settings.return_url,
        seller_id=settings.alipay_seller_id,
        alipay_private_key=sandbox_private,
        now=now,
    )
    gateway = HttpAlipayGateway(
        settings.alipay_app_id,
        app_private,
        alipay_public,
        settings.public_base_url + SANDBOX_PREFIX + "/gateway.do",
        now=now,
    )
    return AlipaySetup(gateway, alipay_public, sandbox)


def register_alipay(app: Flask) -> None:
    """Attach the gateway to the service container; mount the sandbox where it stands in."""
    wallet = app.extensions["wallet"]
    setup = build_alipay(wallet.settings, now=wallet.clock.now)
    wallet.gateway = setup.gateway
    wallet.extras["alipay_public_key"] = setup.alipay_public_key
    if setup.sandbox is not None:
        from .adapters.alipay.sandbox import create_sandbox_blueprint

        wallet.extras["alipay_sandbox"] = setup.sandbox
        app.register_blueprint(create_sandbox_blueprint(setup.sandbox), url_prefix=SANDBOX_PREFIX)
