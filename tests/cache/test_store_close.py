"""CacheStore.close(): it waits, within a bound, for the database calls under way and closes every connection.

A call under way when the store closes is the shutdown of a service whose resync was cancelled mid-write
(the task is cancelled, its thread's statement is not). Each test holds the cache's write lock from another
connection, so that a write is running, its connection checked out, for as long as the test wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool

from app.cache.store import WRITE_LOCK, CacheClosedError, CacheStore
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType

RECORD = VolumeRecord(
    key=VolumeKey("pool1", "default", VolumeType.CUSTOM, "v1"),
    rd_name="rd1",
    content_type=ContentType.FILESYSTEM,
    description=None,
    volume_sizes_kib=(1024,),
    snapshots={},
)


@contextlib.contextmanager
def opened_connections() -> Iterator[list[Any]]:
    """Every DBAPI connection a pool opens meanwhile; those left open are closed at exit (no GC warning)."""
    opened: list[Any] = []

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        opened.append(dbapi_connection)

    sa.event.listen(Pool, "connect", on_connect)
    try:
        yield opened
    finally:
        sa.event.remove(Pool, "connect", on_connect)
        for connection in opened:
            connection.close()


def still_open(connections: list[Any]) -> list[Any]:
    """The connections not closed yet."""
    return [c for c in connections if _is_open(c)]


def _is_open(connection: Any) -> bool:
    if isinstance(connection, sqlite3.Connection):
        try:
            connection.total_changes  # noqa: B018 (raises on a closed connection)
        except sqlite3.ProgrammingError:
            return False
        return True
    return not connection.closed


class WriteLock:
    """Another writer holding the cache's write lock (SQLite: a write transaction) until `release()`."""

    def __init__(self, cache_url: str) -> None:
        url = make_url(cache_url)
        self._sqlite = url.get_backend_name() == "sqlite"
        self._conn: Any
        if self._sqlite:
            self._conn = sqlite3.connect(str(url.database), isolation_level=None)
            self._conn.execute("BEGIN IMMEDIATE")
        else:
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._conn = psycopg.connect(dsn, autocommit=True)
            self._conn.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))

    def release(self) -> None:
        """Let the waiting writer through."""
        if self._sqlite:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))

    def close(self) -> None:
        """Close the connection: a lock still held goes with it."""
        self._conn.close()


@dataclass
class WriteUnderWay:
    """A store whose put() runs in a worker thread, waiting for `lock`; `opened`: every connection since."""

    store: CacheStore
    lock: WriteLock
    put: asyncio.Task[None]
    opened: list[Any]


@contextlib.asynccontextmanager
async def write_under_way(cache_url: str) -> AsyncIterator[WriteUnderWay]:
    """A migrated store with a write under way; at exit the lock is dropped and the write waited for."""
    with opened_connections() as opened:
        store = CacheStore.open(cache_url, pool_size=2)
        await asyncio.to_thread(store.upgrade)
        checked_out = threading.Event()
        sa.event.listen(store.engine, "checkout", lambda *_: checked_out.set())
        lock = WriteLock(cache_url)
        put = asyncio.create_task(store.put(RECORD))
        try:
            assert await asyncio.to_thread(checked_out.wait, 10), "the write never took a connection"
            yield WriteUnderWay(store, lock, put, opened)
        finally:
            # before opened_connections() closes what is left open: never under a running statement
            lock.close()
            await asyncio.gather(put, return_exceptions=True)


async def test_close_waits_for_a_write_under_way(cache_url: str) -> None:
    async with write_under_way(cache_url) as write:
        closing = asyncio.create_task(write.store.close())
        await asyncio.sleep(0.1)
        assert not closing.done()  # the write still waits for the lock, and close for the write
        write.lock.release()
        await closing
        await write.put  # the write went through
        assert write.opened
        assert still_open(write.opened) == []


async def test_close_is_bounded_and_a_late_call_closes_its_connection(
    cache_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with write_under_way(cache_url) as write:
        await asyncio.wait_for(write.store.close(timeout=0.05), 5)
        assert not write.put.done()
        write.lock.release()
        await write.put  # the late write ends after close, on a connection close did not wait for
        assert still_open(write.opened) == []
    late = [r.getMessage() for r in caplog.records if r.name == "app.cache.store"]
    assert late == [
        "cache close: 1 database call(s) still running after 0.05s; each closes its connection when it ends"
    ]


async def test_a_closed_store_starts_no_call(cache_url: str) -> None:
    """A call after close() would open a connection that nothing closes: it is refused."""
    store = CacheStore.open(cache_url, pool_size=2)
    await asyncio.to_thread(store.upgrade)
    await store.close()
    with pytest.raises(CacheClosedError):
        await store.by_rd("rd1")  # SQLite: the loop's own connection
    with pytest.raises(CacheClosedError):
        await store.put(RECORD)
