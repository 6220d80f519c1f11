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
