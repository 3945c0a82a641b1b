"""The cache in each mode: changes behind the service's back, hits and misses, rebuild from LINSTOR alone."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from app.linstor import LinstorClient
from tests.api.conftest import Service, ServiceFactory
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem, create
from tests.support.emulator import set_rd_props


def rename_behind_the_back(emulator: Emulator, linstor_name: str, aux_name: str) -> None:
    """What an operator with the linstor CLI (or Incus) does: rewrite Aux/Incus/name directly."""
    rd = emulator.state.rds[linstor_name.upper()]
    set_rd_props(emulator.state, linstor_name, {**rd.props, "Aux/Incus/name": aux_name})


async def test_verify_mode_sees_a_change_behind_its_back_at_once(
    service: ServiceFactory, emulator: Emulator
) -> None:
    async with service(cache_mode="verify") as api:
        vol = await create(api, name="c1", type="container")
        hit = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
        assert hit.headers["cache-status"] == "linstor-names; hit"
        rename_behind_the_back(emulator, vol["linstor_name"], "incus-volume-d1")
        assert_problem(await api.get(f"/v1/pools/{POOL}/volumes/container/c1"), 404, "volume_not_found")
        found = await api.get(f"/v1/pools/{POOL}/volumes/container/d1")
        assert found.status_code == 200
        assert found.json()["linstor_name"] == vol["linstor_name"]
        # the lookup of c1 dropped the row (the props filter found no c1); this one writes it under d1 ...
        assert found.headers["cache-status"] == "linstor-names; fwd=miss"
        # ... so the next lookup is a (verified) hit
        again = await api.get(f"/v1/pools/{POOL}/volumes/container/d1")
        assert again.headers["cache-status"] == "linstor-names; hit"
        report = (await api.get("/v1/cache")).json()
        assert report["mode"] == "verify"
        assert report["hits"] >= 2
        assert report["misses"] >= 1


# the one read that confirms a verify-mode hit: the props-filtered list of Incus's lookup
CONFIRM = r"^/v1/resource-definitions$"
DEADLINE = 0.5


@pytest.mark.parametrize(
    ("fault", "status", "code"), [("error", 503, "linstor_unavailable"), ("hang", 504, "linstor_timeout")]
)
async def test_verify_mode_serves_a_read_stale_when_linstor_cannot_confirm_it_never_a_write(
    service: ServiceFactory, emulator: Emulator, fault: str, status: int, code: str
) -> None:
    """RFC 5861 stale-if-error: the lookup is answered from the cache, marked stale, within the deadline;
    the rename, whose other reads LINSTOR still answers, fails because its confirmation did."""
    async with service(cache_mode="verify", linstor_read_deadline=DEADLINE) as api:
        vol = await create(api, name="c1", type="container")
        emulator.state.add_fault(action=fault, method="GET", path=CONFIRM)
        try:
            started = time.monotonic()
            stale = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
            assert time.monotonic() - started < 3 * DEADLINE
            renamed = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c2"})
        finally:
            emulator.state.clear_faults()
        assert stale.status_code == 200, stale.text
        assert stale.json() == vol
        assert stale.headers["cache-status"] == "linstor-names; hit; detail=stale"
        assert int(stale.headers["age"]) >= 0
        assert_problem(renamed, status, code)
        assert renamed.headers["retry-after"] == "1"
        fresh = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")  # LINSTOR back: confirmed again
        assert fresh.headers["cache-status"] == "linstor-names; hit"
        assert "age" not in fresh.headers


async def test_with_linstor_down_verify_mode_serves_cached_reads_stale_and_nothing_else(
    service: ServiceFactory, emulator: Emulator
) -> None:
    async with service(cache_mode="verify", linstor_read_deadline=DEADLINE) as api:
        vol = await create(api, name="c1", type="container")
        snap = (
            await api.post(f"/v1/pools/{POOL}/volumes/container/c1/snapshots", json={"name": "s0"})
        ).json()
        emulator.state.add_fault(action="error", method="*", path=r"^/v1/")
        try:
            forward = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
            reverse = await api.get(f"/v1/resolve/{vol['linstor_name']}")
            snapshot = await api.get(f"/v1/resolve/{snap['linstor_name']}")
            unknown = await api.get(f"/v1/pools/{POOL}/volumes/container/c9")  # nothing cached to serve
            renamed = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c2"})
        finally:
            emulator.state.clear_faults()
        for stale in (forward, reverse, snapshot):
            assert stale.status_code == 200, stale.text
            assert stale.headers["cache-status"] == "linstor-names; hit; detail=stale"
            assert "age" in stale.headers
        assert forward.json()["linstor_name"] == vol["linstor_name"]
        assert reverse.json()["volume"]["name"] == "c1"
        assert snapshot.json()["snapshot"] == "s0"
        for failed in (unknown, renamed):
            assert_problem(failed, 503, "linstor_unavailable")
            assert failed.headers["retry-after"] == "1"
        after = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")  # no change was made meanwhile
        assert (after.headers["cache-status"], after.json()) == ("linstor-names; hit", forward.json())


async def test_trust_mode_sees_it_after_the_resync_interval(
    service: ServiceFactory, emulator: Emulator
) -> None:
    async with service(cache_mode="trust", cache_resync_interval=0.5) as api:
        vol = await create(api, name="c1", type="container")
        rename_behind_the_back(emulator, vol["linstor_name"], "incus-volume-d1")
        stale = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
        assert stale.status_code == 200  # served from the cache alone ...
        assert stale.headers["cache-status"] == "linstor-names; hit"
        assert "age" in stale.headers  # ... and says how old it may be
        # a miss is never authoritative: the new name is found in LINSTOR at once
        assert (await api.get(f"/v1/pools/{POOL}/volumes/container/d1")).status_code == 200
        for _ in range(40):
            await asyncio.sleep(0.1)
            response = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
            if response.status_code == 404:
                break
        assert_problem(response, 404, "volume_not_found")


async def test_off_mode_and_no_cache_always_ask_linstor(service: ServiceFactory, emulator: Emulator) -> None:
    for overrides in ({"cache_mode": "off"}, {"cache_url": "none"}):
        async with service(**overrides) as api:
            vol = await create(api, name="c1", type="container")
            response = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
            assert response.headers["cache-status"] == "linstor-names; fwd=bypass"
            rename_behind_the_back(emulator, vol["linstor_name"], "incus-volume-d1")
            assert_problem(await api.get(f"/v1/pools/{POOL}/volumes/container/c1"), 404, "volume_not_found")
            report = (await api.get("/v1/cache")).json()
            assert report["enabled"] is False
            assert_problem(await api.post("/v1/cache/rebuild"), 409, "cache_disabled")
            assert (await api.delete(f"/v1/pools/{POOL}/volumes/container/d1")).status_code == 204


async def test_cache_is_rebuilt_from_linstor_alone(
    service: ServiceFactory, emulator: Emulator, tmp_path: Path
) -> None:
    async with service() as api:
        vol = await create(api, name="c1", type="container")
        snap = (
            await api.post(f"/v1/pools/{POOL}/volumes/container/c1/snapshots", json={"name": "s0"})
        ).json()
    (tmp_path / "cache.db").unlink()  # the cache may be deleted at any time
    async with service(cache_mode="trust") as api:
        for _ in range(50):  # the start-up sync runs in the background
            report = (await api.get("/v1/cache")).json()
            if report["warm"]:  # done: until then a list would ask LINSTOR
                break
            await asyncio.sleep(0.05)
        assert report["last_sync"] is not None
        assert report["volumes"] == 1
        assert report["snapshots"] == 1
        assert report["age_seconds"] is not None
        got = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
        assert got.headers["cache-status"] == "linstor-names; hit"
        assert got.json()["linstor_name"] == vol["linstor_name"]
        resolved = await api.get(f"/v1/resolve/{snap['linstor_name']}")
        assert resolved.headers["cache-status"] == "linstor-names; hit"
        assert resolved.json()["snapshot"] == "s0"
        listed = await api.get(f"/v1/pools/{POOL}/volumes")
        assert listed.headers["cache-status"] == "linstor-names; hit"
        assert [v["name"] for v in listed.json()["volumes"]] == ["c1"]
        rebuilt = await api.post("/v1/cache/rebuild")
        assert rebuilt.status_code == 200
        assert rebuilt.json()["volumes"] == 1
    _ = emulator


def count_rows(db: Path) -> tuple[int, int]:
    """Volume and snapshot rows of a SQLite cache, read past the service."""
    with sqlite3.connect(db) as conn:
        volumes = conn.execute("SELECT count(*) FROM volumes").fetchone()[0]
        snapshots = conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    conn.close()
    return volumes, snapshots


async def test_a_rebuild_with_linstor_down_is_503_and_keeps_the_cache(
    service: ServiceFactory, emulator: Emulator, tmp_path: Path
) -> None:
    async with service() as api:
        await create(api, name="c1", type="container")
        await api.post(f"/v1/pools/{POOL}/volumes/container/c1/snapshots", json={"name": "s0"})
        assert (await api.post("/v1/cache/rebuild")).status_code == 200
        before = (await api.get("/v1/cache")).json()
        assert count_rows(tmp_path / "cache.db") == (1, 1)
        emulator.state.add_fault(action="error", method="GET", path=r"^/v1/resource-definitions")
        try:
            assert_problem(await api.post("/v1/cache/rebuild"), 503, "linstor_unavailable")
        finally:
            emulator.state.clear_faults()
        assert count_rows(tmp_path / "cache.db") == (1, 1)
        assert (await api.get("/v1/cache")).json()["last_sync"] == before["last_sync"]


@pytest.mark.postgres
async def test_two_replicas_share_one_postgresql_cache(
    service: ServiceFactory, emulator: Emulator, pg_url: str
) -> None:
    """Replica B serves, from the shared cache alone, what replica A wrote through."""
    async with (
        service(cache_url=pg_url, cache_mode="trust") as a,
        service(cache_url=pg_url, cache_mode="trust") as b,
    ):
        vol = await create(a, name="c1", type="container")
        emulator.state.add_fault(action="error", method="GET", path=r"^/v1/resource-definitions")
        try:
            from_b = await b.get(f"/v1/pools/{POOL}/volumes/container/c1")  # LINSTOR would fail: a cache hit
            assert from_b.status_code == 200, from_b.text
            assert from_b.headers["cache-status"] == "linstor-names; hit"
            assert from_b.json()["linstor_name"] == vol["linstor_name"]
        finally:
            emulator.state.clear_faults()
        assert (
            await b.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c2"})
        ).status_code == 200
        from_a = await a.get(f"/v1/pools/{POOL}/volumes/container/c2")
        assert from_a.headers["cache-status"] == "linstor-names; hit"
        assert (await a.get("/v1/cache")).json()["backend"] == "postgresql"


async def test_trust_mode_changes_act_on_what_linstor_holds_now(
    service: ServiceFactory, linstor: LinstorClient
) -> None:
    """A trusted entry may be stale for reads, never for writes: they confirm with LINSTOR first."""
    async with service(cache_mode="trust") as api:
        vol = await create(api, name="c1", type="container")
        await linstor.delete_resource_definition(vol["linstor_name"])  # behind the service's back
        stale = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
        assert stale.status_code == 200  # a read may be as old as the resync interval says
        renamed = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c2"})
        assert_problem(renamed, 404, "volume_not_found")
        again = await create(api, name="c1", type="container")  # the name is free in LINSTOR
        assert again["linstor_name"] != vol["linstor_name"]
        assert (await api.get(f"/v1/pools/{POOL}/volumes/container/c1")).json() == again


async def test_a_failing_cache_never_fails_what_linstor_can_answer(
    api: httpx.AsyncClient, service_server: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = service_server.app.state.services.cache

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(cache, "put", broken)
    monkeypatch.setattr(cache, "delete", broken)
    vol = await create(api, name="c1", type="container")
    renamed = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c2"})
    assert renamed.status_code == 200
    for read in ("by_key", "by_rd", "by_snapshot", "list"):
        monkeypatch.setattr(cache, read, broken)
    # reads fall back to LINSTOR, as without a cache
    got = await api.get(f"/v1/pools/{POOL}/volumes/container/c2")
    assert got.status_code == 200
    assert got.headers["cache-status"] == "linstor-names; fwd=miss"
    assert (await api.get(f"/v1/resolve/{vol['linstor_name']}")).status_code == 200
    listed = await api.get(f"/v1/pools/{POOL}/volumes")
    assert listed.status_code == 200, listed.text
    assert [v["name"] for v in listed.json()["volumes"]] == ["c2"]
    monkeypatch.undo()
    found = await api.get(f"/v1/pools/{POOL}/volumes/container/c2")  # verify mode repairs on the next lookup
    assert found.json()["linstor_name"] == vol["linstor_name"]


async def test_trusted_snapshot_resolution_asks_linstor_nothing(
    service: ServiceFactory, emulator: Emulator
) -> None:
    async with service(cache_mode="trust") as api:
        await create(api, name="c1", type="container")
        snap = (
            await api.post(f"/v1/pools/{POOL}/volumes/container/c1/snapshots", json={"name": "s0"})
        ).json()
        emulator.state.add_fault(action="error", method="GET", path=r"^/v1/")
        try:
            resolved = await api.get(f"/v1/resolve/{snap['linstor_name']}")
        finally:
            emulator.state.clear_faults()
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["snapshot"] == "s0"
