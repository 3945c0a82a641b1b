"""The three ways a volume's resource definition is made: a new volume, a copy, a copy of a snapshot.

Each is a build step for the one provisioning path (`VolumeService.provision`), which owns what they share:
the lock, the pool, the free check, the random name, the record, the undo, the settle and the cache
write-through. A build step only decides the volume's content and sizes (`plan`, under the lock, once the
pool is known) and makes the RD in LINSTOR (`make`, inside the undo: whatever it leaves is removed if it
or the settle fails).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from app import markers
from app.errors import InvalidInput, NotFound, UpstreamError
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient, LinstorExists, LinstorNotFound
from app.linstor.models import CloneRequest, ResourceGroupCreate, Snapshot
from app.naming import ALLOWED_CONTENT, AuxCodec, round_size_kib
from app.settings import Settings
from app.specs import CreateSpec, SourceSpec, source_key


class Sources(Protocol):
    """What the copy steps need of the volume service: its client, codec, settings and source lookup."""

    client: LinstorClient
    codec: AuxCodec
    settings: Settings

    async def get_source(self, key: VolumeKey) -> VolumeRecord:
        """The source of a copy: 404 source_not_found when absent."""
        ...


@dataclass(frozen=True, slots=True)
class Draft:
    """What a build step decided about the new volume before its name is taken."""

    content_type: ContentType
    sizes_kib: tuple[int, ...]
    description: str | None


class Build(Protocol):
    """One way of making a volume's resource definition."""

    operation: str  # what the RD's `pending` mark says until the build is finished (app/markers.py)

    async def plan(self, key: VolumeKey) -> Draft:
        """Look up the source and decide content and sizes (under the lock, before the free check)."""
        ...

    async def make(self, record: VolumeRecord, group: str) -> None:
        """Create `record.rd_name` in LINSTOR carrying `record`'s identity and the pending marks."""
        ...

    async def resume(self, record: VolumeRecord) -> None:
        """Finish what an earlier attempt of this request left undone on `record`'s RD (idempotent)."""
        ...

    async def finish(self, record: VolumeRecord) -> None:
        """The last step: the pending marks go, the RD is a volume like any other."""
        ...


class _Finishes:
    """`finish` for the builds whose last LINSTOR step did not already remove the marks."""

    client: LinstorClient

    async def finish(self, record: VolumeRecord) -> None:
        """Remove the pending marks in one property update."""
        await self.client.modify_resource_definition(record.rd_name, delete_props=markers.FINISHED)


class NewVolume(_Finishes):
    """A new, empty volume: one spawn carrying the identity, then autoplace if nothing was placed."""

    operation = "create"

    def __init__(self, spec: CreateSpec, client: LinstorClient, codec: AuxCodec, settings: Settings) -> None:
        if spec.size_bytes is None or spec.size_bytes <= 0:
            raise InvalidInput("invalid_size", "A positive size is required to create a volume")
        self.spec = spec
        self.client = client
        self.codec = codec
        self.content = spec.content_type or default_content(spec.type)
        check_content(spec.type, self.content)
        sizes = [round_size_kib(spec.size_bytes)]
        if spec.type is VolumeType.VIRTUAL_MACHINE:
            sizes.append(round_size_kib(settings.vm_filesystem_size))  # volume 1: the filesystem part
        self.sizes = tuple(sizes)

    async def plan(self, key: VolumeKey) -> Draft:
        """Content and sizes come from the request alone."""
        return Draft(self.content, self.sizes, self.spec.description)

    async def make(self, record: VolumeRecord, group: str) -> None:
        """One spawn whose resource_definition_props carry the identity (Incus writes it in a second call)."""
        props = self.codec.volume_props(record.key, record.content_type, record.description)
        props |= markers.pending(record.rd_name, self.operation)
        spawned = await self.client.spawn(group, record.rd_name, list(record.volume_sizes_kib), props=props)
        if not spawned.placed:  # a group without a place count: definitions only
            await self.client.autoplace(record.rd_name)

    async def resume(self, record: VolumeRecord) -> None:
        """An earlier attempt may have stopped between the spawn and the autoplace."""
        if not await self.client.list_resources(record.rd_name):
            await self.client.autoplace(record.rd_name)


