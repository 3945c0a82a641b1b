"""Crash at every step (issue 10's proof): each multi-step operation is cut after its k-th LINSTOR write,
for every k, as a killed process would be (that write lands, nothing after it does, not even the undo).
A restarted service then runs one repair pass; every volume the API reported stays resolvable, nothing is
orphaned, and no identity is held twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest

from app.emulator import EmulatorState, create_emulator_app
from app.identity import VolumeType
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import AutoSelectFilter, ResourceGroupCreate
from app.naming import AuxCodec
from app.repair import RepairService
from app.resolver import Resolver
from app.settings import CacheMode, Settings
from app.snapshots import SnapshotService
from app.specs import CreateSpec, SourceSpec, make_key
from app.volumes import VolumeService

POOL = "linstor"
SETTINGS = Settings(
    cache_url="none", clone_poll_interval=0.01, clone_timeout=5.0, repair_grace=0.0, claim_timeout=0.001
)


class Killed(Exception):
    """The process died: every call from now on fails."""


class Killer(httpx.AsyncBaseTransport):
    """Forwards to the emulator; after the k-th write (non-GET) has landed, the process is dead."""

    def __init__(self, inner: httpx.AsyncBaseTransport, after_writes: int | None) -> None:
        self.inner = inner
        self.left = after_writes
        self.dead = False
        self.writes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Pass the request on, unless dead; die right after the k-th write's answer."""
        if self.dead:
            raise Killed("the service process is gone")
        response = await self.inner.handle_async_request(request)
        if request.method != "GET":
            self.writes += 1
        if request.method != "GET" and self.left is not None:
            self.left -= 1
            if self.left == 0:
                await response.aread()
                self.dead = True
                raise Killed("killed after this write")
        return response


def services(client: LinstorClient) -> tuple[VolumeService, SnapshotService]:
    """A fresh process's domain services, without a cache."""
    resolver = Resolver(
        client, AuxCodec(SETTINGS.volume_prefix, SETTINGS.property_namespace), None, CacheMode.OFF
    )
    volumes = VolumeService(client, resolver, SETTINGS)
    return volumes, SnapshotService(volumes)


def spec(name: str, **extra: object) -> CreateSpec:
    """A container volume request."""
    return CreateSpec(name=name, type=VolumeType.CONTAINER, size_bytes=None if extra else 1 << 20, **extra)  # type: ignore[arg-type]


CLAIMED = {"create", "copy", "copy from snapshot", "rename"}  # their last write releases the claim
Operation = Callable[[VolumeService, SnapshotService], Awaitable[object]]
OPERATIONS: dict[str, Operation] = {
    "create": lambda v, s: v.create(POOL, spec("new")),
    "copy": lambda v, s: v.create(POOL, spec("new", source=SourceSpec(VolumeType.CONTAINER, "base"))),
    "copy from snapshot": lambda v, s: v.create(
        POOL, spec("new", source=SourceSpec(VolumeType.CONTAINER, "base", snapshot="s0"))
    ),
    "rename": lambda v, s: v.rename(make_key(POOL, "default", VolumeType.CONTAINER, "base"), "renamed"),
    "delete": lambda v, s: v.delete(make_key(POOL, "default", VolumeType.CONTAINER, "base")),
    "snapshot": lambda v, s: s.create(make_key(POOL, "default", VolumeType.CONTAINER, "base"), "s1"),
    "snapshot delete": lambda v, s: s.delete(make_key(POOL, "default", VolumeType.CONTAINER, "base"), "s0"),
}


async def run_once(name: str, kill_after: int | None, total: int = 0) -> int:
    """Set up `base` with snapshot s0, run the operation cut after `kill_after` writes (None: uncut; the
    operation makes `total` writes then), restart, repair, check the invariants; the writes it made."""
    operation = OPERATIONS[name]
    state = EmulatorState()
    app = create_emulator_app(state=state)
    config = ConnectionConfig(urls=("http://emulator",))
    async with LinstorClient(config, transport=httpx.ASGITransport(app=app), retries=0) as setup:
        await setup.create_resource_group(
            ResourceGroupCreate(name=POOL, select_filter=AutoSelectFilter(place_count=2))
        )
        volumes, snapshots = services(setup)
        base = await volumes.create(POOL, spec("base"))
        await snapshots.create(base.key, "s0")
    killer = Killer(httpx.ASGITransport(app=app), kill_after)
    succeeded = False
    async with LinstorClient(config, transport=killer, retries=0) as doomed:
        volumes, snapshots = services(doomed)
        try:
            await operation(volumes, snapshots)
            succeeded = True
        except Exception:  # the operation's own error, or the kill
            pass
    async with LinstorClient(config, transport=httpx.ASGITransport(app=app), retries=0) as restarted:
        volumes, snapshots = services(restarted)
        await asyncio.sleep(0.01)  # the restart takes longer than the claim timeout of this test
        await RepairService(volumes).repair(POOL, apply=True)
        rds = await restarted.list_resource_definitions(with_volume_definitions=True)
        records = [r for rd in rds if (r := volumes.resolver.decode(rd)) is not None]
        in_pool = [r for r in records if r.key.pool.upper() == POOL.upper()]
        held = Counter(r.key for r in in_pool)
        assert [k for k, n in held.items() if n > 1] == [], "an identity is held twice"
        prefixed = [rd.name for rd in rds if rd.name.startswith(SETTINGS.volume_prefix)]
        assert sorted(prefixed) == sorted(r.rd_name for r in in_pool), "an orphan RD is left"
        assert [
            rd.name for rd in rds if rd.resource_group_name.upper() == SETTINGS.staging_resource_group.upper()
        ] == []
        names = {r.key.name for r in in_pool}
        # what the API reported stays resolvable: `base`, except where the operation asked for it to go
        # (a delete or rename cut after its decisive write took effect without an answer, as a kill must)
        if name not in ("delete", "rename"):
            assert "base" in names, names
        if name in ("create", "copy", "copy from snapshot"):
            # the new volume exists once its last step (the write that removes its pending mark, just before
            # the claim's release) has landed; cut before it, its RD was never a volume: the repair removed it
            finished = kill_after is None or kill_after >= total - 1
            assert ("new" in names) is finished, (kill_after, total, names)
        for record in in_pool:
            found, _ = await volumes.get(record.key)
            assert found.rd_name == record.rd_name
            have = {snap.name for snap in await restarted.list_snapshots(record.rd_name)}
            assert set(found.snapshots.values()) == have, "a mapping without its snapshot, or the reverse"
        # a cut on the claim's release still answers success: the release is best effort, the claim expires
        assert succeeded is (kill_after is None or (name in CLAIMED and kill_after == total))
        return killer.writes


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_a_crash_after_any_write_leaves_nothing_a_repair_pass_cannot_put_right(name: str) -> None:
    """Run the operation uncut to count its writes, then cut it after its 1st, 2nd, ... last write."""
    total = await run_once(name, None)
    assert total >= 2
    for kill_after in range(1, total + 1):
        await run_once(name, kill_after, total)
