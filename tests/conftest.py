"""Shared fixtures: databases (SQLite always, PostgreSQL when present), apps and clients.

PostgreSQL tests skip with a visible reason when no server answers, unless
``WALLET_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.adapters.db.migrate import upgrade
from app.adapters.db.models import Base
from app.adapters.db.scratch import create_database, drop_database
from app.config import load_settings
from app.services.clock import FrozenClock

PG_SERVER_URL = os.environ.get(
    "WALLET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("WALLET_REQUIRE_POSTGRES") == "1"
START = datetime(2026, 11, 26, 4, 0, tzinfo=timezone.utc)


def _pg_unavailable_reason() -> str | None:
    try:
        engine = create_engine(PG_SERVER_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means no server for the tests
        return f"PostgreSQL not reachable at {PG_SERVER_URL.split('@')[-1]}: {type(exc).__name__}"


@pytest.fixture(scope="session")
def pg_template_url():
    """A fresh, migrated PostgreSQL database for this test session."""
    reason = _pg_unavailable_reason()
    if reason:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (WALLET_REQUIRE_POSTGRES=1): {reason}")
        pytest.skip(reason)
    name, url = create_database(PG_SERVER_URL, "wallet_test")
    upgrade(url)
    yield url
    drop_database(PG_SERVER_URL, name)


def _truncate_pg(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied for each test (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path) -> str:
    path = tmp_path / "wallet.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(pg_template_url) -> str:
    _truncate_pg(pg_template_url)
    return pg_template_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings_env(tmp_path) -> dict:
    """Environment for a test app; tests add or override keys before ``app`` is built."""
    return {
        "APP_ENV": "test",
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "PUBLIC_BASE_URL": "http://wallet.test",
        "STATEMENT_INBOX": str(tmp_path / "inbox"),
        # Everything the app logs reaches the secrets guard (log_secrets, below).
        "LOG_LEVEL": "DEBUG",
    }


@pytest.fixture(scope="session")
def dev_keys() -> dict[str, str]:
    """RSA keys for the app and the sandbox's "Alipay", generated once per test session."""
    from app.adapters.alipay.keys import generate_keypair

    app_private, app_public = generate_keypair()
    alipay_private, alipay_public = generate_keypair()
    return {
        "app_private": app_private,
        "app_public": app_public,
        "alipay_private": alipay_private,
        "alipay_public": alipay_public,
    }


@pytest.fixture
def make_app(tmp_path, clock, settings_env, dev_keys):
    """Build an app on a database URL (and optional extra environment)."""
    apps = []
    keys = tmp_path / "instance" / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "app_private.pem").write_text(dev_keys["app_private"])
    (keys / "sandbox_alipay_private.pem").write_text(dev_keys["alipay_private"])

    def _make(database_url: str, **env):
        merged = dict(settings_env, DATABASE_URL=database_url, **env)
        settings = load_settings(merged, instance_path=tmp_path / "instance")
        application = create_app(settings, clock=clock)
        application.testing = True
        apps.append(application)
        return application

    yield _make
    for application in apps:
        application.extensions["wallet"].db.dispose()


