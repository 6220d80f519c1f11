"""One autocommit driver connection per thread, outside the pool, for single-statement writes.

A statement that is its own transaction (autocommit: atomic, committed durably before the server
answers) needs no pooled connection around it. Checking one out of SQLAlchemy's pool and back in,
switching autocommit on and off, cost more client CPU than running the statement (about 0.1 ms
of 0.25 ms, measured with the notify's credit on PostgreSQL), and the notify runs it on every
credited payment. Each thread that asks gets its own connection, opened on first use and kept
until the thread ends (then it is closed): no other thread ever touches it, so there is nothing
to lock and nothing to reset.

Like the pool, a connection that sat idle a while, or idle since another connection of the
database broke (``LastBreak``), is pinged before use, and one that broke is dropped so that the
thread's next call opens a fresh one. ``close_all`` closes every one of them
(``Database.dispose``).
"""
from __future__ import annotations

import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from sqlalchemy.engine import Engine

from .breaks import LastBreak


class ThreadConnections:
    def __init__(self, engine: Engine, *, ping_after_idle: float, last_break: LastBreak | None = None):
        self._engine = engine
        self._ping_after_idle = ping_after_idle
        self._last_break = last_break if last_break is not None else LastBreak()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[Any] = set()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """Yield this thread's autocommit driver connection; drop it if it breaks meanwhile."""
        connection = self._current()
        try:
            yield connection
        except BaseException:
            # A statement the server refused leaves the connection idle and fit for the next
            # one; anything else (a broken link, or a call interrupted mid-statement) does not.
            if connection.closed or connection.broken or connection.info.transaction_status.name != "IDLE":
                self._drop(connection)
            raise
        finally:
            self._local.idle_since = time.monotonic()

    @contextmanager
    def cursor(self, factory: Callable[[Any], Any]) -> Iterator[Any]:
        """Yield this thread's cursor, made once by ``factory(connection)`` on its connection.

        A statement run again and again needs no new cursor each time (psycopg builds its
        adapters for every new one). A replaced connection gets a new cursor.
        """
        with self.connection() as connection:
            local = self._local
            if getattr(local, "cursor_connection", None) is not connection:
                local.cursor, local.cursor_connection = factory(connection), connection
            yield local.cursor

    def close_all(self) -> None:
        """Close every thread's connection; each thread opens a new one when it next asks."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def _current(self):
        connection = getattr(self._local, "connection", None)
        if connection is not None and (connection.closed or connection.broken):
            self._drop(connection)
            connection = None
        if connection is not None and (
            time.monotonic() - self._local.idle_since >= self._ping_after_idle
            or self._last_break.since(self._local.idle_since)
        ):
            try:
                self._engine.dialect.do_ping(connection)
            except Exception:  # noqa: BLE001 - whatever the driver raises, this one is unusable
                self._drop(connection)
                connection = None
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def _connect(self):
        dialect = self._engine.dialect
        if dialect.server_version_info is None:
            # The engine's first connection initializes the dialect (server version and the
            # features compiled SQL depends on): let the pool make it.
            with self._engine.connect():
                pass
        cargs, cparams = dialect.create_connect_args(self._engine.url)
        connection = dialect.connect(*cargs, **cparams)
        try:
            on_connect = dialect.on_connect()
            if on_connect is not None:
                on_connect(connection)
            connection.autocommit = True
        except BaseException:
            connection.close()
            raise
        with self._lock:
            self._open.add(connection)
        # A thread's locals go when it ends; this token goes with them and closes the connection
        # it leaves behind. Servers that start a thread per request (the development server,
        # other WSGI servers) would otherwise leave one open connection per request served.
        self._local.closer = closer = _ThreadEnd()
        weakref.finalize(closer, self._forget, connection)
        return connection

    def _forget(self, connection) -> None:
        with self._lock:
            self._open.discard(connection)
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - broken or not, nothing is to use it again
            pass

    def _drop(self, connection) -> None:
        if connection.closed or connection.broken:
            self._last_break.note()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        if getattr(self._local, "cursor_connection", None) is connection:
            self._local.cursor = self._local.cursor_connection = None
        self._forget(connection)


class _ThreadEnd:
    """Lives in one thread's locals beside its connection, and only there."""
