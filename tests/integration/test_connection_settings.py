"""PostgreSQL connections give up on a server that stopped answering, unless the URL says otherwise."""
import pytest
from sqlalchemy.engine import make_url

from app.adapters.db import PG_CONNECTION_DEFAULTS, Database

pytestmark = pytest.mark.postgres


def connection_parameters(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The parameters a pooled connection and a per-thread connection of ``url`` were opened with."""
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            pooled = connection.connection.driver_connection.info.get_parameters()
        with db.thread_connections.connection() as own:
            per_thread = own.info.get_parameters()
    finally:
        db.dispose()
    return pooled, per_thread


def test_pooled_and_per_thread_connections_time_out_and_keep_alive(pg_url):
    for found in connection_parameters(pg_url):
        assert {name: found.get(name) for name in PG_CONNECTION_DEFAULTS} == PG_CONNECTION_DEFAULTS


def test_a_parameter_the_url_sets_is_kept(pg_url):
    url = make_url(pg_url).update_query_dict({"connect_timeout": "3", "keepalives_idle": "120"})
    for found in connection_parameters(url.render_as_string(hide_password=False)):
        assert (found["connect_timeout"], found["keepalives_idle"]) == ("3", "120")
        assert found["keepalives_count"] == PG_CONNECTION_DEFAULTS["keepalives_count"]
