"""Configuration, read from the environment in this one place."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PRODUCTION = "production"
# Every other environment is for local runs, tests and benchmarks, and allows the development
# conveniences (generated keys, the Alipay sandbox). A name outside this list is refused rather
# than taken for one of them: "prod" or "staging" must not quietly start the sandbox.
APP_ENVS = (PRODUCTION, "development", "test", "benchmark")
SANDBOX_GATEWAY = "sandbox"
# The app id the sandbox and development runs use: a placeholder no Alipay account has.
SANDBOX_APP_ID = "2021000000000000"
MIN_SECRET_KEY_LENGTH = 32
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Alipay keeps a QR order payable for at most 15 days.
MAX_TOPUP_EXPIRY_MINUTES = 15 * 24 * 60
MAX_TOPUP_QUERY_INTERVAL_SECONDS = 24 * 60 * 60
MAX_CARD_VALIDITY_DAYS = 100 * 366
# A notify body is at most 64 KiB (app.adapters.alipay.notify.MAX_NOTIFY_BYTES).
MAX_NOTIFY_BODY_BYTES = 64 * 1024
MAX_NOTIFIES_PER_HOUR = 10_000_000
MAX_RETENTION_DAYS = 100 * 366


class ConfigError(RuntimeError):
    """The configuration cannot run; the message names what is missing, never a value."""


@dataclass(frozen=True)
class DiscountTier:
    threshold_fen: int
    coupon_fen: int


DEFAULT_DISCOUNT_TIERS = (
    DiscountTier(10_000_00, 1_000_00),
    DiscountTier(30_000_00, 5_000_00),
    DiscountTier(100_000_00, 20_000_00),
)


@dataclass(frozen=True)
class Settings:
    env: str
    instance_path: Path
    # Secrets stay out of the repr, which tracebacks with locals and error reports print.
    database_url: str = field(repr=False)  # may carry the database password
    secret_key: str = field(repr=False)
    public_base_url: str
    alipay_app_id: str
    alipay_app_private_key: str | None = field(repr=False)  # PEM text or path; None: the sandbox's generated key
    alipay_public_key: str | None  # PEM, bare base64 or path; None: the sandbox's key
    alipay_gateway_url: str  # a URL, or SANDBOX_GATEWAY for the local sandbox
    alipay_seller_id: str | None
    statement_inbox: Path
    bank_account_name: str
    bank_account_number: str
    bank_name: str
    topup_expiry_minutes: int = 15
    topup_query_min_interval_seconds: int = 5
    prepaid_card_validity_days: int | None = None  # None: one calendar year
    discount_tiers: tuple[DiscountTier, ...] = DEFAULT_DISCOUNT_TIERS
    log_level: str = "INFO"
    # Notifies whose signature does not verify (or that cannot be decoded) are kept for review
    # with at most this much of their body, at most this many an hour, for this many days.
    # Verified notifies are always kept whole, and never purged.
    notify_unverified_body_bytes: int = 8 * 1024
    notify_unverified_per_hour: int = 1000
    notify_unverified_retention_days: int = 90
    # Job runs and failed coupon activations older than this are forgotten.
    operations_retention_days: int = 90
    extra: dict = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == PRODUCTION

    @property
    def uses_sandbox(self) -> bool:
        return self.alipay_gateway_url == SANDBOX_GATEWAY

    @property
    def notify_url(self) -> str:
        return self.public_base_url + "/alipay/notify"

    @property
    def return_url(self) -> str:
        return self.public_base_url + "/alipay/return"


def _parse_tiers(text: str) -> tuple[DiscountTier, ...]:
    """Parse ``"10000:1000,30000:5000"`` (yuan) into tiers sorted by threshold."""
    from .domain.money import parse_amount

    tiers = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        threshold, _, coupon = part.partition(":")
        tiers.append(DiscountTier(parse_amount(threshold.strip()), parse_amount(coupon.strip())))
    return tuple(sorted(tiers, key=lambda t: t.threshold_fen))


def _int(env: dict, name: str, default: int, *, maximum: int) -> int:
    value = _optional_int(env, name, maximum=maximum)
    return default if value is None else value


def _optional_int(env: dict, name: str, *, maximum: int) -> int | None:
    """A positive whole number of ASCII digits, at most ``maximum``; None when unset.

    The bound keeps every instant reckoned from it inside what a datetime holds: a card
    valid for millions of days or an order open for millennia would fail at the first
    purchase or top-up instead of at start-up.
    """
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    # ASCII digits only: int() would also read "1_000", "١٥" and "-5".
    if not (raw.isascii() and raw.isdigit()) or not raw.strip("0"):
        raise ConfigError(f"{name} must be a positive whole number")
    if len(raw) > 20 or int(raw) > maximum:
        raise ConfigError(f"{name} must be at most {maximum}")
    return int(raw)


def _https_url_naming_a_host(value: str) -> bool:
    """Whether ``value`` is ``https://`` followed by a host name (and optionally a port and path)."""
    parts = urlsplit(value.strip())
    if not value.startswith("https://") or not parts.hostname or any(ch.isspace() for ch in value.strip()):
        return False
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return True


def _secret_key(env: dict, instance: Path, production: bool) -> str:
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    if production:
        raise ConfigError("SECRET_KEY is required in production")
    path = instance / "secret_key"
    try:
        if not path.exists():
            instance.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"the instance folder {str(instance)!r} cannot hold the secret key: {exc.strerror}") from None


