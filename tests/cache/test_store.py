"""CacheStore on SQLite and PostgreSQL: lookups, write-through, full-sync replacement, stats."""

from __future__ import annotations

import asyncio

import pytest

from app.cache import StaleSyncError
from app.cache.store import CacheStore
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType


def record(
    rd: str,
    name: str = "vol",
    *,
    pool: str = "pool1",
    project: str = "default",
    type: VolumeType = VolumeType.CUSTOM,
    snapshots: dict[str, str] | None = None,
    description: str | None = None,
    sizes: tuple[int, ...] = (1024,),
) -> VolumeRecord:
    """A volume record with sensible defaults."""
    return VolumeRecord(
        key=VolumeKey(pool=pool, project=project, type=type, name=name),
        rd_name=rd,
        content_type=ContentType.FILESYSTEM,
        description=description,
        volume_sizes_kib=sizes,
        snapshots=snapshots or {},
    )


async def test_put_and_lookups(store: CacheStore) -> None:
    vm = VolumeRecord(
        key=VolumeKey("pool1", "default", VolumeType.VIRTUAL_MACHINE, "vm1"),
        rd_name="incus-volume-ABC",
        content_type=ContentType.BLOCK,
        description="a VM",
        volume_sizes_kib=(10240, 500),
        snapshots={"snap0": "incus-snapshot-S0", "snap1": "incus-snapshot-s1"},
    )
    await store.put(vm)

    hits = await store.by_key(vm.key)
    assert [hit.record for hit in hits] == [vm]
    assert hits[0].updated_at > 0
    assert (await store.by_rd("incus-volume-abc")) == hits[0]  # LINSTOR names are case-insensitive
    assert (await store.by_rd("INCUS-VOLUME-ABC")) == hits[0]
    assert (await store.by_key(VolumeKey("POOL1", "default", VolumeType.VIRTUAL_MACHINE, "vm1"))) == hits
    found = await store.by_snapshot("INCUS-SNAPSHOT-S1")
    assert found == (hits[0], "snap1")
    assert (await store.by_snapshot("incus-snapshot-s0")) == (hits[0], "snap0")
    # project, type and name are Incus's words: exact
    assert await store.by_key(VolumeKey("pool1", "Default", VolumeType.VIRTUAL_MACHINE, "vm1")) == []
    assert await store.by_key(VolumeKey("pool1", "default", VolumeType.CONTAINER, "vm1")) == []
    assert await store.by_rd("incus-volume-other") is None
    assert await store.by_snapshot("nope") is None


async def test_put_replaces_record_and_snapshots(store: CacheStore) -> None:
    await store.put(record("rd1", snapshots={"a": "sa", "b": "sb"}))
    updated = record("RD1", "renamed", snapshots={"c": "sc"}, description="new")
    await store.put(updated)
    assert (hit := await store.by_rd("rd1")) is not None
    assert hit.record == updated
    assert await store.by_snapshot("sa") is None
    assert await store.by_snapshot("sc") == (hit, "c")
    assert await store.by_key(record("x", "vol").key) == []
    assert (await store.stats()).snapshots == 1


async def test_duplicates_are_all_returned(store: CacheStore) -> None:
    await store.put(record("rd-b"))
    await store.put(record("rd-a", snapshots={"s": "snap-a"}))
    await store.put(record("rd-c", "other"))
    hits = await store.by_key(record("x").key)
    assert [hit.record.rd_name for hit in hits] == ["rd-a", "rd-b"]
    assert hits[0].record.snapshots == {"s": "snap-a"}


async def test_list_orders_and_filters(store: CacheStore) -> None:
    for rd, name, project, vtype, pool in [
        ("rd1", "b", "default", VolumeType.CUSTOM, "pool1"),
        ("rd2", "a", "default", VolumeType.CUSTOM, "pool1"),
        ("rd3", "a", "default", VolumeType.CONTAINER, "pool1"),
        ("rd4", "z", "alpha", VolumeType.IMAGE, "pool1"),
        ("rd5", "a", "default", VolumeType.CUSTOM, "pool2"),
        ("rd6", "B", "default", VolumeType.CUSTOM, "pool1"),
    ]:
        await store.put(record(rd, name, project=project, type=vtype, pool=pool, snapshots={"s": f"{rd}-s"}))

    listed = await store.list("POOL1")
    assert [v.record.rd_name for v in listed] == ["rd4", "rd3", "rd6", "rd2", "rd1"]
    assert all(v.record.snapshots == {"s": f"{v.record.rd_name}-s"} for v in listed)
    default = await store.list("pool1", project="default")
    assert [v.record.rd_name for v in default] == ["rd3", "rd6", "rd2", "rd1"]
    custom = await store.list("pool1", project="default", type=VolumeType.CUSTOM)
    assert [v.record.rd_name for v in custom] == ["rd6", "rd2", "rd1"]
    assert await store.list("pool3") == []


async def test_delete(store: CacheStore) -> None:
    await store.put(record("rd1", snapshots={"s": "snap"}))
    await store.delete("RD1")
    assert await store.by_rd("rd1") is None
    assert await store.by_snapshot("snap") is None
    await store.delete("never-cached")  # a no-op apart from its tombstone
    assert (await store.stats()).volumes == 0
    await store.put(record("rd1"))  # re-created after the delete
    assert await store.by_rd("rd1") is not None


