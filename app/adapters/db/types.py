"""Column types that behave the same on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, Integer, func
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
Fen = BigInteger
_SUM_SPLIT = 2**32


def fen_sum_parts(column) -> tuple:
    """SUM a fen column in two parts that overflow on neither database; ``fen_total`` joins them.

    Rows each within BIGINT can add up past 2**63 - 1: PostgreSQL's SUM (a NUMERIC) still
    answers, SQLite's fails with "integer overflow". Both divide integers truncating, so each
    value is exactly its quotient times the split plus its remainder.
    """
    return func.sum(column // _SUM_SPLIT), func.sum(column % _SUM_SPLIT)


def fen_total(high, low) -> int:
    """Join the two parts of ``fen_sum_parts``; no rows (NULL sums) is zero."""
    return int(high or 0) * _SUM_SPLIT + int(low or 0)


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC; returns aware UTC datetimes on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        require_aware(value)
        if value is None:
            return None
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def require_aware(value: datetime | None) -> datetime | None:
    """Return ``value`` if it is None or aware; refuse a naive datetime, which names no instant."""
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use an aware datetime")
    return value
