"""Transactions for hot paths: prepared Core statements in few round trips.

On PostgreSQL (psycopg 3) the statements run in psycopg's pipeline mode: a read waits for its
rows, but writes are queued and travel together with the COMMIT, so a transaction costs one
round trip per read plus one for all of its writes. The SQL is compiled once per statement from
SQLAlchemy Core; parameters go to the driver as they are, so they must be driver-ready (aware
datetimes, ints, strings), and rows come back as plain tuples. On SQLite (no network to save)
the same statements run one by one through SQLAlchemy.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.exc import IntegrityError

from . import Database


class DuplicateKey(Exception):
    """A write met a unique constraint: the row exists already. The transaction was rolled back."""


class Prepared:
    """A Core statement compiled once per dialect; ``columns`` names an INSERT's columns."""

    def __init__(self, statement, *, columns: Sequence[str] | None = None):
        self.statement = statement
        self.columns = list(columns) if columns is not None else None
        self._compiled: dict[str, object] = {}

    def compiled(self, dialect):
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self.statement.compile(
                dialect=dialect,
                column_keys=self.columns,
                # An INSERT compiled for many rows carries no implicit RETURNING.
                for_executemany=self.columns is not None,
            )
            self._compiled[dialect.name] = compiled
        return compiled


class PreparedRows:
    """A multi-row INSERT of ``columns``: one statement (compiled once) per row count.

    ``shared`` gives columns a SQL expression common to every row, whose bind parameters are
    passed once (for example a parent row found by its key).
    """

    def __init__(self, table: Table, columns: Sequence[str], *, shared: dict | None = None):
        self.table = table
        self.columns = list(columns)
        self.shared = shared or {}
        self._by_count: dict[int, Prepared] = {}

    def for_rows(self, rows: list[dict], shared_params: dict) -> tuple[Prepared, dict]:
        """Return the statement for ``len(rows)`` rows and its flattened parameters."""
        count = len(rows)
        prepared = self._by_count.get(count)
        if prepared is None:
            values = [
                {
                    **{
                        column: bindparam(f"{column}_{index}", type_=self.table.c[column].type)
                        for column in self.columns
                    },
                    **self.shared,
                }
                for index in range(count)
            ]
            prepared = self._by_count[count] = Prepared(insert(self.table).values(values))
        params = dict(shared_params)
        for index, row in enumerate(rows):
            for column in self.columns:
                params[f"{column}_{index}"] = row[column]
        return prepared, params


class FastTransaction:
    """What a hot path may do inside ``fast_transaction``: read rows, write rows."""

    def rows(self, prepared: Prepared, params: dict) -> list[tuple]:
        return self.rows_together((prepared, params))[0]

    def rows_together(self, *queries: tuple[Prepared, dict]) -> list[list[tuple]]:
        """Run reads in order and return the rows of each; on PostgreSQL in one round trip."""
        raise NotImplementedError

    def write(self, prepared: Prepared, params: dict | list[dict]) -> None:
        raise NotImplementedError

    def insert_rows(self, prepared: PreparedRows, rows: list[dict], **shared_params) -> None:
        """Insert ``rows`` with one statement."""
        if rows:
            self.write(*prepared.for_rows(rows, shared_params))


class _Pipelined(FastTransaction):
    def __init__(self, driver_connection, dialect):
        self._driver = driver_connection
        self._cursor = driver_connection.cursor()
        self._dialect = dialect

    def rows_together(self, *queries):
        cursors = []
        for prepared, params in queries:
            compiled = prepared.compiled(self._dialect)
            # A cursor per read: each keeps its own result while the pipeline runs them all.
            cursor = self._driver.cursor()
            cursor.execute(compiled.string, compiled.construct_params(params))
            cursors.append(cursor)
        return [cursor.fetchall() for cursor in cursors]

    def write(self, prepared, params):
        compiled = prepared.compiled(self._dialect)
        if isinstance(params, list):
            if params:
                self._cursor.executemany(
                    compiled.string, [compiled.construct_params(p) for p in params]
                )
        else:
            self._cursor.execute(compiled.string, compiled.construct_params(params))


class _Plain(FastTransaction):
    def __init__(self, connection):
        self._connection = connection

    def rows_together(self, *queries):
        return [
            [tuple(row) for row in self._connection.execute(prepared.statement, params)]
            for prepared, params in queries
        ]

    def write(self, prepared, params):
        if isinstance(params, list) and not params:
            return
        self._connection.execute(prepared.statement, params)


@contextmanager
def fast_transaction(db: Database) -> Iterator[FastTransaction]:
    """Run one transaction: commit when the block ends, roll back when it raises.

    A unique violation anywhere in it (often seen only at COMMIT on PostgreSQL, where writes
    are queued) is raised as ``DuplicateKey``.
    """
    if db.is_sqlite or db.engine.dialect.driver != "psycopg":
        with _plain_transaction(db) as tx:
            yield tx
        return
    # The pool's connection without SQLAlchemy's Connection around it: nothing here uses it.
    pooled = db.engine.raw_connection()
    driver = pooled.driver_connection
    try:
        with driver.pipeline():
            yield _Pipelined(driver, db.engine.dialect)
            driver.commit()
    except BaseException as exc:
        try:
            driver.rollback()
        except Exception:  # noqa: BLE001 - a broken connection must not hide the error
            # SQLAlchemy does not see this connection's errors: tell the pool, and the other
            # connections idle since now, what it would have been told.
            pooled.invalidate()
            db.last_break.note()
        if _is_unique_violation(exc):
            raise DuplicateKey(str(exc)) from exc
        raise
    finally:
        pooled.close()


@contextmanager
def _plain_transaction(db: Database) -> Iterator[FastTransaction]:
    try:
        with db.engine.begin() as connection:
            yield _Plain(connection)
    except IntegrityError as exc:
        if _is_unique_violation(exc.orig):
            raise DuplicateKey(str(exc.orig)) from exc
        raise


def _is_unique_violation(error) -> bool:
    # psycopg: SQLSTATE 23505; sqlite3: "UNIQUE constraint failed".
    return getattr(error, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(error)