def load_settings(env: dict | None = None, *, instance_path: str | Path | None = None) -> Settings:
    """Build the settings from ``env`` (default ``os.environ``); refuse unsafe production ones."""
    env = dict(os.environ if env is None else env)
    app_env = env.get("APP_ENV", "development").strip().lower()
    if app_env not in APP_ENVS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(APP_ENVS)}, not {app_env!r}")
    production = app_env == PRODUCTION
    instance = Path(instance_path or env.get("INSTANCE_PATH") or Path.cwd() / "instance").resolve()

    if production:
        missing = [
            name
            for name in (
                "DATABASE_URL",
                "SECRET_KEY",
                "PUBLIC_BASE_URL",
                "ALIPAY_APP_ID",
                "ALIPAY_APP_PRIVATE_KEY",
                "ALIPAY_PUBLIC_KEY",
                "ALIPAY_GATEWAY_URL",
            )
            if not (env.get(name) or "").strip()
        ]
        if missing:
            raise ConfigError("production needs " + ", ".join(missing))
        if len(env["SECRET_KEY"].strip()) < MIN_SECRET_KEY_LENGTH:
            # It signs page sessions: a placeholder or a short key lets sessions be forged.
            raise ConfigError(
                f"SECRET_KEY must be a random string of at least {MIN_SECRET_KEY_LENGTH} characters in production"
            )
        if env["ALIPAY_APP_ID"].strip() == SANDBOX_APP_ID:
            # The example file's placeholder, left as it was: every precreate would be refused.
            raise ConfigError("ALIPAY_APP_ID is the sandbox's placeholder; production needs our Alipay app id")
        if env["ALIPAY_GATEWAY_URL"].strip().lower() == SANDBOX_GATEWAY:
            raise ConfigError("the local Alipay sandbox cannot be used in production")
        if not _https_url_naming_a_host(env["ALIPAY_GATEWAY_URL"]):
            raise ConfigError("ALIPAY_GATEWAY_URL must be an https URL naming a host in production")
        if not _https_url_naming_a_host(env["PUBLIC_BASE_URL"]):
            # Alipay posts notifies there and browsers carry session cookies: never plain http,
            # and never a URL without a host, which no notify could reach.
            raise ConfigError("PUBLIC_BASE_URL must be an https URL naming a host in production")

    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'wallet.sqlite3'}"
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]

    gateway = (env.get("ALIPAY_GATEWAY_URL") or SANDBOX_GATEWAY).strip()
    if gateway.lower() == SANDBOX_GATEWAY:
        gateway = SANDBOX_GATEWAY
    public_base_url = (env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").strip().rstrip("/")
    if "?" in public_base_url or "#" in public_base_url:
        raise ConfigError("PUBLIC_BASE_URL must not carry a query string or fragment")

    tiers = DEFAULT_DISCOUNT_TIERS
    if env.get("DISCOUNT_TIERS"):
        try:
            tiers = _parse_tiers(env["DISCOUNT_TIERS"])
        except Exception as exc:  # noqa: BLE001 - any parse problem is a config problem
            raise ConfigError("DISCOUNT_TIERS must look like 10000:1000,30000:5000") from exc

    log_level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL must be one of " + ", ".join(LOG_LEVELS))

    return Settings(
        env=app_env,
        instance_path=instance,
        database_url=database_url,
        secret_key=_secret_key(env, instance, production),
        public_base_url=public_base_url,
        alipay_app_id=env.get("ALIPAY_APP_ID") or SANDBOX_APP_ID,
        alipay_app_private_key=env.get("ALIPAY_APP_PRIVATE_KEY") or None,
        alipay_public_key=env.get("ALIPAY_PUBLIC_KEY") or None,
        alipay_gateway_url=gateway,
        alipay_seller_id=env.get("ALIPAY_SELLER_ID") or None,
        statement_inbox=Path(env.get("STATEMENT_INBOX") or instance / "inbox"),
        bank_account_name=env.get("BANK_ACCOUNT_NAME") or "Example Cloud Technology Co., Ltd.",
        bank_account_number=env.get("BANK_ACCOUNT_NUMBER") or "1001 2345 6789 0000 123",
        bank_name=env.get("BANK_NAME") or "Industrial and Commercial Bank of China, Shanghai Branch",
        topup_expiry_minutes=_int(env, "TOPUP_EXPIRY_MINUTES", 15, maximum=MAX_TOPUP_EXPIRY_MINUTES),
        topup_query_min_interval_seconds=_int(
            env, "TOPUP_QUERY_MIN_INTERVAL_SECONDS", 5, maximum=MAX_TOPUP_QUERY_INTERVAL_SECONDS
        ),
        prepaid_card_validity_days=_optional_int(
            env, "PREPAID_CARD_VALIDITY_DAYS", maximum=MAX_CARD_VALIDITY_DAYS
        ),
        discount_tiers=tiers,
        log_level=log_level,
        notify_unverified_body_bytes=_int(
            env, "NOTIFY_UNVERIFIED_BODY_BYTES", 8 * 1024, maximum=MAX_NOTIFY_BODY_BYTES
        ),
        notify_unverified_per_hour=_int(env, "NOTIFY_UNVERIFIED_PER_HOUR", 1000, maximum=MAX_NOTIFIES_PER_HOUR),
        notify_unverified_retention_days=_int(
            env, "NOTIFY_UNVERIFIED_RETENTION_DAYS", 90, maximum=MAX_RETENTION_DAYS
        ),
        operations_retention_days=_int(env, "OPERATIONS_RETENTION_DAYS", 90, maximum=MAX_RETENTION_DAYS),
    )
