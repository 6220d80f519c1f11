"""Set-based writes that behave the same on SQLite and PostgreSQL.

On PostgreSQL rows travel by ``COPY``: the server inserts them (constraints, unique indexes
and foreign keys all apply) while the client is still producing the next ones, and nothing
renders or parses one statement per thousand rows. Ids are drawn from the table's sequence
beforehand, so that rows referring to each other can be produced without a round trip.
SQLite, in process, takes the same rows by ``executemany``.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Table, Text, any_, bindparam, cast, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

# SQLite binds at most 32,766 parameters per statement; stay well below.
_SQLITE_CHUNK = 500


def insert_ignoring_conflicts(session: Session, table: Table, conflict_columns: list[str]):
    """Return ``INSERT ... ON CONFLICT (columns) DO NOTHING`` for the session's dialect."""
    dialect_insert = postgresql.insert if _is_postgresql(session) else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=conflict_columns)


def existing_values(
    session: Session, table: Table, column: str, values: Sequence[str], **equal
) -> set[str]:
    """Return which of ``values`` stand in ``column`` (rows also matching ``equal``)."""
    if not values:
        return set()
    if _is_postgresql(session):
        conditions = "".join(f" AND {_name(name)} = %s" for name in equal)
        sql = (
            f"SELECT {_name(column)} FROM {_name(table.name)} "
            f"WHERE {_name(column)} = ANY(%s::text[]){conditions}"
        )
        with _cursor(session) as cursor:
            cursor.execute(sql, [text_array(values), *equal.values()])
            return {row[0] for row in cursor}
    found: set[str] = set()
    target = table.c[column]
    for start in range(0, len(values), _SQLITE_CHUNK):
        query = select(target).where(target.in_(values[start : start + _SQLITE_CHUNK]))
        for name, value in equal.items():
            query = query.where(table.c[name] == value)
        found.update(session.execute(query).scalars())
    return found


def one_of(session: Session, column, values: Sequence[str]):
    """Return the condition ``column IN values`` (strings).

    SQLAlchemy binds each value of an ``IN`` list as a parameter of its own, rendered and
    passed one by one (0.04 s of client CPU for 6,000 account ids); on PostgreSQL the values
    go as one array instead. SQLite callers keep lists within its parameter limit.
    """
    if _is_postgresql(session):
        # An untyped parameter: the server reads it as the array constant itself, which the
        # planner sees (and hashes); a typed one is cast row by row, unseen by the planner.
        values = bindparam(None, text_array(values), type_=NullType())
        return column == any_(cast(values, postgresql.ARRAY(Text)))
    return column.in_(values)


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """Reserve ``count`` new primary-key values of ``table``.

    PostgreSQL draws them from the column's sequence. SQLite counts on from the largest id:
    safe because every write transaction there holds the database lock from BEGIN.
    """
    if count <= 0:
        return []
    if _is_postgresql(session):
        with _cursor(session) as cursor:
            # The sequence's name is looked up once: per row, the lookup costs more than nextval.
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table.name])
            (sequence,) = cursor.fetchone()
            # One string rather than a row per id: fetching 100,000 rows costs the client 0.03 s.
            cursor.execute(
                "SELECT string_agg(nextval(%s::regclass)::text, ',') FROM generate_series(1, %s)",
                [sequence, count],
            )
            (ids,) = cursor.fetchone()
            return [int(value) for value in ids.split(",")]
    start = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one() + 1
    return list(range(start, start + count))


def text_array(values: Sequence[str]) -> str:
    """Return the PostgreSQL array literal of ``values`` (strings): ``{"a","b"}``.

    psycopg writes a list parameter element by element in Python (0.08 s for 100,000 keys);
    with every element quoted, one join writes the same literal. Backslashes and double quotes
    are escaped, element by element, only when some value holds one.
    """
    if not values:
        return "{}"
    body = '","'.join(values)
    if "\\" in body or body.count('"') != 2 * (len(values) - 1):
        body = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + body + '"}'


def copy_rows(session: Session, table: Table, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert rows (tuples in ``columns`` order) and return how many; any conflict fails.

    On PostgreSQL the rows travel in COPY's binary format, typed by the table's columns: the
    client writes strings as they are and numbers and times as fixed-size values, and the
    server takes them without parsing text (for a 100,000-line statement and its 70,000
    credits, 0.3 s less client CPU than the text format). Column types, lengths and
    constraints are checked exactly as for text.
    """
    if _is_postgresql(session):
        types = _column_types(session.get_bind().dialect, table, tuple(columns))
        count = 0
        with _cursor(session) as cursor:
            with cursor.copy(
                f"COPY {_name(table.name)} ({_names(columns)}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
                    count += 1
        return count
    params = [dict(zip(columns, row)) for row in rows]
    if params:
        session.execute(insert(table), params)
    return len(params)


def update_rows(
    session: Session, table: Table, key: str, columns: Sequence[str], rows: Iterable[tuple]
) -> None:
    """Update rows by ``key``: each tuple is the key value, then ``columns`` in order."""
    if _is_postgresql(session):
        temp = _name(f"bulk_{table.name}")
        assignments = ", ".join(f"{_name(c)} = t.{_name(c)}" for c in columns)
        with _cursor(session) as cursor:
            # Same column types as the target, no constraints; gone at commit at the latest.
            cursor.execute(
                f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS "
                f"SELECT {_names([key, *columns])} FROM {_name(table.name)} WITH NO DATA"
            )
            with cursor.copy(f"COPY {temp} ({_names([key, *columns])}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"UPDATE {_name(table.name)} SET {assignments} FROM {temp} AS t "
                f"WHERE {_name(table.name)}.{_name(key)} = t.{_name(key)}"
            )
            cursor.execute(f"DROP TABLE {temp}")
        return
    params = [{f"b_{name}": value for name, value in zip([key, *columns], row)} for row in rows]
    if params:
        session.execute(
            update(table)
            .where(table.c[key] == bindparam(f"b_{key}"))
            .values({name: bindparam(f"b_{name}") for name in columns}),
            params,
        )


@contextmanager
def _cursor(session: Session) -> Iterator:
    """A cursor on the session's own driver connection (same transaction).

    Driver errors come out as SQLAlchemy's (``IntegrityError``...), as from ``execute``.
    """
    connection = session.connection()
    dbapi = connection.dialect.dbapi
    try:
        with connection.connection.driver_connection.cursor() as cursor:
            yield cursor
    except dbapi.Error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc


# "VARCHAR(100)" -> "varchar": psycopg picks a binary dumper by type name; the server still
# applies the column's length.
_TYPE_MODIFIER = re.compile(r"\(.*?\)")


@functools.lru_cache(maxsize=64)
def _column_types(dialect, table: Table, columns: tuple[str, ...]) -> list[str]:
    """Return the PostgreSQL type names of ``columns``, as ``Copy.set_types`` takes them."""
    return [
        _TYPE_MODIFIER.sub("", table.c[name].type.compile(dialect=dialect)).lower()
        for name in columns
    ]


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _name(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _names(identifiers: Iterable[str]) -> str:
    return ", ".join(_name(identifier) for identifier in identifiers)
