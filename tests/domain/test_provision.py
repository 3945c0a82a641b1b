"""The one provisioning path: one identity, exactly one RD, nothing left behind (app/volumes.py `provision`).

The domain runs without HTTP in front, on the in-process emulator; each test names the rule it guards.
"""

from __future__ import annotations

import asyncio

import pytest

from app.builds import Build, Draft, NewVolume
from app.errors import Conflict, ServiceError, UpstreamError
from app.identity import VolumeKey, VolumeRecord, VolumeType
from app.specs import CreateSpec, SourceSpec, make_key
from tests.support.domain import POOL, Domain, domain

SPAWN = "/v1/resource-groups/{resource_group}/spawn"
C1 = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 30)


async def rd_names(d: Domain) -> list[str]:
    """Every RD in LINSTOR."""
    return sorted(rd.name for rd in await d.client.list_resource_definitions())


async def test_concurrent_creates_of_one_key_give_one_volume_one_409_and_one_spawn() -> None:
    """The in-process lock: the second create waits, then finds the key taken before it spawns anything."""
    async with domain() as d:
        d.state.add_fault(action="latency", method="POST", path=r"/spawn$", seconds=0.1)
        results = await asyncio.gather(
            d.volumes.create(POOL, C1), d.volumes.create(POOL, C1), return_exceptions=True
        )
        created = [r for r in results if isinstance(r, VolumeRecord)]
        refused = [r for r in results if isinstance(r, Conflict)]
        assert (len(created), len(refused)) == (1, 1)
        assert refused[0].code == "volume_exists"
        assert len(d.writes("POST", SPAWN)) == 1
        assert await rd_names(d) == [created[0].rd_name]


class WithRival:
    """A build step that lets a rival writer (another replica) create the same identity meanwhile."""

    def __init__(self, inner: Build, d: Domain, rival: str) -> None:
        self.inner = inner
        self.d = d
        self.rival = rival
        self.operation = inner.operation

    async def plan(self, key: VolumeKey) -> Draft:
        """The inner step's plan."""
        return await self.inner.plan(key)

    async def make(self, record: VolumeRecord, group: str) -> None:
        """Ours, then the rival's RD with the same identity (created behind our back)."""
        await self.inner.make(record, group)
        props = self.d.volumes.codec.volume_props(record.key, record.content_type)
        await self.d.client.create_resource_definition(self.rival, resource_group=group, props=props)

    async def resume(self, record: VolumeRecord) -> None:
        """The inner step's resume."""
        await self.inner.resume(record)

    async def finish(self, record: VolumeRecord) -> None:
        """The inner step's finish."""
        await self.inner.finish(record)


@pytest.mark.parametrize(
    ("rival", "ours_stays"),
    [("incus-volume-00000000000000000000000000000000", False), ("incus-volume-zzzz", True)],
    ids=["smaller-name-wins", "larger-name-steps-back"],
)
async def test_settle_keeps_the_rd_with_the_smallest_name(rival: str, ours_stays: bool) -> None:
    """Across replicas: after a create, the smallest RD name wins and the others remove themselves."""
    async with domain() as d:
        v = d.volumes
        key = make_key(POOL, "default", VolumeType.CONTAINER, "c1")
        build = WithRival(NewVolume(C1, v.client, v.codec, v.settings), d, rival)
        if ours_stays:
            record = await v.provision(key, build)
            assert await rd_names(d) == sorted([record.rd_name, rival])
        else:
            with pytest.raises(Conflict) as refused:
                await v.provision(key, build)
            assert refused.value.code == "volume_exists"
            assert await rd_names(d) == [rival]


IMAGE = "a" * 64
FAILURES = {
    "spawn": ("new", ("error", "POST", r"/spawn$"), 503, "linstor_unavailable"),
    "clone request": ("clone", ("error", "POST", r"/clone$"), 503, "linstor_unavailable"),
    "clone failed": ("clone", ("clone_fail", "", ""), 502, "clone_failed"),
    "clone too slow": ("clone", ("clone_slow", "", ""), 504, "clone_timeout"),
    "restore volume definitions": (
        "restore",
        ("error", "POST", r"/snapshot-restore-volume-definition/"),
        503,
        "linstor_unavailable",
    ),
    "restore resources": (
        "restore",
        ("error", "POST", r"/snapshot-restore-resource/"),
        503,
        "linstor_unavailable",
    ),
    "identity rewrite": (
        "restore",
        ("error", "PUT", r"^/v1/resource-definitions/[^/]+$"),
        503,
        "linstor_unavailable",
    ),
}


@pytest.mark.parametrize("step", list(FAILURES))
async def test_every_build_step_that_fails_leaves_nothing(step: str) -> None:
    """A create, copy or copy-from-snapshot that fails anywhere answers its error and removes what it made."""
    kind, (action, method, path), status, code = FAILURES[step]
    async with domain() as d:
        image = await d.volumes.create(
            POOL, CreateSpec(name=IMAGE, type=VolumeType.IMAGE, size_bytes=1 << 30)
        )
        await d.snapshots.create(image.key, "snap0")
        before = await rd_names(d)
        if action == "clone_fail":
            d.state.set_clone_behaviour(fail=True)
        elif action == "clone_slow":
            d.state.set_clone_behaviour(seconds=60)
            d.volumes.settings = d.volumes.settings.model_copy(update={"clone_timeout": 0.1})
        else:
            d.state.add_fault(action=action, method=method, path=path, times=1)
        source = {
            "new": None,
            "clone": SourceSpec(type=VolumeType.IMAGE, name=IMAGE),
            "restore": SourceSpec(type=VolumeType.IMAGE, name=IMAGE, snapshot="snap0"),
        }[kind]
        spec = CreateSpec(
            name="c1",
            type=VolumeType.CONTAINER,
            size_bytes=None if source else 1 << 30,
            source=source,
        )
        with pytest.raises(ServiceError) as failed:
            await d.volumes.create(POOL, spec)
        assert (type(failed.value), failed.value.status, failed.value.code) == (UpstreamError, status, code)
        d.state.clear_faults()
        d.state.set_clone_behaviour()
        assert await rd_names(d) == before
