"""Resolver modes (app/resolver.py): what each mode reads from LINSTOR, and what it answers."""

from __future__ import annotations

import pytest

from app import resolver as resolver_module
from app.errors import Conflict
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorOperationalError
from app.resolver import CacheInfo, Served
from app.settings import CacheMode
from app.specs import CreateSpec, make_key
from tests.support.domain import POOL, Domain, Row, domain

LIST_RDS = "/v1/resource-definitions"
C1 = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 30)
KEY = make_key(POOL, "default", VolumeType.CONTAINER, "c1")
TWIN = "incus-volume-0123456789abcdef0123456789abcdef"  # an RD name no create of the service draws
HIT_INFO = CacheInfo(Served.HIT)
MISS_INFO = CacheInfo(Served.MISS)


def key_of(name: str) -> VolumeKey:
    """The key of a container of the test pool."""
    return make_key(POOL, "default", VolumeType.CONTAINER, name)


async def behind_the_back(
    d: Domain, rd_name: str, name: str, vtype: VolumeType = VolumeType.CONTAINER
) -> VolumeRecord:
    """A volume spawned as Incus spawns it (its props in the spawn), past the service and its cache."""
    key = make_key(POOL, "default", vtype, name)
    codec = d.volumes.codec
    await d.client.spawn(POOL, rd_name, [1 << 20], props=codec.volume_props(key, ContentType.FILESYSTEM))
    found = [r for r in await d.volumes.resolver.find_in_linstor(key) if r.rd_name == rd_name]
    assert len(found) == 1
    return found[0]


def names(records: list[VolumeRecord]) -> list[str]:
    """The volumes' Incus names, in order."""
    return [r.key.name for r in records]


async def listed(d: Domain) -> tuple[list[str], CacheInfo]:
    """List the pool (every project and type) through the resolver."""
    records, info = await d.volumes.resolver.list_volumes(POOL, project=None, vtype=None)
    return names(records), info


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


async def test_verify_hits_cost_one_props_filtered_list() -> None:
    """Verify mode: a hit costs exactly one list with Incus's props filter (name and type), no GET by name."""
    async with domain(mode=CacheMode.VERIFY) as d:
        record = await d.volumes.create(POOL, C1)
        d.seen.clear()
        found, info = await d.volumes.resolver.find(KEY)
        assert (found, info.served) == ([record], Served.HIT)
        assert [(e.method, e.route) for e in d.seen] == [("GET", LIST_RDS)]
        assert sorted(v for k, v in d.seen[0].query if k == "props") == [
            "Aux/Incus/name=incus-volume-c1",
            "Aux/Incus/type=containers",
        ]


async def test_verify_sees_a_duplicate_identity_made_behind_its_back_at_once() -> None:
    """A second RD with the identity (Incus, an operator, a replica without a shared cache): the very next
    lookup finds both, and the volume service answers 409 ambiguous_volume, in verify mode and for changes."""
    async with domain(mode=CacheMode.VERIFY) as d:
        record = await d.volumes.create(POOL, C1)
        twin = await behind_the_back(d, TWIN, "c1")
        found, info = await d.volumes.resolver.find(KEY)
        assert (sorted(r.rd_name for r in found), info.served) == (
            sorted([record.rd_name, twin.rd_name]),
            Served.MISS,
        )
        assert d.cache is not None
        assert twin.rd_name in d.cache.rows  # repaired: the next lookup is a hit, still of two
        again, info = await d.volumes.resolver.find(KEY)
        assert (len(again), info.served) == (2, Served.HIT)
        with pytest.raises(Conflict) as raised:
            await d.volumes.get(KEY, confirm=False)
        assert raised.value.code == "ambiguous_volume"


async def test_trust_reads_miss_a_duplicate_but_changes_see_it() -> None:
    """Trust mode keeps its cheap reads (the duplicate shows at the next resync); a change never acts on
    one RD of two: its confirmation is the props filter too."""
    async with domain(mode=CacheMode.TRUST) as d:
        record = await d.volumes.create(POOL, C1)
        await behind_the_back(d, TWIN, "c1")
        d.seen.clear()
        assert (await d.volumes.get(KEY, confirm=False))[0] == record
        assert d.seen == []
        with pytest.raises(Conflict) as raised:
            await d.volumes.rename(KEY, "c2")
        assert raised.value.code == "ambiguous_volume"


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


async def test_a_list_never_comes_from_a_cache_that_is_not_warm_or_being_rebuilt() -> None:
    """Trust mode lists from the cache alone only once a full sync of this process succeeded and while no
    rebuild runs; before, and during a rebuild, the list is LINSTOR's (a miss), whatever the cache holds."""
    async with domain(mode=CacheMode.TRUST) as d:
        await d.volumes.create(POOL, C1)
        await behind_the_back(d, TWIN, "c2")
        state = d.volumes.resolver.state
        assert not state.warm
        assert await listed(d) == (["c1", "c2"], MISS_INFO)
        state.warm = True
        d.seen.clear()
        names_, info = await listed(d)
        assert (names_, info.served) == (["c1"], Served.HIT)  # trust: the cache alone, bounded staleness
        assert d.seen == []
        state.rebuilding = True
        assert await listed(d) == (["c1", "c2"], MISS_INFO)


