"""SQLite writes run on the loop only while the write lock is free (app/cache/store.py): the write-through
and the Idempotency-Key claims, answers and releases.

When another writer holds the lock (a full sync, a second process), the write waits for it in a thread:
the loop goes on serving. A failed inline write leaves nothing behind, and the inline writer, which never
checkpoints the WAL itself, has a thread checkpoint it every INLINE_CHECKPOINT_EVERY commits.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from app.cache import queries
from app.cache import store as store_module
from app.cache.store import CacheStore
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType


def record(name: str, **snapshots: str) -> VolumeRecord:
    return VolumeRecord(
        key=VolumeKey("pool1", "default", VolumeType.CUSTOM, name),
        rd_name=f"rd-{name}",
        content_type=ContentType.FILESYSTEM,
        volume_sizes_kib=(1024,),
        snapshots=dict(snapshots),
    )


# the cache_url fixture (conftest.py) on SQLite alone: PostgreSQL writes always run in a thread
SQLITE = pytest.mark.parametrize("cache_url", ["sqlite"], indirect=True)


def _path(store: CacheStore) -> str:
    return str(store.engine.url.database)


@SQLITE
async def test_a_write_through_waits_for_another_writer_off_the_loop(store: CacheStore) -> None:
    other = sqlite3.connect(_path(store), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # a sync's transaction, say
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    ticks: list[float] = []

    async def ticking() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(ticking())
    try:
        await asyncio.sleep(0.02)
        await asyncio.wait_for(store.put(record("v1")), 10)
    finally:
        ticker.cancel()
        other.close()
    # the put waited ~0.5 s for the lock, and the loop ran all along (inline, it would freeze until then)
    assert ticks[-1] - ticks[0] >= 0.4
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.2
    assert await store.by_rd("rd-v1") is not None


@SQLITE
async def test_a_failed_inline_write_leaves_nothing_half_written(
    store: CacheStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put(record("v1", s1="snap-1"))
    real = queries.volume_writes

    def failing(dialect: str, rec: VolumeRecord, now: float) -> queries.Writes:
        return [*real(dialect, rec, now), (sa.text("INSERT INTO no_such_table VALUES (1)"), {})]

    monkeypatch.setattr(queries, "volume_writes", failing)
    with pytest.raises(sqlite3.OperationalError):
        await store.put(record("v1", s2="snap-2"))
    cached = await store.by_rd("rd-v1")
    assert cached is not None
    assert cached.record.snapshots == {"s1": "snap-1"}
    monkeypatch.setattr(queries, "volume_writes", real)
    await store.put(record("v1", s2="snap-2"))  # the writer is usable again: no open transaction
    cached = await store.by_rd("rd-v1")
    assert cached is not None
    assert cached.record.snapshots == {"s2": "snap-2"}


@SQLITE
async def test_the_inline_writer_has_the_wal_checkpointed_in_a_thread(
    store: CacheStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "INLINE_CHECKPOINT_EVERY", 3)
    checkpoints: list[str] = []
    real = CacheStore._checkpoint

    def checkpoint(self: CacheStore) -> None:
        checkpoints.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(CacheStore, "_checkpoint", checkpoint)
    for i in range(7):
        await store.put(record(f"v{i}"))
    await asyncio.sleep(0.2)
    assert len(checkpoints) == 2
    assert all(name.startswith("cache") for name in checkpoints)


@SQLITE
async def test_an_idempotency_key_waits_for_another_writer_off_the_loop_then_runs_on_it(
    store: CacheStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = queries.insert_key

    def insert_key(*args: Any) -> bool:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(queries, "insert_key", insert_key)
    other = sqlite3.connect(_path(store), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    try:
        first = await asyncio.wait_for(store.claim_idempotency_key("k1", "f", lease=60), 10)
    finally:
        other.close()
    # the lock was taken: the claim waited in a cache thread; then it is free: the next runs on the loop
    second = await store.claim_idempotency_key("k2", "f", lease=60)
    assert (first.held, second.held) == (True, True)
    assert threads[0].startswith("cache")
    assert threads[1] == threading.current_thread().name
    # the loop's connection is usable after its BEGIN was refused, and the keys are there for others
    again = await store.claim_idempotency_key("k1", "f", lease=60)
    assert (again.held, again.owner) == (False, first.owner)


@pytest.mark.parametrize(
    ("code", "busy"),
    [(5, True), (261, True), (517, True), (773, True), (6, False), (1, False), (None, False)],
)
def test_busy_is_sqlite_busy_and_its_extended_codes(code: int | None, busy: bool) -> None:
    # SQLITE_BUSY, _RECOVERY, _SNAPSHOT, _TIMEOUT go to the thread; SQLITE_LOCKED and others are errors
    error = sqlite3.OperationalError("refused")
    if code is not None:
        error.sqlite_errorcode = code
    assert store_module._busy(error) is busy


def _read_syscalls() -> int:
    """read(2)/pread(2) calls of this process so far (Linux)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("syscr:"))


@SQLITE
async def test_lookups_read_a_cache_larger_than_sqlites_default_page_cache_from_memory(
    store: CacheStore,
) -> None:
    # ~6 MiB of rows, three times SQLite's default page cache: without INLINE_PAGE_CACHE_KIB, a second pass of
    # lookups over every row reads most pages from the file again (about one pread a lookup)
    names = [f"v{i:05d}" for i in range(3000)]
    records = [replace(record(name), description="d" * 1800) for name in names]
    await store.replace_all(records, started_at=await store.clock())
    keys = [r.key for r in records]
    for key in keys:
        assert len(await store.by_key(key)) == 1
    before = _read_syscalls()
    for key in keys:
        await store.by_key(key)
    assert _read_syscalls() - before < len(keys) / 20