async def test_replace_all_replaces_stale_content(store: CacheStore) -> None:
    await store.put(record("keep", "k"))
    await store.put(record("change", "c", snapshots={"old": "snap-old"}))
    await store.put(record("gone", "g", snapshots={"s": "snap-gone"}))
    await store.put(record("other-pool", "o", pool="pool2"))
    await asyncio.sleep(0.01)
    started_at = await store.clock()
    new = record("change", "c", snapshots={"new": "snap-new"}, sizes=(2048,))
    result = await store.replace_all(
        [record("keep", "k"), new, record("fresh", "f")], started_at=started_at, pools=["pool1"]
    )
    assert (result.written, result.deleted, result.unchanged) == (2, 1, 1)
    assert (await store.by_rd("change")) is not None
    assert (await store.by_rd("change")).record == new  # type: ignore[union-attr]
    assert await store.by_snapshot("snap-old") is None
    assert await store.by_rd("gone") is None
    assert await store.by_snapshot("snap-gone") is None
    assert await store.by_rd("fresh") is not None
    assert await store.by_rd("other-pool") is not None  # outside the synced pools
    # a steady-state sync writes nothing
    again = await store.replace_all(
        [record("keep", "k"), new, record("fresh", "f")], started_at=await store.clock(), pools=["pool1"]
    )
    assert (again.written, again.deleted, again.unchanged) == (0, 0, 3)
    # all pools
    await store.replace_all([], started_at=await store.clock())
    assert (await store.stats()).volumes == 0


async def test_replace_all_keeps_writes_newer_than_the_listing(store: CacheStore) -> None:
    await store.put(record("deleted-later", "d"))
    await store.put(record("changed-later", "c"))
    await asyncio.sleep(0.01)
    started_at = await store.clock()
    await asyncio.sleep(0.01)
    # after the listing began: write-throughs of this or another replica
    newer = record("changed-later", "c", description="newer")
    await store.put(newer)
    await store.put(record("created-later", "n"))
    await store.delete("deleted-later")
    listing = [record("deleted-later", "d"), record("changed-later", "c", description="older")]
    result = await store.replace_all(listing, started_at=started_at)
    assert result.kept_newer == 2
    assert await store.by_rd("deleted-later") is None  # the tombstone wins
    assert (await store.by_rd("changed-later")).record == newer  # type: ignore[union-attr]
    assert await store.by_rd("created-later") is not None  # absent from the older listing, kept


async def test_an_older_sync_committing_late_cannot_resurrect(store: CacheStore) -> None:
    await store.put(record("rd1"))
    older = await store.clock()
    await asyncio.sleep(0.01)
    newer = await store.clock()
    # the newer sync (one replica) saw rd1 gone; the older one (another replica) commits after it
    await store.replace_all([], started_at=newer)
    await store.replace_all([record("rd1")], started_at=older)
    assert await store.by_rd("rd1") is None
    # and an older sync cannot delete what a newer one wrote
    await store.replace_all([record("rd2")], started_at=newer + 0.001)
    await store.replace_all([], started_at=older)
    assert await store.by_rd("rd2") is not None


async def test_a_sync_older_than_the_tombstone_retention_is_refused(cache_url: str) -> None:
    cache = CacheStore.open(cache_url, pool_size=1, tombstone_retention=5.0)
    await asyncio.to_thread(cache.upgrade)
    try:
        with pytest.raises(StaleSyncError):
            await cache.replace_all([record("rd1")], started_at=await cache.clock() - 10)
        assert await cache.by_rd("rd1") is None
    finally:
        await cache.close()


async def test_stats_clear_and_mark_synced(store: CacheStore) -> None:
    stats = await store.stats()
    assert (stats.volumes, stats.snapshots, stats.last_sync) == (0, 0, None)
    await store.put(record("rd1", snapshots={"a": "s1", "b": "s2"}))
    await store.put(record("rd2", "v2"))
    await store.mark_synced(100.0)
    await store.mark_synced(50.0)  # an older sync finishing late does not move the time back
    stats = await store.stats()
    assert (stats.volumes, stats.snapshots, stats.last_sync) == (2, 2, 100.0)
    await store.clear()
    stats = await store.stats()
    assert (stats.volumes, stats.snapshots, stats.last_sync) == (0, 0, None)


async def test_big_replace_all(store: CacheStore) -> None:
    records = [record(f"rd{i}", f"v{i}", snapshots={"s": f"snap{i}"}) for i in range(3000)]
    result = await store.replace_all(records, started_at=await store.clock())
    assert result.written == 3000
    assert (await store.stats()).snapshots == 3000
    assert (await store.by_snapshot("SNAP2999")) is not None
    assert len(await store.list("pool1")) == 3000


@pytest.mark.postgres
async def test_two_replicas_share_one_postgres_cache(pg_url: str) -> None:
    one, two = CacheStore.open(pg_url, pool_size=2), CacheStore.open(pg_url, pool_size=2)
    try:
        await asyncio.gather(asyncio.to_thread(one.upgrade), asyncio.to_thread(two.upgrade))
        await one.put(record("rd1", snapshots={"s": "snap1"}))
        assert (await two.by_rd("RD1")) is not None
        assert (await two.by_snapshot("snap1")) is not None
        await two.delete("rd1")
        assert await one.by_rd("rd1") is None
        # concurrent writers are serialized, not lost
        await asyncio.gather(
            *(one.put(record(f"a{i}", f"a{i}")) for i in range(20)),
            *(two.put(record(f"b{i}", f"b{i}")) for i in range(20)),
            one.replace_all([record("c", "c")], started_at=await one.clock(), pools=["elsewhere"]),
        )
        assert (await one.stats()).volumes == 41
        await two.mark_synced(5.0)
        assert (await one.stats()).last_sync == 5.0
    finally:
        await one.close()
        await two.close()


async def test_dialect(store: CacheStore, cache_url: str) -> None:
    assert store.dialect == ("sqlite" if cache_url.startswith("sqlite") else "postgresql")
