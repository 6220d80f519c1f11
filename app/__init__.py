"""The wallet service: Alipay top-ups, bank transfer reconciliation, coupons, cards, bills."""
from __future__ import annotations

from flask import Flask

from .adapters.db import Database
from .config import ConfigError, Settings, load_settings
from .logs import configure_logging
from .services.clock import Clock
from .services.sessions import PAGE_SESSION_LIFETIME
from .wiring import Wallet


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Flask:
    """Build the application; nothing happens at import time."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder="web/templates",
        static_folder="web/static",
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=PAGE_SESSION_LIFETIME,
        JSON_SORT_KEYS=False,
    )
    from .web.page_session import CookieSessions

    app.session_interface = CookieSessions()
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["wallet"] = Wallet(settings=settings, db=_database(settings), clock=clock or Clock())

    from .alipay_setup import register_alipay
    from .cli import register_cli
    from .web.errors import register_error_handlers
    from .web.routes import register_routes

    register_error_handlers(app)
    register_alipay(app)
    register_routes(app)
    register_cli(app)
    return app


def _database(settings: Settings) -> Database:
    """The database of the settings; a URL that cannot work is a ConfigError naming no value."""
    from sqlalchemy.exc import ArgumentError

    try:
        return Database(settings.database_url)
    except (ArgumentError, ValueError) as exc:  # unparsable (a port that is no number, say), or
        # an unknown dialect or driver name
        raise ConfigError("DATABASE_URL is not a database URL SQLAlchemy can use") from exc
    except ImportError as exc:
        raise ConfigError(f"DATABASE_URL needs a database driver that is not installed ({exc.name})") from exc