@pytest.fixture
def app(make_app, db_url):
    return make_app(db_url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def wallet(app):
    return app.extensions["wallet"]


@pytest.fixture
def admin_token(wallet) -> str:
    from app.services.tokens import create_token

    return create_token(wallet.db, wallet.clock, role="admin")


@pytest.fixture
def token_for(wallet):
    """Create a token of a role (and account) and return it."""
    from app.services.tokens import create_token

    def _token(role: str, account_id: str | None = None) -> str:
        return create_token(wallet.db, wallet.clock, role=role, account_id=account_id)

    return _token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def new_account(client, admin_token):
    """Create an account over the API and return its JSON."""

    def _new(name: str = "Acme", settlement: str = "guance") -> dict:
        response = client.post(
            "/api/v1/accounts", json={"name": name, "settlement": settlement}, headers=bearer(admin_token)
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    return _new


def _forward_to(app):
    """A ``responses`` callback handing an outgoing HTTP request to ``app``'s test client."""
    from urllib.parse import urlsplit

    def callback(prepared):
        parts = urlsplit(prepared.url)
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        response = app.test_client().open(
            parts.path,
            base_url=f"{parts.scheme}://{parts.netloc}",
            method=prepared.method,
            query_string=parts.query,
            data=body,
            headers={k: v for k, v in prepared.headers.items() if k.lower() != "content-length"},
        )
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length",)}
        return response.status_code, headers, response.get_data()

    return callback


@pytest.fixture
def alipay_http(app):
    """Route every outgoing request to http://wallet.test into the app (gateway and sandbox).

    The real gateway client (SDK-signed requests) meets the sandbox's gateway, and the sandbox's
    notifies meet our notify endpoint, without any network.
    """
    import re

    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST"):
            mock.add_callback(method, re.compile(r"http://wallet\.test/.*"), callback=_forward_to(app))
        yield mock


@pytest.fixture
def sandbox(wallet):
    return wallet.extras["alipay_sandbox"]


# --- Secrets never reach logs ---------------------------------------------------------------
#
# Every test runs with every logger at DEBUG (the app's own through LOG_LEVEL above) and a handler
# on the root logger that formats each record as the service prints it (``ContextFormatter``:
# message, ``extra=`` fields, traceback). When the test ends, the output must not hold any secret
# value the test made: API tokens, page session ids, CSRF tokens, session cookies, SECRET_KEY,
# database passwords, activation codes, private keys (any PEM private key at all); nor, at INFO
# or above, a notify's signature, which only a whole raw notify body or its fields would carry.
#
# The values are recorded where the code makes them, not by each fixture, so a test that calls
# ``create_token`` or issues codes by itself is covered as well. SQLAlchemy's own loggers stay
# at WARNING: at INFO they are the statement echo, which the service never turns on and whose
# bound parameters its engines hide (tests/integration/test_log_secrets.py).
#
# A test that has to log a secret-like value on purpose says so for that one value:
# ``log_secrets.allow(value, "why")``. Nothing turns the guard off: a fixture of the same name
# elsewhere, or a test that detaches the handler, fails the test.
import logging as _logging
import re as _re
import sys as _sys

from app.logs import ContextFormatter as _ContextFormatter

_GUARD_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MIN_SECRET_LENGTH = 12
_PEM_PRIVATE_KEY = _re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# Loggers whose DEBUG and INFO records are not what the service ever emits (see above).
_QUIET_LOGGERS = ("sqlalchemy",)


class LogSecrets:
    """The secret values one test made, and the log lines it produced."""

    def __init__(self, always: dict[str, str]):
        self.values: dict[str, str] = dict(always)  # value -> what it is
        self.notify_signatures: dict[str, str] = {}
        self.allowed: dict[str, str] = {}
        self.lines: list[tuple[int, str, str]] = []  # (level, logger, formatted record)

    def add(self, value, what: str) -> None:
        """Remember ``value`` as a secret of this test (values shorter than 12 characters are
        too common to look for)."""
        if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
            self.values.setdefault(value, what)

    def allow(self, value: str, reason: str) -> None:
        """Let this test log ``value``, for ``reason``."""
        assert reason.strip(), "say why the value may be logged"
        self.allowed[value] = reason

    def leaks(self) -> list[str]:
        found = []
        for level, name, line in self.lines:
            if _PEM_PRIVATE_KEY.search(line):
                found.append(f"a PEM private key in a {_logging.getLevelName(level)} record of {name}")
            for value, what in self.values.items():
                if value in line and value not in self.allowed:
                    found.append(f"{what} in a {_logging.getLevelName(level)} record of {name}: {_masked(line, value)}")
            if level >= _logging.INFO:
                for value, what in self.notify_signatures.items():
                    if value in line and value not in self.allowed:
                        found.append(f"{what} in a {_logging.getLevelName(level)} record of {name}: {_masked(line, value)}")
        return found


def _masked(line: str, value: str) -> str:
    return line.replace(value, "<" + "*" * 8 + ">")[:600]


class _CaptureHandler(_logging.Handler):
    def __init__(self, secrets_of_test: LogSecrets):
        super().__init__(_logging.DEBUG)
        self.secrets_of_test = secrets_of_test
        self.setFormatter(_ContextFormatter(_GUARD_FORMAT))

    def emit(self, record: _logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # noqa: BLE001 - a record that cannot be formatted is its own failure
            line = f"unformattable record {record.msg!r}: {exc!r}"
        self.secrets_of_test.lines.append((record.levelno, record.name, line))


_current_log_secrets: LogSecrets | None = None
_session_secrets: dict[str, str] = {}


def _remember(value, what: str) -> None:
    current = _current_log_secrets
    if current is not None:
        current.add(value, what)


def _record_secrets_where_they_are_made() -> None:
    """Wrap the few functions that make secrets so that each value made is remembered."""
    import secrets

    import app.adapters.alipay.sandbox.notify_builder as notify_builder
    import app.config as config
    import app.domain.activation_codes as activation_codes
    from app.adapters.db import Database
    from werkzeug.sansio.response import Response

    if getattr(secrets.token_urlsafe, "remembers_secrets", False):
        return  # this file imported again as a module (``from tests.conftest import ...``)
    token_urlsafe = secrets.token_urlsafe
    makers = {
        "app.services.tokens": "an API token",
        "app.services.sessions": "a page session id",
        "app.web.page_session": "a CSRF token",
        "app.config": "a generated SECRET_KEY",
    }

    def remembered_token_urlsafe(nbytes=None):
        value = token_urlsafe(nbytes)
        what = makers.get(_sys._getframe(1).f_globals.get("__name__"))
        if what is not None:
            _remember(value, what)
        return value

    group = activation_codes._group

    def remembered_code(code):
        _remember(code, "an activation code")
        grouped = group(code)
        _remember(grouped, "an activation code")
        return grouped

    secret_key = config._secret_key

    def remembered_secret_key(*args, **kwargs):
        value = secret_key(*args, **kwargs)
        _remember(value, "SECRET_KEY")
        return value

    database_init = Database.__init__

    def remembered_database_password(self, url, *args, **kwargs):
        from sqlalchemy.engine import make_url

        try:
            _remember(make_url(url).password, "the database password")
        except Exception:  # noqa: BLE001 - Database itself says what is wrong with the URL
            pass
        database_init(self, url, *args, **kwargs)

    set_cookie = Response.set_cookie

    def remembered_cookie(self, key, value="", *args, **kwargs):
        if key == "session":
            _remember(value, "the session cookie")
        return set_cookie(self, key, value, *args, **kwargs)

    sign = notify_builder.sign

    def remembered_notify_signature(*args, **kwargs):
        value = sign(*args, **kwargs)
        current = _current_log_secrets
        if current is not None and isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
            current.notify_signatures.setdefault(value, "a notify's sign (a raw notify body)")
        return value

    remembered_token_urlsafe.remembers_secrets = True
    secrets.token_urlsafe = remembered_token_urlsafe
    activation_codes._group = remembered_code
    config._secret_key = remembered_secret_key
    Database.__init__ = remembered_database_password
    Response.set_cookie = remembered_cookie
    notify_builder.sign = remembered_notify_signature


_record_secrets_where_they_are_made()


@pytest.fixture(autouse=True)
def log_secrets(request):
    """Fail the test when a secret value it made appears in any log record it emitted."""
    global _current_log_secrets
    found = LogSecrets(_session_secrets)
    root = _logging.getLogger()
    handler = _CaptureHandler(found)
    quiet = {name: _logging.getLogger(name).level for name in _QUIET_LOGGERS}
    level = root.level
    for name in quiet:
        _logging.getLogger(name).setLevel(_logging.WARNING)
    root.setLevel(_logging.DEBUG)
    root.addHandler(handler)
    _current_log_secrets = found
    try:
        yield found
    finally:
        _current_log_secrets = None
        attached = handler in root.handlers
        root.removeHandler(handler)
        root.setLevel(level)
        for name, old in quiet.items():
            _logging.getLogger(name).setLevel(old)
    assert attached, "the test removed the log capture of the secrets guard"
    leaks = found.leaks()
    if leaks:
        pytest.fail("secret values reached the logs:\n" + "\n".join(dict.fromkeys(leaks)), pytrace=False)


_LOG_SECRETS_FIXTURE = log_secrets


@pytest.fixture(scope="session", autouse=True)
def _private_keys_are_secrets(dev_keys):
    """The test keys' private PEM text, line by line: a key logged in part is a leak too."""
    for name in ("app_private", "alipay_private"):
        for line in dev_keys[name].splitlines():
            if len(line) >= 40 and not line.startswith("-----"):
                _session_secrets[line] = f"the {name} key"


def pytest_collection_modifyitems(items):
    """Refuse to run with the secrets guard replaced: a fixture of the same name would do it."""
    for item in items:
        fixtureinfo = getattr(item, "_fixtureinfo", None)
        if fixtureinfo is None:
            continue
        definitions = fixtureinfo.name2fixturedefs.get("log_secrets")
        if not definitions or definitions[-1].func is not _LOG_SECRETS_FIXTURE.__wrapped__:
            raise pytest.UsageError(f"{item.nodeid}: the log_secrets fixture of tests/conftest.py is replaced")
