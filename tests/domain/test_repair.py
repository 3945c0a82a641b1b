"""The repair (app/repair.py) on the in-process emulator: each kind of damage made directly with the
LINSTOR client, reported exactly, left alone by a dry run, fixed by a pass that applies; no volume touched."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app import markers
from app.builds import ensure_staging_group
from app.claims import claim_name
from app.emulator import create_emulator_app
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import ResourceGroupCreate
from app.repair import Orphan, OrphanKind, Outcome, RepairAction, RepairService
from app.resolver import Resolver
from app.settings import CacheMode
from app.specs import CreateSpec, make_key
from app.volumes import VolumeService
from tests.support.domain import POOL, Domain, domain

OLD = time.time() - 3600  # an hour ago: past the default 600 s grace period
STAGING = "linstor-names-staging"
K = OrphanKind
A = RepairAction


def rd_name(first: str = "") -> str:
    """A prefixed RD or snapshot name; `first` fixes its first hex digits (to choose a duplicate's winner)."""
    return "incus-volume-" + (first + uuid.uuid4().hex)[:32]


def key_of(name: str) -> VolumeKey:
    return make_key(POOL, "default", VolumeType.CONTAINER, name)


def other_key(name: str) -> VolumeKey:
    return make_key("other", "default", VolumeType.CONTAINER, name)


async def create(d: Domain, name: str) -> VolumeRecord:
    return await d.volumes.create(POOL, CreateSpec(name=name, type=VolumeType.CONTAINER, size_bytes=1 << 20))


def old_marks(rd: str, operation: str) -> dict[str, str]:
    return markers.pending(rd, operation) | {markers.STARTED: f"{OLD:.3f}"}


async def world(client: LinstorClient) -> tuple[list[Any], list[Any]]:
    """Everything the repair could change: every RD with its group and props, every snapshot."""
    rds = await client.list_resource_definitions()
    snaps = await client.view_snapshots()
    return (
        sorted((rd.name, rd.resource_group_name, sorted(rd.props.items())) for rd in rds),
        sorted((s.resource_name, s.name) for s in snaps),
    )


def summary(orphans: tuple[Orphan, ...]) -> set[tuple[OrphanKind, str, str | None, RepairAction]]:
    return {(o.kind, o.rd, o.snapshot, o.action) for o in orphans}


@dataclass
class Damage:
    """What `damage` made: the volume that must survive, and what the report must list."""

    healthy: VolumeRecord
    winner: str
    bare: str
    snapper: str
    staged: str
    stranger: str
    elsewhere: str
    expected: set[tuple[OrphanKind, str, str | None, RepairAction]]


async def damage(d: Domain) -> Damage:
    """One of each kind, plus look-alikes that are not damage (young, elsewhere, or a volume)."""
    c, codec = d.client, d.volumes.codec
    expected: set[tuple[OrphanKind, str, str | None, RepairAction]] = set()
    # a healthy volume with a mapped snapshot: never touched
    healthy = await create(d, "healthy")
    await d.snapshots.create(healthy.key, "s1")
    healthy = (await d.volumes.get(healthy.key))[0]

    # prefixed RDs without identity: reported; removed only with our own pending mark
    bare, marked = rd_name(), rd_name()
    await c.create_resource_definition(bare, resource_group=POOL)
    await c.create_resource_definition(marked, resource_group=POOL, props=old_marks(marked, "create"))
    await c.create_resource_definition("not-ours", resource_group=POOL)
    expected |= {(K.NO_IDENTITY, bare, None, A.NONE), (K.NO_IDENTITY, marked, None, A.DELETE_RD)}

    # two RDs of one identity: the smallest name wins
    dup = await create(d, "dup")
    extra = rd_name("f" * 32)
    props = codec.volume_props(dup.key, ContentType.FILESYSTEM) | {markers.OWN_NAME: extra}
    await c.create_resource_definition(extra, resource_group=POOL, props=props)
    expected.add((K.DUPLICATE, extra, None, A.DELETE_RD))

    # unfinished creates: one past the grace period, one maybe still running
    stuck, running = rd_name(), rd_name()
    for name, marks in ((stuck, old_marks(stuck, "create")), (running, markers.pending(running, "create"))):
        props = codec.volume_props(key_of(f"v{name[-8:]}"), ContentType.FILESYSTEM) | marks
        await c.create_resource_definition(name, resource_group=POOL, props=props)
    expected.add((K.UNFINISHED, stuck, None, A.DELETE_RD))

    # the staging group: a restore left behind, a stranger, claims (expired, fresh, another pool's), and a
    # restore whose parent lives in another pool
    await ensure_staging_group(c, STAGING)
    await c.create_resource_group(ResourceGroupCreate(name="other"))
    await c.create_resource_definition("incus-volume-elsewhere", resource_group="other")
    staged, stranger, elsewhere = rd_name(), rd_name(), rd_name()
    await c.create_resource_definition(staged, resource_group=STAGING, props=old_marks(staged, "restore"))
    await c.create_resource_definition(stranger, resource_group=STAGING)
    foreign = old_marks(elsewhere, "restore") | {markers.OWN_NAME: "incus-volume-elsewhere"}
    await c.create_resource_definition(elsewhere, resource_group=STAGING, props=foreign)
    expired = claim_name(key_of("claimed"))
    claims = [(key_of("claimed"), OLD), (key_of("fresh"), time.time()), (other_key("claimed"), OLD)]
    for key, started in claims:
        claim = {markers.CLAIM: f"{key.pool}/default/container/{key.name}", markers.STARTED: str(started)}
        await c.create_resource_definition(claim_name(key), resource_group=STAGING, props=claim)
    expected |= {
        (K.STAGED_RESTORE, staged, None, A.DELETE_RD),
        (K.STAGED_UNKNOWN, stranger, None, A.NONE),
        (K.EXPIRED_CLAIM, expired, None, A.DELETE_RD),
    }

    # snapshot keys and snapshots: a key to a snapshot that is gone, a key copied from another volume, an
    # unmapped snapshot past the grace period and one maybe being taken now
    snapper = await create(d, "snapper")
    gone, young, unmapped = rd_name(), rd_name(), rd_name()
    inherited = healthy.snapshots["s1"]
    override = {codec.keys.snapshot("gone"): gone, codec.keys.doc_snapshot_prefix + "copied": inherited}
    await c.modify_resource_definition(snapper.rd_name, override_props=override)
    for snap in (young, unmapped):
        await c.create_snapshot(snapper.rd_name, snap)
    d.state.rds[snapper.rd_name.upper()].snapshots[unmapped.upper()].create_timestamp = int(OLD * 1000)
    expected |= {
        (K.STALE_SNAPSHOT_KEY, snapper.rd_name, gone, A.WAIT),
        (K.INHERITED_SNAPSHOT_KEY, snapper.rd_name, inherited, A.REMOVE_KEY),
        (K.UNMAPPED_SNAPSHOT, snapper.rd_name, unmapped, A.DELETE_SNAPSHOT),
    }
    winner = min(dup.rd_name, extra, key=str.upper)
    return Damage(healthy, winner, bare, snapper.rd_name, staged, stranger, elsewhere, expected)


async def test_the_report_lists_each_kind_of_damage_exactly_and_changes_nothing() -> None:
    async with domain() as d:
        made = await damage(d)
        repair = RepairService(d.volumes)
        before = await world(d.client)
        report = await repair.report(POOL)
        assert (report.pool, report.applied, report.grace_seconds) == (POOL, False, 600.0)
        assert summary(report.orphans) == made.expected
        assert {o.outcome for o in report.orphans} == {Outcome.PLANNED, Outcome.REPORTED}
        keys = {o.kind: o.key for o in report.orphans if o.key}
        assert keys == {
            K.STALE_SNAPSHOT_KEY: "Aux/Incus/snapshot-name/gone",
            K.INHERITED_SNAPSHOT_KEY: "Aux/Incus/SnapshotName/copied",
        }
        dry = await repair.repair(POOL, apply=False)
        assert summary(dry.orphans) == made.expected
        assert await world(d.client) == before


async def test_a_pass_that_applies_fixes_everything_and_touches_no_volume(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with domain() as d:
        made = await damage(d)
        repair = RepairService(d.volumes)
        caplog.set_level(logging.INFO, logger="linstor_names.audit")
        report = await repair.repair(POOL, apply=True)

        acted = [o for o in report.orphans if o.acts]
        assert {o.outcome for o in acted} == {Outcome.DONE}, [o for o in acted if o.error]
        assert {o.outcome for o in report.orphans if not o.acts} == {Outcome.REPORTED}
        audit = [r.getMessage() for r in caplog.records if r.name == "linstor_names.audit"]
        assert len(audit) == len(acted)
        key = next(o for o in acted if o.kind is K.INHERITED_SNAPSHOT_KEY)
        assert f"repair remove_key rd={key.rd} snapshot={key.snapshot} reason={key.reason}" in audit

        # only what an operator must decide is left, and a mapping to a missing snapshot still waiting
        again = await repair.report(POOL)
        left = {(o.kind, o.rd, o.action) for o in again.orphans}
        assert left == {
            (K.NO_IDENTITY, made.bare, A.NONE),
            (K.STAGED_UNKNOWN, made.stranger, A.NONE),
            (K.STALE_SNAPSHOT_KEY, made.snapper, A.WAIT),  # first seen by this pass: see the next test
        }

        # the volumes are as they were; the duplicate identity resolves to its winner again
        assert (await d.volumes.get(made.healthy.key))[0] == made.healthy
        assert [s.name for s in await d.snapshots.list_snapshots(made.healthy.key)] == ["s1"]
        assert (await d.volumes.get(key_of("dup")))[0].rd_name == made.winner
        snapper = (await d.volumes.get(key_of("snapper")))[0]
        assert list(snapper.snapshots) == ["gone"]  # the inherited key went, the waiting one is left
        assert d.cache is not None
        assert d.cache.rows[snapper.rd_name].snapshots == snapper.snapshots
        removed = {o.rd for o in acted if o.action is A.DELETE_RD}
        assert not removed & set(d.cache.rows)
        names = {rd.name for rd in await d.client.list_resource_definitions()}
        assert not removed & names
        assert "not-ours" in names


async def test_another_pool_sees_only_its_own_and_what_belongs_to_no_pool() -> None:
    async with domain() as d:
        made = await damage(d)
        report = await RepairService(d.volumes).report("other")
        # its identity-less RD, the restore whose parent lives there and the claim on it; the restore that
        # crashed before LINSTOR copied its parent's props and the stranger are in no pool: listed with each
        assert {(o.kind, o.rd, o.action) for o in report.orphans} == {
            (K.NO_IDENTITY, "incus-volume-elsewhere", A.NONE),
            (K.STAGED_RESTORE, made.elsewhere, A.DELETE_RD),
            (K.STAGED_RESTORE, made.staged, A.DELETE_RD),
            (K.EXPIRED_CLAIM, claim_name(other_key("claimed")), A.DELETE_RD),
            (K.STAGED_UNKNOWN, made.stranger, A.NONE),
        }


async def test_a_finished_single_volume_is_never_an_orphan_however_old_its_marks() -> None:
    """A volume whose create finished keeps its own-name mark and nothing else; with a grace period of 0 and
    every clock past, a pass that applies leaves it (and its snapshots) alone."""
    async with domain() as d:
        volume = await create(d, "keep")
        await d.snapshots.create(volume.key, "s1")
        before = await world(d.client)
        settings = d.volumes.settings.model_copy(update={"repair_grace": 0.0})
        repair = RepairService(VolumeService(d.client, d.volumes.resolver, settings))
        report = await repair.repair(POOL, apply=True)
        assert report.orphans == ()
        assert await world(d.client) == before


async def test_a_mapping_to_a_missing_snapshot_goes_only_when_still_missing_a_grace_period_later() -> None:
    """A snapshot create maps its name before it takes the snapshot: the repair must not take that mapping
    for a stale one. A key still missing `grace` seconds after this process first saw it goes; a key whose
    snapshot was taken meanwhile stays, and so does its snapshot."""
    async with domain() as d:
        clock = [time.time()]
        repair = RepairService(d.volumes, clock=lambda: clock[0])
        volume = await create(d, "v")
        gone, taking = rd_name(), rd_name()
        keys = d.volumes.codec.keys
        override = {keys.snapshot("gone"): gone, keys.snapshot("taking"): taking}
        await d.client.modify_resource_definition(volume.rd_name, override_props=override)

        first = await repair.repair(POOL, apply=True)
        assert {(o.key, o.action, o.outcome) for o in first.orphans} == {
            (keys.snapshot("gone"), A.WAIT, Outcome.REPORTED),
            (keys.snapshot("taking"), A.WAIT, Outcome.REPORTED),
        }
        await d.client.create_snapshot(volume.rd_name, taking)  # the create's second step lands
        clock[0] += 599
        assert {o.action for o in (await repair.report(POOL)).orphans} == {A.WAIT}
        clock[0] += 2

        later = await repair.repair(POOL, apply=True)
        assert [(o.kind, o.key, o.outcome) for o in later.orphans] == [
            (K.STALE_SNAPSHOT_KEY, keys.snapshot("gone"), Outcome.DONE)
        ]
        assert (await d.volumes.get(volume.key))[0].snapshots == {"taking": taking}
        assert (await repair.report(POOL)).orphans == ()


Hook = Callable[[httpx.Request], Awaitable[None]]


class Hooked(httpx.AsyncBaseTransport):
    """A transport that runs `hook` after each exchange: to change LINSTOR between a scan and its action."""

    def __init__(self, inner: httpx.AsyncBaseTransport, hook: Hook) -> None:
        self.inner = inner
        self.hook = hook

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await self.hook(request)
        return response


async def test_an_rd_finished_between_the_scan_and_the_action_is_skipped() -> None:
    """A retry adopts the unfinished RD (its marks go) after the scan: the fresh read before the delete sees
    a volume, so the repair skips it and the volume stays resolvable."""
    async with domain() as d:
        volume = await create(d, "late")
        marks = old_marks(volume.rd_name, "create")
        await d.client.modify_resource_definition(volume.rd_name, override_props=marks)

        async def finish_after_scan(request: httpx.Request) -> None:
            if request.url.path == "/v1/view/snapshots" and not request.url.params.get("resources"):
                d.state.rds[volume.rd_name.upper()].props.pop(markers.PENDING)

        transport = Hooked(httpx.ASGITransport(app=create_emulator_app(state=d.state)), finish_after_scan)
        async with LinstorClient(ConnectionConfig(urls=("http://emulator",)), transport=transport) as client:
            resolver = Resolver(client, d.volumes.codec, None, CacheMode.OFF)
            repair = RepairService(VolumeService(client, resolver, d.volumes.settings))
            report = await repair.repair(POOL, apply=True)
        [orphan] = report.orphans
        assert (orphan.kind, orphan.outcome, orphan.error) == (
            K.UNFINISHED,
            Outcome.SKIPPED,
            "changed since the scan",
        )
        assert (await d.volumes.get(volume.key))[0].rd_name == volume.rd_name


async def test_an_unfinished_rd_whose_identity_is_claimed_is_left_to_its_holder() -> None:
    """A writer holds the identity's claim (a retry adopting the RD): the repair does not delete under it."""
    async with domain() as d:
        volume = await create(d, "held")
        await d.client.modify_resource_definition(
            volume.rd_name, override_props=old_marks(volume.rd_name, "create")
        )
        async with d.volumes.claims.hold(volume.key):
            report = await RepairService(d.volumes).repair(POOL, apply=True)
        [orphan] = report.orphans
        assert (orphan.kind, orphan.outcome) == (K.UNFINISHED, Outcome.FAILED)
        assert orphan.error is not None
        assert "in progress" in orphan.error
        assert (await d.volumes.get(volume.key))[0].rd_name == volume.rd_name
