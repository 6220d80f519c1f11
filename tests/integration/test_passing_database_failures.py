"""A database failure that may pass (a broken connection, a lost race, a timeout) is a 503 that
asks for the request again; any other failure stays a 500, and neither says more than it should."""
from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import literal, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.adapters.db import Database
from app.adapters.db.errors import is_passing_failure
from app.services import accounts
from tests.conftest import bearer


def wrapped(orig: BaseException, kind=OperationalError, *, invalidated=False) -> DBAPIError:
    return kind("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.LockNotAvailable("could not obtain lock"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
        psycopg.errors.ConnectionFailure("connection failure"),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        wrapped(psycopg.errors.SerializationFailure("could not serialize access")),
        wrapped(Exception("gone"), DBAPIError, invalidated=True),
        wrapped(sqlite3.OperationalError("database is locked")),
        PoolTimeout("QueuePool limit of size 10 overflow 20 reached"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_failures_that_may_pass(error):
    assert is_passing_failure(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
        psycopg.errors.CheckViolation("new row violates check constraint"),
        psycopg.errors.UndefinedTable('relation "no_such_table" does not exist'),
        psycopg.errors.NumericValueOutOfRange("bigint out of range"),
        wrapped(psycopg.errors.UniqueViolation("duplicate key"), IntegrityError),
        wrapped(psycopg.errors.UndefinedColumn("no such column"), ProgrammingError),
        wrapped(sqlite3.OperationalError("no such table: accounts")),
        wrapped(sqlite3.OperationalError("database table is locked")),
        psycopg.errors.ProtocolViolation("invalid frontend message type"),
        ValueError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_failures_that_will_not(error):
    assert not is_passing_failure(error)


def test_a_passing_database_failure_is_a_503_problem_asking_for_the_request_again(
    client, admin_token, monkeypatch, caplog
):
    def lost(*args, **kwargs):
        raise wrapped(psycopg.errors.SerializationFailure("could not serialize access"))

    monkeypatch.setattr(accounts, "create_account", lost)
    response = client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "guance"}, headers=bearer(admin_token))
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    body = response.get_json()
    assert body["code"] == "database_unavailable"
    assert "serialize" not in body["detail"]  # what the database said stays in the log
    [record] = [r for r in caplog.records if r.name == "app.web.errors"]
    assert (record.levelname, record.reason) == ("WARNING", "could not serialize access")
    assert record.exc_info is None  # a passing failure is no bug: no traceback


def test_any_other_failure_is_still_a_500_with_its_traceback_logged(client, admin_token, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise wrapped(psycopg.errors.UndefinedColumn("column accounts.nme does not exist"), ProgrammingError)

    monkeypatch.setattr(accounts, "create_account", broken)
    response = client.post("/api/v1/accounts", json={"name": "Acme", "settlement": "guance"}, headers=bearer(admin_token))
    assert response.status_code == 500
    assert response.get_json()["code"] == "internal_error"
    assert "Retry-After" not in response.headers
    [record] = [r for r in caplog.records if r.name == "app.web.errors"]
    assert record.levelname == "ERROR" and record.exc_info is not None


@pytest.mark.postgres
def test_a_statement_with_more_parameters_than_postgresql_takes_is_a_bug_not_a_passing_failure(pg_url):
    # libpq refuses it before sending (psycopg's OperationalError without a SQLSTATE, like a
    # broken connection's), and it is refused the same way every time it is sent again.
    db = Database(pg_url)
    try:
        with pytest.raises(DBAPIError) as caught:
            with db.sessions() as session:
                session.execute(select(literal(0)).where(literal(0).in_(list(range(70_000)))))
    finally:
        db.dispose()
    assert "number of parameters" in str(caught.value.orig)
    assert not is_passing_failure(caught.value)
    assert not is_passing_failure(caught.value.orig)
