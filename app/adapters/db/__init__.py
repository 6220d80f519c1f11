"""The database: engine, session factory and dialect tuning (SQLite and PostgreSQL)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from .breaks import LastBreak
from .dedicated import ThreadConnections

# A pooled connection that sat unused this long is pinged before it is handed out (a server
# restart or an idle timeout kills quiet connections). One that was in use a moment ago is not:
# under load a ping before every transaction would be one more round trip on every request.
# After a connection broke, every connection idle since before the break is pinged too
# (``LastBreak``).
PING_AFTER_IDLE_SECONDS = 5.0

# How a PostgreSQL connection gives up on a server that stopped answering, where the URL says
# nothing else (its own query parameters win): a connection attempt after 10 s; an idle or
# waiting connection whose peer is gone (a host lost, a network cut: no reset ever arrives)
# after about a minute, by TCP keepalives, and one whose sent data goes unacknowledged after
# 60 s. Without them a request or a scheduler job could hang on a dead link for the kernel's
# retransmission limit, about 15 minutes, holding its locks and its job's lease meanwhile.
PG_CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}


class Database:
    """Owns the engine and hands out sessions; services decide when to commit.

    Engines hide bound parameters from their errors: what the service binds includes signed
    notify bodies and bank statement bytes, and errors end up in logged tracebacks.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.last_break = LastBreak()
        if self.is_sqlite:
            self.engine = create_engine(
                url,
                echo=echo,
                hide_parameters=True,
                connect_args={"timeout": 30, "check_same_thread": False},
                # The driver must not open transactions on its own: we issue BEGIN IMMEDIATE.
                isolation_level=None,
            )
            _tune_sqlite(self.engine)
        else:
            self.engine = create_engine(
                with_connection_defaults(url),
                echo=echo,
                hide_parameters=True,
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_recycle=1800,
            )
            _ping_idle_connections(self.engine, self.last_break)
        # Single-statement transactions on hot paths (PostgreSQL): see ``dedicated``.
        self.thread_connections = (
            None
            if self.is_sqlite
            else ThreadConnections(
                self.engine, ping_after_idle=PING_AFTER_IDLE_SECONDS, last_break=self.last_break
            )
        )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session inside one transaction: commit on success, roll back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """Yield a read-only session whose queries all see the database as of the first one.

        For checks that hold one table's figures against another's while money moves: under
        PostgreSQL's default READ COMMITTED each query sees what committed before it began, so a
        credit committed between the sum of the entries and the read of the cached balances
        would look like a difference. A SQLite transaction reads one snapshot already.
        """
        with self.sessions() as session, session.begin():
            if not self.is_sqlite:
                session.connection(
                    execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
                )
            yield session

    def dispose(self) -> None:
        if self.thread_connections is not None:
            self.thread_connections.close_all()
        self.engine.dispose()


def with_connection_defaults(url: str) -> URL:
    """``url`` with ``PG_CONNECTION_DEFAULTS`` added for each parameter it does not set."""
    parsed = make_url(url)
    return parsed.update_query_dict(
        {name: value for name, value in PG_CONNECTION_DEFAULTS.items() if name not in parsed.query}
    )


def _ping_idle_connections(engine: Engine, last_break: LastBreak) -> None:
    """Check a connection on checkout if it has been idle a while, or since before a connection
    broke; the pool replaces a dead one."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "handle_error")
    def _on_error(context):
        if context.is_disconnect:
            last_break.note()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is None:
            return
        if time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS and not last_break.since(idle_since):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - whatever the driver raises, this one is unusable
            # The pool closes this connection and checks out a fresh one.
            raise DisconnectionError("pooled connection failed its ping") from exc


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # SQLite has no row locks: take the write lock at BEGIN so that a read-then-write
    # transaction never meets a stale snapshot (which SQLite answers with SQLITE_BUSY).
    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
