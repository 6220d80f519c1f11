import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from app.adapters.db.models import Base


def test_migrations_build_exactly_the_models(db_url):
    engine = create_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.postgres
def test_statement_files_are_compressed_with_lz4_where_the_server_has_it(pg_url):
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        available = connection.execute(
            text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar()
        method = connection.execute(
            text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'statements'::regclass AND attname = 'content'"
            )
        ).scalar()
    engine.dispose()
    assert method == ("l" if available else "")
