"""The Alembic migrations: up and down on empty and filled databases, and in step with the tables."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.cache import migrate
from app.cache.engine import create_cache_engine
from app.cache.tables import metadata

TABLES = {"volumes", "snapshots", "tombstones", "sync_state", "idempotency_keys"}
TABLES_0001 = TABLES - {"idempotency_keys"}


def _tables(url: str) -> set[str]:
    engine = create_cache_engine(url, pool_size=1)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_cache_engine(url, pool_size=1)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def _fill(url: str) -> None:
    engine = create_cache_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO volumes (rd_key, rd_name, pool, pool_key, project, type, name, "
                    "content_type, description, volume_sizes_kib, updated_at) VALUES ('RD1', 'rd1', "
                    "'pool', 'POOL', 'default', 'custom', 'v', 'filesystem', NULL, '1024', 1.0)"
                )
            )
            conn.execute(sa.text("INSERT INTO snapshots VALUES ('RD1', 's1', 'snap1', 'SNAP1')"))
            conn.execute(sa.text("INSERT INTO tombstones VALUES ('RD2', 2.0)"))
            conn.execute(sa.text("INSERT INTO sync_state VALUES (1, 3.0)"))
            if "idempotency_keys" in sa.inspect(conn).get_table_names():
                conn.execute(
                    sa.text(
                        "INSERT INTO idempotency_keys VALUES ('k1', 'f', 'o', 4.0, 5.0, 201, '[]', :body)"
                    ),
                    {"body": b"{}"},
                )
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    """An empty, unmigrated database on each backend."""
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


def test_upgrade_and_downgrade_empty(url: str) -> None:
    migrate.upgrade(url)
    assert _revision(url) == migrate.head_revision()
    assert _tables(url) == TABLES
    migrate.upgrade(url)  # idempotent: every replica runs it at start-up
    migrate.downgrade(url, "base")
    assert _revision(url) is None
    assert _tables(url) == set()


def test_downgrade_and_upgrade_with_data(url: str) -> None:
    migrate.upgrade(url)
    _fill(url)
    migrate.downgrade(url, "-1")
    assert _revision(url) == "0002"  # the fingerprints dropped, the rows kept
    assert _tables(url) == TABLES
    migrate.downgrade(url, "-1")
    assert _revision(url) == "0001"
    assert _tables(url) == TABLES_0001
    migrate.downgrade(url, "-1")
    assert _revision(url) is None
    assert _tables(url) == set()
    migrate.upgrade(url, "0001")
    _fill(url)  # an 0001 database with rows ...
    migrate.upgrade(url)  # ... is upgraded in place
    assert _tables(url) == TABLES
    migrate.downgrade(url, "base")
    migrate.upgrade(url)
    _fill(url)  # the schema accepts the same rows again


def test_head_matches_the_table_models(url: str) -> None:
    """A table change without a migration fails here."""
    migrate.upgrade(url)
    engine = create_cache_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrations_dir_is_found_from_the_package() -> None:
    assert (migrate.migrations_dir() / "versions").is_dir()
    assert migrate.head_revision() == "0003"


@pytest.mark.parametrize("bad", ["none", "sqlite://", "sqlite:///:memory:", "mysql://h/db"])
def test_unusable_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"cache|SQLite|unsupported"):
        create_cache_engine(bad)


def test_postgres_urls_get_psycopg() -> None:
    from app.cache.engine import normalize_url

    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
