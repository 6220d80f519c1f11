"""Set-based helpers of app.adapters.db.bulk, on SQLite and PostgreSQL."""
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, text

from app.adapters.db import Database
from app.adapters.db.bulk import allocate_ids, existing_values, text_array
from app.adapters.db.models import Statement

# Values that need quoting or escaping in an array literal, and some that look like syntax.
AWKWARD = [
    "plain",
    "",
    "NULL",
    "with space",
    "comma,inside",
    "{braces}",
    'double "quote"',
    "back\\slash",
    "ends with \\",
    'both \\"',
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "全角 ＡＢＣ 货款",
    "emoji \U0001f4b0",
]


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.engine.dispose()


def store_statements(db, sha256s):
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    with db.transaction() as session:
        session.execute(
            insert(Statement),
            [
                {"sha256": value, "format": "csv", "content": b"", "uploaded_by": "t", "uploaded_at": now}
                for value in sha256s
            ],
        )


@pytest.mark.postgres
def test_text_array_reads_back_as_the_same_strings_on_postgresql(pg_url):
    db = Database(pg_url)
    try:
        with db.sessions() as session:
            for values in (AWKWARD, AWKWARD[:1], [AWKWARD[6]], [AWKWARD[7]], [""], []):
                literal = text_array(values)
                read = session.execute(text("SELECT CAST(:a AS text[])"), {"a": literal}).scalar_one()
                assert read == values
    finally:
        db.engine.dispose()


def test_existing_values_finds_exactly_the_stored_ones(db):
    stored = AWKWARD[::2]
    store_statements(db, stored)
    with db.sessions() as session:
        found = existing_values(session, Statement.__table__, "sha256", AWKWARD + ["absent"])
        assert found == set(stored)
        assert existing_values(session, Statement.__table__, "sha256", ["absent"]) == set()
        assert existing_values(session, Statement.__table__, "sha256", []) == set()
        # Further equal conditions narrow the rows.
        assert existing_values(
            session, Statement.__table__, "sha256", AWKWARD, bank_account="elsewhere"
        ) == set()


def test_allocated_ids_are_new_distinct_and_ascending(db):
    store_statements(db, ["a", "b"])
    with db.transaction() as session:
        first = allocate_ids(session, Statement.__table__, 1000)
        assert allocate_ids(session, Statement.__table__, 0) == []
        if not db.is_sqlite:  # SQLite counts on from the largest stored id
            second = allocate_ids(session, Statement.__table__, 3)
            assert min(second) > max(first) and second == sorted(second)
    assert len(set(first)) == 1000 and first == sorted(first) and min(first) > 2
    assert all(isinstance(value, int) for value in first)


def test_copy_rows_stores_every_value_as_given(db):
    from datetime import timedelta

    from sqlalchemy import select

    from app.adapters.db.bulk import copy_rows
    from app.adapters.db.models import StatementLine

    table = StatementLine.__table__
    columns = (
        "id", "statement_id", "bank_account", "identity_key", "line_no", "raw", "transaction_id",
        "booked_at", "amount_fen", "currency", "direction", "counterparty_name",
        "counterparty_account", "memo", "reference", "booked", "reversal", "status", "account_id",
        "suggested_account_id", "reason", "credits", "matched_by", "matched_at",
    )
    at = datetime(2026, 11, 26, 20, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    rows = []
    for n, value in enumerate(AWKWARD, start=1):
        matched = n % 2 == 0
        rows.append((
            n, 9, value, f"key:{value}", n, value, value if n % 3 else None, "2026-11-26",
            2**62 if n == 1 else n, "CNY", "in", value, value, value, value, n % 4 != 0, n % 5 == 0,
            "matched" if matched else "unmatched", "acc_1" if matched else None,
            None if matched else "acc_2", value, int(matched), "reconciler" if matched else None,
            at if matched else None,
        ))
    with db.transaction() as session:
        assert copy_rows(session, table, columns, iter(rows)) == len(rows)
    with db.sessions() as session:
        stored = session.execute(select(*(table.c[name] for name in columns)).order_by(table.c.id)).all()
    expected = [row[:-1] + (row[-1].astimezone(timezone.utc) if row[-1] else None,) for row in rows]
    assert [tuple(row) for row in stored] == expected


@pytest.mark.postgres
def test_copy_rows_still_enforces_column_lengths_on_postgresql(pg_url):
    from sqlalchemy.exc import DBAPIError

    from app.adapters.db.bulk import copy_rows

    db = Database(pg_url)
    try:
        with pytest.raises(DBAPIError, match="too long"):
            with db.transaction() as session:
                copy_rows(session, Statement.__table__, ("sha256", "format", "content", "uploaded_by",
                          "uploaded_at"), [("x" * 65, "csv", b"", "t", datetime.now(timezone.utc))])
    finally:
        db.engine.dispose()


def test_one_of_selects_exactly_the_rows_named(db):
    from sqlalchemy import select

    from app.adapters.db.bulk import one_of

    store_statements(db, AWKWARD)
    wanted = AWKWARD[1::3] + ["absent"]
    with db.sessions() as session:
        found = session.execute(
            select(Statement.sha256).where(one_of(session, Statement.sha256, wanted))
        ).scalars().all()
    assert sorted(found) == sorted(AWKWARD[1::3])
