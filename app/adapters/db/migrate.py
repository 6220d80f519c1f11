"""Run Alembic migrations programmatically (``flask --app wsgi db upgrade``)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """Return an Alembic config pointing at this package's migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on a '%' in a password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    command.downgrade(alembic_config(url), revision)


def database_revision(url: str) -> str | None:
    """Return the revision the database at ``url`` is at; None before the first migration."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def named_revision(revision: str) -> str | None:
    """Return the revision id that ``revision`` (``head``, an id or its prefix) names.

    None when it names none by itself (a relative step such as ``+1``).
    """
    from alembic.script import ScriptDirectory

    try:
        script = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(revision)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for what it cannot resolve
        return None
    return script.revision if script is not None else None


def current_heads() -> tuple[str, ...]:
    """Return the head revisions of the migration scripts."""
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
