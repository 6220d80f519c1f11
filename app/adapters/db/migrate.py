"""Run Alembic migrations programmatically (``flask --app wsgi db upgrade``)."""
from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

log = logging.getLogger(__name__)


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


def schema_behind(engine) -> str | None:
    """Why this release cannot run on the database of ``engine``: its schema is not migrated to
    the newest revision (``db upgrade`` not run yet). None when it is at the newest revision, or
    at one this release does not know (a newer release migrated it; logged as a warning).

    Raises the driver's error (``sqlalchemy.exc.DBAPIError``) when the database cannot be read.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = tuple(script.get_heads())
    if current in heads:
        return None
    if current is not None and current not in {s.revision for s in script.walk_revisions()}:
        log.warning("the database schema is at a revision this release does not know",
                    extra={"revision": current, "heads": ",".join(heads)})
        return None
    at = f"at revision {current}" if current is not None else "not created"
    return (
        f"the database schema is {at}; this release needs revision {', '.join(heads)}:"
        " run `flask --app wsgi db upgrade` first"
    )


def schema_refusal(db) -> str | None:
    """``schema_behind`` for the service's ``Database``; a database that cannot be reached now is
    logged as a warning and refuses nothing (``/readyz`` answers for it)."""
    from sqlalchemy.exc import DBAPIError

    from .errors import first_line

    try:
        return schema_behind(db.engine)
    except DBAPIError as exc:
        log.warning("the database schema could not be checked", extra={"error": first_line(exc)[:300]})
        return None
