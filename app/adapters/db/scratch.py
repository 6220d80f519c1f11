"""Scratch PostgreSQL databases: create a fresh one on a server, drop it when done."""
from __future__ import annotations

import os
import re
import secrets

from sqlalchemy import create_engine, make_url, text

_NAME = re.compile(r"[a-z0-9_]+")


def _checked(name: str) -> str:
    """Return the name double-quoted, after checking it is only ``[a-z0-9_]``."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"unsafe database name: {name!r}")
    return f'"{name}"'


def create_database(server_url: str, prefix: str) -> tuple[str, str]:
    """Create a uniquely named database on the server; return its name and URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    quoted = _checked(name)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()
    return name, database_url(server_url, name)


def database_url(server_url: str, name: str) -> str:
    """The server's URL naming another database; the query (a socket directory, say) is kept."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """Terminate other connections to the database and drop it if it exists."""
    quoted = _checked(name)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
    finally:
        admin.dispose()