async def test_a_cold_cache_and_linstor_down_is_an_error_not_an_empty_list() -> None:
    """Issue 10: a cold cache answered {"volumes": []} as a hit. Now LINSTOR's failure is the answer."""
    for mode in (CacheMode.TRUST, CacheMode.VERIFY):
        async with domain(mode=mode) as d:
            d.state.add_fault(action="error", method="GET", path=r"^/v1/resource-definitions$")
            with pytest.raises(LinstorOperationalError):
                await listed(d)


async def test_verify_lists_cost_one_filtered_list_and_repair_what_differs() -> None:
    """Verify mode: one props-filtered list for the whole page, compared with the cache's rows; a volume
    made or renamed behind the service is in the very next list (a miss, rows repaired), then hits."""
    async with domain(mode=CacheMode.VERIFY) as d:
        d.volumes.resolver.state.warm = True
        for name in ("c1", "c2", "c3"):
            await d.volumes.create(POOL, CreateSpec(name=name, type=VolumeType.CONTAINER, size_bytes=1 << 30))
        d.seen.clear()
        assert await listed(d) == (["c1", "c2", "c3"], HIT_INFO)
        assert [(e.method, e.route) for e in d.seen] == [("GET", LIST_RDS)]
        assert [v for k, v in d.seen[0].query if k == "props"] == ["Aux/Incus/name"]

        made = await behind_the_back(d, TWIN, "c4")
        c1 = (await d.volumes.get(KEY, confirm=False))[0]
        await d.client.modify_resource_definition(
            c1.rd_name, override_props={"Aux/Incus/name": "incus-volume-c0"}
        )
        await d.client.delete_resource_definition((await d.volumes.get(key_of("c3")))[0].rd_name)
        d.seen.clear()
        assert await listed(d) == (["c0", "c2", "c4"], MISS_INFO)
        assert len(d.seen) == 1
        assert d.cache is not None
        assert sorted(r.key.name for r in d.cache.rows.values()) == ["c0", "c2", "c4"]
        assert d.cache.rows[made.rd_name] == made
        assert await listed(d) == (["c0", "c2", "c4"], HIT_INFO)


async def test_verify_serves_a_warm_list_stale_when_linstor_fails() -> None:
    """RFC 5861 stale-if-error, as for lookups: only from a warm cache, marked stale."""
    async with domain(mode=CacheMode.VERIFY) as d:
        await d.volumes.create(POOL, C1)
        d.volumes.resolver.state.warm = True
        d.state.add_fault(action="error", method="GET", path=r"^/v1/resource-definitions$")
        names_, info = await listed(d)
        assert (names_, info.served, info.stale) == (["c1"], Served.HIT, True)
        d.volumes.resolver.state.rebuilding = True  # a half-rebuilt cache is no answer, stale or not
        with pytest.raises(LinstorOperationalError):
            await listed(d)


async def test_a_list_leaves_a_cache_far_behind_to_the_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    """More rows differ than a list may write: LINSTOR's answer all the same, and no write."""
    monkeypatch.setattr(resolver_module, "LIST_REPAIR_LIMIT", 1)
    async with domain(mode=CacheMode.VERIFY) as d:
        d.volumes.resolver.state.warm = True
        await behind_the_back(d, TWIN, "c1")
        await behind_the_back(d, "incus-volume-fedcba9876543210fedcba9876543210", "c2")
        assert await listed(d) == (["c1", "c2"], MISS_INFO)
        assert d.cache is not None
        assert d.cache.rows == {}
        await behind_the_back(d, "incus-volume-00000000000000000000000000000000", "c3")
        monkeypatch.setattr(resolver_module, "LIST_REPAIR_LIMIT", 3)
        assert await listed(d) == (["c1", "c2", "c3"], MISS_INFO)
        assert sorted(r.key.name for r in d.cache.rows.values()) == ["c1", "c2", "c3"]


async def test_a_reverse_lookup_of_an_rd_the_cache_holds_reads_no_snapshot_row() -> None:
    """An RD name found in the cache is answered without the snapshot table's read; a snapshot name is still
    found in the cache, and neither asks LINSTOR anything in trust mode."""
    async with domain(mode=CacheMode.TRUST) as d:
        record = await d.volumes.create(POOL, C1)
        snap = await d.snapshots.create(record.key, "snap0")
        cache = d.cache
        assert cache is not None
        asked: list[str] = []
        by_snapshot = cache.by_snapshot

        async def counted(linstor_snapshot: str) -> tuple[Row, str] | None:
            asked.append(linstor_snapshot)
            return await by_snapshot(linstor_snapshot)

        cache.by_snapshot = counted  # type: ignore[method-assign]
        d.seen.clear()
        by_rd = await d.volumes.resolver.resolve(record.rd_name)
        assert by_rd is not None
        assert (by_rd[0].rd_name, by_rd[1]) == (record.rd_name, None)
        assert asked == []
        by_snap = await d.volumes.resolver.resolve(snap.linstor_name)
        assert by_snap is not None
        assert (by_snap[0].rd_name, by_snap[1]) == (record.rd_name, "snap0")
        assert asked == [snap.linstor_name]
        assert d.seen == []
