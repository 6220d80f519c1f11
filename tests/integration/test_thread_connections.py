"""Per-thread autocommit connections (PostgreSQL): one per thread, kept, replaced when broken."""
import threading
import time

import psycopg
import pytest
from sqlalchemy import create_engine, text

from app.adapters.db import Database
from app.adapters.db.dedicated import ThreadConnections

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_url):
    database = Database(pg_url)
    yield database
    database.dispose()


def backend_pid(connections: ThreadConnections) -> int:
    with connections.connection() as connection:
        return connection.execute("SELECT pg_backend_pid()").fetchone()[0]


def terminate(pg_url: str, pid: int) -> None:
    admin = create_engine(pg_url)
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


def test_a_thread_keeps_its_connection_and_other_threads_get_their_own(db):
    connections = db.thread_connections
    mine = {backend_pid(connections) for _ in range(3)}
    assert len(mine) == 1

    theirs = []
    all_open, done = threading.Barrier(4, timeout=10), threading.Event()

    def other_thread():
        theirs.append(backend_pid(connections))
        all_open.wait()
        done.wait(10)

    threads = [threading.Thread(target=other_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    all_open.wait()
    assert len(set(theirs)) == 3 and not mine & set(theirs)
    assert connections.open_count == 4
    done.set()
    for thread in threads:
        thread.join()


def test_connections_are_outside_the_pool_and_commit_each_statement(db):
    with db.engine.begin() as setup:
        setup.execute(text("CREATE TABLE thread_conn_probe (n int)"))
    try:
        with db.thread_connections.connection() as connection:
            connection.execute("INSERT INTO thread_conn_probe VALUES (1)")
        assert db.engine.pool.checkedout() == 0
        # Committed as soon as the statement returned: another session sees it.
        with db.engine.connect() as other:
            assert other.execute(text("SELECT count(*) FROM thread_conn_probe")).scalar() == 1
    finally:
        with db.engine.begin() as cleanup:
            cleanup.execute(text("DROP TABLE thread_conn_probe"))


def test_a_failed_statement_keeps_a_healthy_connection(db):
    connections = db.thread_connections
    pid = backend_pid(connections)
    with pytest.raises(psycopg.errors.DivisionByZero):
        with connections.connection() as connection:
            connection.execute("SELECT 1 / 0")
    assert backend_pid(connections) == pid


@pytest.fixture
def pinging_after(db):
    """Thread connections on ``db``'s engine that ping after the given idle seconds."""
    made = []

    def make(seconds: float) -> ThreadConnections:
        made.append(ThreadConnections(db.engine, ping_after_idle=seconds))
        return made[-1]

    yield make
    for connections in made:
        connections.close_all()


def test_a_connection_killed_while_idle_is_replaced_after_its_ping(pg_url, pinging_after):
    connections = pinging_after(0.0)
    pid = backend_pid(connections)
    terminate(pg_url, pid)
    # Idle long enough to be pinged: the dead connection is noticed and replaced unseen.
    assert backend_pid(connections) != pid
    assert connections.open_count == 1


def test_a_connection_that_breaks_in_use_fails_that_call_and_the_next_call_reconnects(pg_url, pinging_after):
    connections = pinging_after(3600.0)
    pid = backend_pid(connections)
    terminate(pg_url, pid)
    with pytest.raises(psycopg.OperationalError):
        backend_pid(connections)
    assert connections.open_count == 0
    assert backend_pid(connections) not in (pid, None)
    assert connections.open_count == 1


def test_close_all_closes_every_thread_connection_and_they_reopen_on_demand(db):
    connections = db.thread_connections
    with connections.connection() as connection:
        pass
    opened, closed = threading.Event(), threading.Event()

    def other_thread():
        backend_pid(connections)
        opened.set()
        closed.wait(10)

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert opened.wait(10)
    assert connections.open_count == 2
    connections.close_all()
    closed.set()
    thread.join()
    assert connections.open_count == 0 and connection.closed
    backend_pid(connections)
    assert connections.open_count == 1


def test_a_thread_that_ends_closes_the_connection_it_leaves(db, pg_url):
    # Servers that start a thread per request would otherwise keep a connection per request.
    connections = db.thread_connections
    pids = []
    for _ in range(3):
        thread = threading.Thread(target=lambda: pids.append(backend_pid(connections)))
        thread.start()
        thread.join()
    assert len(set(pids)) == 3 and connections.open_count == 0
    admin = create_engine(pg_url)
    try:
        for _ in range(100):  # a backend exits a moment after its client says goodbye
            with admin.connect() as connection:
                alive = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
                ).scalar()
            if alive == 0:
                break
            time.sleep(0.05)
    finally:
        admin.dispose()
    assert alive == 0


def test_sqlite_has_no_thread_connections(sqlite_url):
    database = Database(sqlite_url)
    try:
        assert database.thread_connections is None
    finally:
        database.dispose()


def test_a_call_interrupted_mid_statement_drops_its_connection(db):
    connections = db.thread_connections
    pid = backend_pid(connections)
    with pytest.raises(KeyboardInterrupt):
        with connections.connection() as connection:
            # The statement is on its way when the call is interrupted: its answer is unread.
            connection.pgconn.send_query(b"SELECT pg_sleep(0.05)")
            raise KeyboardInterrupt
    assert connections.open_count == 0
    assert backend_pid(connections) != pid


def test_a_thread_keeps_one_cursor_on_its_connection(db):
    made = []

    def factory(connection):
        made.append(connection)
        return psycopg.RawCursor(connection)

    connections = db.thread_connections
    with connections.cursor(factory) as first:
        first.execute("SELECT $1::int", [1])
        assert first.fetchone() == (1,)
    with connections.cursor(factory) as second:
        second.execute("SELECT $1::int", [2])
        assert second.fetchone() == (2,)
    assert second is first and len(made) == 1
    with connections.connection() as connection:
        assert first.connection is connection

    other = []

    def in_another_thread():
        with connections.cursor(factory) as cursor:
            other.append(cursor)

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join()
    assert other[0] is not first and len(made) == 2


def test_a_replaced_connection_gets_a_new_cursor(pg_url, pinging_after):
    connections = pinging_after(0.0)
    with connections.cursor(psycopg.RawCursor) as first:
        first.execute("SELECT pg_backend_pid()")
        pid = first.fetchone()[0]
    terminate(pg_url, pid)
    with connections.cursor(psycopg.RawCursor) as second:
        second.execute("SELECT pg_backend_pid()")
        assert second.fetchone()[0] != pid
    assert second is not first and first.connection.closed


def test_a_refused_statement_keeps_the_cursor_usable(db):
    connections = db.thread_connections
    with pytest.raises(psycopg.errors.DivisionByZero):
        with connections.cursor(psycopg.RawCursor) as cursor:
            cursor.execute("SELECT 1 / 0")
    with connections.cursor(psycopg.RawCursor) as again:
        again.execute("SELECT $1::int", [3])
        assert again.fetchone() == (3,)
    assert again is cursor