class CloneOf(_Finishes):
    """A copy of a volume: a LINSTOR clone whose request carries the new identity, polled to completion.

    The clone copies every source prop (DRBD options included); the new identity replaces it in the clone's
    own transaction and the source's snapshot mappings are dropped, so no moment exists in which two RDs
    carry one identity (lxc/incus#2314; linstor-rest-api.md §2.8). Only the Aux identity goes in the request:
    linstor-server refuses a clone whose override_props set DrbdOptions/ExactSize=true
    (CtrlRscDfnApiCallHandler's clone "ExactSize check").
    """

    def __init__(self, spec: CreateSpec, source: SourceSpec, volumes: Sources) -> None:
        if spec.size_bytes is not None:
            raise InvalidInput("invalid_size", "size cannot be set on a copy: the copy has the source's size")
        check_copy_types(spec.type, source.type)
        self.spec = spec
        self.source = source
        self.volumes = volumes
        self.client = volumes.client
        self.source_rd = ""

    operation = "copy"

    async def plan(self, key: VolumeKey) -> Draft:
        """The source must exist; the copy has its content and sizes."""
        src = await self.volumes.get_source(source_key(key, self.source))
        self.source_rd = src.rd_name
        return Draft(copy_content(self.spec, src.content_type), src.volume_sizes_kib, self.spec.description)

    async def make(self, record: VolumeRecord, group: str) -> None:
        """Clone with the new identity, then wait for COMPLETE within the clone deadline."""
        change = identity_change(self.volumes.codec, record, pending=self.operation)
        request = CloneRequest(
            name=record.rd_name,
            resource_group=group,
            override_props=change.override_props,
            delete_props=change.delete_props,
            delete_namespaces=change.delete_namespaces,
        )
        await self.volumes.client.clone(self.source_rd, request)
        await self.resume(record)

    async def resume(self, record: VolumeRecord) -> None:
        """Wait for the clone to be COMPLETE within the clone deadline."""
        await wait_clone(self.volumes.client, self.volumes.settings, self.source_rd, record.rd_name)


class RestoreOf:
    """A new volume from a snapshot: the RD is made in the staging group, its volume definitions and
    resources are restored there, then one property update rewrites the identity and moves it into the pool.

    LINSTOR's restore copies the snapshot's RD props (the parent's identity and snapshot keys) over the new
    RD (linstor-rest-api.md §6.4): staged outside every pool, no lookup of the parent ever sees two matches,
    not even mid-restore, and a crash mid-way leaves the orphan outside every pool. The update rewrites the
    Aux identity only: the controller refuses DrbdOptions/ExactSize=true while resources are deployed
    (service-traffic.jsonl #156), and the RD inherited the DRBD options from the snapshot anyway.
    """

    def __init__(self, spec: CreateSpec, source: SourceSpec, volumes: Sources) -> None:
        if spec.size_bytes is not None:
            raise InvalidInput(
                "invalid_size", "size cannot be set on a copy: the copy has the snapshot's size"
            )
        check_copy_types(spec.type, source.type)
        assert source.snapshot is not None
        self.operation = "restore"
        self.spec = spec
        self.source = source
        self.snapshot_name = source.snapshot
        self.volumes = volumes
        self.parent_rd = ""
        self.linstor_snapshot = ""

    async def plan(self, key: VolumeKey) -> Draft:
        """The parent and its mapped snapshot must exist; the copy has the snapshot's sizes."""
        parent = await self.volumes.get_source(source_key(key, self.source))
        snap = await linstor_snapshot(self.volumes.client, parent, self.snapshot_name)
        self.parent_rd, self.linstor_snapshot = parent.rd_name, snap.name
        sizes = tuple(vd.size_kib for vd in sorted(snap.volume_definitions, key=lambda v: v.volume_number))
        return Draft(copy_content(self.spec, parent.content_type), sizes, self.spec.description)

    async def make(self, record: VolumeRecord, group: str) -> None:
        """Stage, restore, then one PUT: identity, inherited snapshot keys dropped, moved into the pool."""
        client = self.volumes.client
        staging = self.volumes.settings.staging_resource_group
        change = identity_change(self.volumes.codec, record)
        await ensure_staging_group(client, staging)
        marks = markers.pending(record.rd_name, self.operation)
        await client.create_resource_definition(record.rd_name, resource_group=staging, props=marks)
        await client.restore_volume_definitions(self.parent_rd, self.linstor_snapshot, record.rd_name)
        await client.restore_resources(self.parent_rd, self.linstor_snapshot, record.rd_name)
        await client.modify_resource_definition(
            record.rd_name,
            override_props=change.override_props,
            delete_props=change.delete_props,
            delete_namespaces=change.delete_namespaces,
            resource_group=group,
        )

    async def resume(self, record: VolumeRecord) -> None:
        """Nothing: a restore's RD reaches the pool only in the step that also finishes it."""

    async def finish(self, record: VolumeRecord) -> None:
        """Nothing: the identity update already removed the pending marks."""


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """The one property change that turns an RD copied from another into `record`'s volume."""

    override_props: dict[str, str]
    delete_props: list[str]
    delete_namespaces: list[str]


