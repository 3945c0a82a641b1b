"""Running the cache's Alembic migrations (the repository's migrations/ directory) from code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from app.cache.engine import WRITE_OPTION, create_cache_engine

# Replicas sharing a PostgreSQL cache start together: one migrates while the others wait on this lock.
MIGRATION_LOCK = 0x6C6E_6D69  # "lnmi"


def migrations_dir() -> Path:
    """The Alembic scripts: migrations/ of a checkout (or an editable install), else a wheel's copy."""
    package = Path(__file__).resolve().parents[1]
    for path in (package.parent / "migrations", package / "_migrations"):
        if (path / "env.py").is_file():
            return path
    raise RuntimeError(f"Alembic migrations not found beside or inside {package}")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config without alembic.ini; env.py uses `connection` when given."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision in migrations/."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`."""
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade_engine(engine: Engine, revision: str) -> None:
    """Downgrade the database behind `engine` to `revision` ('base' drops every table)."""
    _run(engine, lambda config: command.downgrade(config, revision))


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the cache database at `url` to `revision`."""
    engine = create_cache_engine(url, pool_size=1)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Downgrade the cache database at `url` to `revision`."""
    engine = create_cache_engine(url, pool_size=1)
    try:
        downgrade_engine(engine, revision)
    finally:
        engine.dispose()


def _run(engine: Engine, action: Callable[[Config], object]) -> None:
    # One transaction for the whole run (both backends have transactional DDL), under a lock on PostgreSQL.
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            action(alembic_config(connection))
