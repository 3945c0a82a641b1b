"""Cache fixtures: a migrated CacheStore on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.cache.store import CacheStore


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of its own for one test."""
    return f"sqlite:///{tmp_path / 'cache.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cache_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def store(cache_url: str) -> AsyncIterator[CacheStore]:
    """A migrated, empty CacheStore on each backend."""
    cache = CacheStore.open(cache_url, pool_size=2)
    await asyncio.to_thread(cache.upgrade)
    yield cache
    await cache.close()