def identity_change(codec: AuxCodec, record: VolumeRecord, *, pending: str | None = None) -> IdentityChange:
    """Set the Aux identity, drop a copied description the new volume has not got, drop the source's
    snapshot mappings (both key spellings); mark the RD `pending` or, without it, finished."""
    keys = codec.keys
    override = codec.identity_props(record.key, record.content_type, record.description)
    delete = [] if record.description else [keys.description]
    if pending is not None:
        override |= markers.pending(record.rd_name, pending)
    else:
        override[markers.OWN_NAME] = record.rd_name
        delete += markers.FINISHED
    return IdentityChange(
        override_props=override, delete_props=delete, delete_namespaces=list(keys.snapshot_namespaces)
    )


async def linstor_snapshot(client: LinstorClient, record: VolumeRecord, name: str) -> Snapshot:
    """The LINSTOR snapshot a volume maps `name` to: 404 snapshot_not_found when unmapped or gone."""
    try:
        mapped = record.snapshots[name]
    except KeyError:
        raise NotFound("snapshot_not_found", f"Volume {record.key.name!r} has no snapshot {name!r}") from None
    try:
        return await client.get_snapshot(record.rd_name, mapped)
    except LinstorNotFound as exc:
        raise NotFound(
            "snapshot_not_found", f"Snapshot {name!r} of {record.key.name!r} is gone from LINSTOR"
        ) from exc


async def ensure_staging_group(client: LinstorClient, name: str) -> None:
    """The resource group restores happen in; created once, by whichever replica gets there first."""
    try:
        await client.get_resource_group(name)
        return
    except LinstorNotFound:
        pass
    try:
        await client.create_resource_group(
            ResourceGroupCreate(name=name, description="linstor-names: snapshot restores in progress")
        )
    except LinstorExists:
        pass  # another replica created it meanwhile


async def wait_clone(client: LinstorClient, settings: Settings, source_rd: str, clone_rd: str) -> None:
    """Poll the clone until COMPLETE; FAILED or the deadline is an error (Incus has no deadline)."""
    deadline = time.monotonic() + settings.clone_timeout
    while True:
        status = (await client.clone_status(source_rd, clone_rd)).status
        if status == "COMPLETE":
            return
        if status == "FAILED":
            raise UpstreamError("clone_failed", f"LINSTOR failed to clone {source_rd} into {clone_rd}")
        if time.monotonic() >= deadline:
            raise UpstreamError(
                "clone_timeout",
                f"clone of {source_rd} not complete after {settings.clone_timeout:g}s",
                status=504,
            )
        await asyncio.sleep(settings.clone_poll_interval)


def default_content(vtype: VolumeType) -> ContentType:
    """Block for VMs, a filesystem otherwise (as Incus)."""
    return ContentType.BLOCK if vtype is VolumeType.VIRTUAL_MACHINE else ContentType.FILESYSTEM


def check_content(vtype: VolumeType, content: ContentType) -> None:
    """422 invalid_content_type when the type cannot hold that content."""
    if content not in ALLOWED_CONTENT[vtype]:
        allowed = ", ".join(sorted(c.value for c in ALLOWED_CONTENT[vtype]))
        raise InvalidInput(
            "invalid_content_type", f"{vtype.value} volumes have content type {allowed}, not {content.value}"
        )


def check_copy_types(target: VolumeType, source: VolumeType) -> None:
    """Copies keep their type, except that instances are made from images (Incus's optimized images)."""
    if not (source is target or source is VolumeType.IMAGE):
        raise InvalidInput(
            "invalid_source", f"a {target.value} volume cannot be copied from a {source.value} volume"
        )


def copy_content(spec: CreateSpec, source: ContentType) -> ContentType:
    """A copy has its source's content type; it must fit the new volume's type."""
    if spec.content_type is not None and spec.content_type is not source:
        raise InvalidInput("invalid_content_type", f"the source's content type is {source.value}")
    check_content(spec.type, source)
    return source
