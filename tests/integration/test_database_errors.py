"""A failed statement's error names the SQL, never the values bound to it."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.adapters.db import Database

# What the service binds: signed notify bodies, bank statement bytes and lines, token hashes.
SIGNED_BODY = "notify_id=n1&out_trade_no=T1&sign=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


def test_a_database_error_and_its_logged_traceback_carry_no_bound_value(db_url, caplog):
    db = Database(db_url)
    try:
        with pytest.raises(DBAPIError) as caught:
            with db.transaction() as session:
                session.execute(text("INSERT INTO no_such_table (body) VALUES (:body)"), {"body": SIGNED_BODY})
        logging.getLogger("app.test").error("statement failed", exc_info=caught.value)
    finally:
        db.dispose()
    assert "no_such_table" in str(caught.value)  # the SQL is still there to debug with
    assert "c2VjcmV0LXNpZ25hdHVyZQ" not in str(caught.value)
    assert "c2VjcmV0LXNpZ25hdHVyZQ" not in caplog.text
