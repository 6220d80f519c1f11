"""Which database failures are passing: the same request may well succeed when sent again."""
from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# PostgreSQL error codes (SQLSTATE) of failures that say nothing about the request itself:
# the connection broke, the server is starting or shutting down, or the transaction lost a
# race (serialization failure, deadlock, a lock or statement timeout).
_PASSING_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53300"})

# libpq's refusal of a statement with more than 65535 parameters (fe-exec.c), before sending it.
_LIBPQ_REFUSED_STATEMENT = "number of parameters must be between"


class LostRaces(Exception):
    """A transaction lost to concurrent ones each time it was tried: a later try may not."""


def is_passing_failure(error: BaseException) -> bool:
    """Whether ``error`` is a database failure that retrying the whole request may get past."""
    if isinstance(error, (PoolTimeout, DisconnectionError, LostRaces)):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig
    if isinstance(error, sqlite3.OperationalError):
        # SQLITE_BUSY (another connection holds the write lock past the busy timeout), not
        # SQLITE_LOCKED ("database table is locked"), a conflict within one connection.
        return str(error).startswith("database is locked")
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate is not None:
        # Class 08 is the connection's, but for 08P01: a protocol violation, which a retry repeats.
        return sqlstate in _PASSING_SQLSTATES or (sqlstate.startswith("08") and sqlstate != "08P01")
    # psycopg raises OperationalError without a SQLSTATE when the connection itself fails
    # (the server closed it, or it could not be opened), and when libpq refuses a statement
    # before sending it (more parameters than the protocol carries): that one is a bug, refused
    # again each time.
    try:
        from psycopg import OperationalError  # the PostgreSQL driver is an optional extra
    except ImportError:
        return False
    return isinstance(error, OperationalError) and _LIBPQ_REFUSED_STATEMENT not in str(error)


def first_line(error: BaseException) -> str:
    """What a failure says, in one line: a database error's driver message (not SQLAlchemy's
    statement and link that follow it), any other error's own text; its type's name when it
    says nothing."""
    said = getattr(error, "orig", None) or error
    lines = str(said).strip().splitlines()
    return lines[0] if lines else type(said).__name__
