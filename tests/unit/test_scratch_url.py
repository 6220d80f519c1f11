from sqlalchemy import make_url

from app.adapters.db.scratch import database_url


def test_the_database_is_replaced_in_a_tcp_url():
    assert (
        database_url("postgresql+psycopg://postgres:secret@127.0.0.1:5432/postgres", "scratch_1")
        == "postgresql+psycopg://postgres:secret@127.0.0.1:5432/scratch_1"
    )


def test_a_socket_directory_in_the_query_is_kept():
    url = make_url(database_url("postgresql+psycopg://postgres@/postgres?host=/var/run/postgresql", "scratch_1"))
    assert url.database == "scratch_1"
    assert url.query == {"host": "/var/run/postgresql"}
    assert url.username == "postgres"
