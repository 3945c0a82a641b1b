"""A delete's calls (app/volumes.py `delete`): the volume confirmed by a scan, its snapshots listed (LINSTOR
refuses to delete an RD that has any: linstor-rest-api.md), each deleted, then the RD. The listing of the RD
the cache knows goes out beside the scan; it is used only when the scan confirms that RD."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.errors import NotFound
from app.identity import VolumeType
from app.settings import CacheMode
from app.specs import CreateSpec, make_key
from tests.support.domain import POOL, Domain, domain

SCAN = "/v1/resource-definitions"
SNAPSHOTS = "/v1/resource-definitions/{resource}/snapshots"
KEY = make_key(POOL, "default", VolumeType.CONTAINER, "c1")


async def _volume_with_a_snapshot(d: Domain) -> str:
    spec = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 20)
    record = await d.volumes.create(POOL, spec)
    await d.snapshots.create(KEY, "s1")
    return record.rd_name


def _routes(d: Domain) -> list[str]:
    return [f"{e.method} {e.route}" for e in d.seen]


@pytest.mark.parametrize("mode", [CacheMode.VERIFY, CacheMode.TRUST])
async def test_the_snapshots_of_the_cached_rd_are_listed_while_the_scan_confirms_it(mode: CacheMode) -> None:
    """With the scan slowed down, the snapshot listing answers first: both were out at once."""
    async with domain(mode=mode) as d:
        rd = await _volume_with_a_snapshot(d)
        d.seen.clear()
        d.state.add_fault(action="latency", method="GET", path=f"^{SCAN}$", times=1, seconds=0.5)
        await d.volumes.delete(KEY)
        assert _routes(d)[:2] == [f"GET {SNAPSHOTS}", f"GET {SCAN}"]
        assert rd not in d.state.rds
        assert len(d.writes("DELETE", f"{SNAPSHOTS}/{{snapshot}}")) == 1


async def test_without_a_cache_the_snapshots_are_listed_after_the_scan() -> None:
    """Mode off knows no RD before the scan: the calls go one after the other, as before."""
    async with domain(mode=CacheMode.OFF, cache=False) as d:
        rd = await _volume_with_a_snapshot(d)
        d.seen.clear()
        await d.volumes.delete(KEY)
        assert _routes(d)[:2] == [f"GET {SCAN}", f"GET {SNAPSHOTS}"]
        assert rd not in d.state.rds


async def test_a_cache_naming_another_rd_does_not_decide_which_snapshots_are_deleted() -> None:
    """The cache holds the identity in an RD LINSTOR does not have: the listing sent ahead (a 404, or
    cancelled before it went out) is dropped, and the RD the scan found is listed, emptied and deleted."""
    async with domain() as d:
        rd = await _volume_with_a_snapshot(d)
        assert d.cache is not None
        stale = d.cache.rows.pop(rd)
        ghost = "incus-volume-00000000000000000000000000000000"
        d.cache.rows[ghost] = replace(stale, rd_name=ghost)
        await d.volumes.delete(KEY)
        assert rd not in d.state.rds
        listed = [e.path for e in d.seen if e.method == "GET" and e.route == SNAPSHOTS]
        assert f"{SCAN}/{rd}/snapshots" in listed


async def test_a_volume_the_scan_does_not_find_is_not_found_whatever_the_cache_said() -> None:
    """The RD went behind the service: 404, and the listing sent ahead changes nothing."""
    async with domain() as d:
        rd = await _volume_with_a_snapshot(d)
        for snap in await d.client.list_snapshots(rd):
            await d.client.delete_snapshot(rd, snap.name)
        await d.client.delete_resource_definition(rd)
        with pytest.raises(NotFound) as caught:
            await d.volumes.delete(KEY)
        assert caught.value.code == "volume_not_found"
