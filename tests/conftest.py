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
        "LOG_LEVEL": "WARNING",
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
