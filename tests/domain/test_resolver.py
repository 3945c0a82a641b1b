"""Resolver modes (app/resolver.py): what each mode reads from LINSTOR, and what it answers."""

from __future__ import annotations

from app.identity import VolumeType
from app.resolver import Served
from app.settings import CacheMode
from app.specs import CreateSpec, make_key
from tests.support.domain import POOL, domain

GET_RD = "/v1/resource-definitions/{resource}"
LIST_RDS = "/v1/resource-definitions"
C1 = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 30)
KEY = make_key(POOL, "default", VolumeType.CONTAINER, "c1")


async def test_mode_off_resolves_rds_and_snapshots_from_linstor() -> None:
    """Without a cache, reverse lookups of an RD and of a snapshot go to LINSTOR and say so (fwd=bypass)."""
    async with domain(mode=CacheMode.OFF) as d:
        record = await d.volumes.create(POOL, C1)
        snap = await d.snapshots.create(record.key, "snap0")
        resolver = d.volumes.resolver
        assert resolver.cache is None
        by_rd = await resolver.resolve(record.rd_name)
        assert by_rd is not None
        assert (by_rd[0].key, by_rd[1], by_rd[2].served) == (KEY, None, Served.BYPASS)
        by_snap = await resolver.resolve(snap.linstor_name)
        assert by_snap is not None
        assert (by_snap[0].rd_name, by_snap[1], by_snap[2].served) == (record.rd_name, "snap0", Served.BYPASS)
        assert await resolver.resolve("incus-volume-nope") is None


async def test_trust_hits_ask_linstor_nothing() -> None:
    """Trust mode: a hit comes from the cache alone, with its age."""
    async with domain(mode=CacheMode.TRUST) as d:
        record = await d.volumes.create(POOL, C1)
        d.seen.clear()
        found, info = await d.volumes.resolver.find(KEY)
        assert (found, info.served) == ([record], Served.HIT)
        assert info.age is not None
        assert d.seen == []


async def test_verify_hits_read_the_rd_once_by_name() -> None:
    """Verify mode: a hit costs exactly one GET of the RD by name, never a props-filtered scan."""
    async with domain(mode=CacheMode.VERIFY) as d:
        record = await d.volumes.create(POOL, C1)
        d.seen.clear()
        found, info = await d.volumes.resolver.find(KEY)
        assert (found, info.served) == ([record], Served.HIT)
        assert [(e.method, e.route) for e in d.seen] == [("GET", GET_RD)]


async def test_verify_repairs_an_entry_deleted_behind_its_back() -> None:
    """Verify mode: the confirmation finds the RD gone, the lookup falls back to LINSTOR and drops the row."""
    async with domain(mode=CacheMode.VERIFY) as d:
        record = await d.volumes.create(POOL, C1)
        await d.client.delete_resource_definition(record.rd_name)
        found, info = await d.volumes.resolver.find(KEY)
        assert (found, info.served) == ([], Served.MISS)
        assert d.cache is not None
        assert record.rd_name not in d.cache.rows


async def test_trust_confirms_before_a_change() -> None:
    """Trust mode: a change (`confirm`) acts on what LINSTOR holds now, not on the cached entry."""
    async with domain(mode=CacheMode.TRUST) as d:
        record = await d.volumes.create(POOL, C1)
        await d.client.delete_resource_definition(record.rd_name)
        assert (await d.volumes.resolver.find(KEY))[0] == [record]  # trusted: stale until the resync
        found, info = await d.volumes.resolver.find(KEY, confirm=True)
        assert (found, info.served) == ([], Served.MISS)
