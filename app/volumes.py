"""The domain service: create, look up, list, rename, copy and delete volumes.

Every LINSTOR object is named `<prefix><uuid4 hex>`; the identity lives in Aux properties written in the
same call that creates the resource definition, so no resource definition ever exists without (or with
someone else's) identity in the pool's resource group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

from app.errors import Conflict, InvalidInput, NotFound, UpstreamError
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient, LinstorNotFound
from app.linstor.client import spawned_without_resources
from app.linstor.models import CloneRequest, ResourceGroup
from app.locks import KeyedLocks
from app.naming import (
    ALLOWED_CONTENT,
    DEFAULT_PROJECT,
    LINSTOR_NAME_RE,
    random_linstor_name,
    round_size_kib,
    validate_project,
    validate_volume_name,
)
from app.resolver import CacheInfo, Resolver, same_pool
from app.settings import Settings
from app.upstream import upstream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSpec:
    """Where a copy comes from: a volume, or one of its snapshots."""

    type: VolumeType
    name: str
    project: str | None = None
    pool: str | None = None
    snapshot: str | None = None


@dataclass(frozen=True)
class CreateSpec:
    """A create or copy request, as the API received it."""

    name: str
    type: VolumeType
    content_type: ContentType | None = None
    project: str = DEFAULT_PROJECT
    size_bytes: int | None = None
    description: str | None = None
    source: SourceSpec | None = None


def make_key(pool: str, project: str, vtype: VolumeType, name: str) -> VolumeKey:
    """A validated volume identity."""
    validate_project(project)
    validate_volume_name(vtype, name)
    if vtype is VolumeType.IMAGE and project != DEFAULT_PROJECT:
        raise InvalidInput(
            "invalid_project", "Image volumes always belong to project 'default' (as in Incus)"
        )
    return VolumeKey(pool=pool, project=project, type=vtype, name=name)


class VolumeService:
    """The rules of naming and resolution, on top of the LINSTOR client and the resolver (cache)."""

    def __init__(self, client: LinstorClient, resolver: Resolver, settings: Settings) -> None:
        self.client = client
        self.resolver = resolver
        self.codec = resolver.codec
        self.settings = settings
        self.locks = KeyedLocks()

    # ---- pools -----------------------------------------------------------------------------------------

    async def pools(self) -> list[ResourceGroup]:
        """The resource groups that can hold volumes (the restore staging group is not one)."""
        with upstream("list pools"):
            groups = await self.client.list_resource_groups()
        return [g for g in groups if not same_pool(g.name, self.settings.staging_resource_group)]

    async def require_pool(self, pool: str) -> ResourceGroup:
        """The pool's resource group, or 404 pool_not_found."""
        if not LINSTOR_NAME_RE.fullmatch(pool):
            raise InvalidInput("invalid_pool", f"{pool!r} is not a valid LINSTOR resource group name")
        if same_pool(pool, self.settings.staging_resource_group):
            raise NotFound("pool_not_found", f"Pool {pool!r} is the service's staging group, not a pool")
        with upstream("read pool"):
            try:
                return await self.client.get_resource_group(pool)
            except LinstorNotFound as exc:
                raise NotFound("pool_not_found", f"Pool (resource group) {pool!r} not found") from exc

    # ---- lookups ---------------------------------------------------------------------------------------

    async def get(self, key: VolumeKey, *, confirm: bool = True) -> tuple[VolumeRecord, CacheInfo]:
        """The one resource definition holding `key`: 404 when none, 409 ambiguous_volume when several.

        Changes need `confirm` (the default): a trusted cache entry is checked against LINSTOR first.
        """
        records, info = await self.resolver.find(key, confirm=confirm)
        return self.only(key, records), info

    def only(self, key: VolumeKey, records: list[VolumeRecord]) -> VolumeRecord:
        """Exactly one match, or the error that says why not."""
        if not records:
            raise NotFound(
                "volume_not_found",
                f"No {key.type.value} volume {key.name!r} in pool {key.pool!r} (project {key.project!r})",
            )
        if len(records) > 1:
            names = sorted(r.rd_name for r in records)
            raise Conflict(
                "ambiguous_volume",
                f"{len(records)} resource definitions carry volume {key.name!r}: {', '.join(names)}",
                resource_definitions=names,
            )
        return records[0]

    async def get_source(self, key: VolumeKey) -> VolumeRecord:
        """The source of a copy: 404 source_not_found when absent."""
        try:
            record, _ = await self.get(key)
        except NotFound as exc:
            raise NotFound("source_not_found", f"Source: {exc.detail}") from exc
        return record

    async def list_volumes(
        self, pool: str, *, project: str | None, vtype: VolumeType | None, fresh: bool = False
    ) -> tuple[list[VolumeRecord], CacheInfo]:
        """Volumes of a pool."""
        if project is not None:
            validate_project(project)
        await self.require_pool(pool)
        return await self.resolver.list_volumes(pool, project=project, vtype=vtype, fresh=fresh)

    # ---- create and copy -------------------------------------------------------------------------------

    async def create(self, pool: str, spec: CreateSpec) -> VolumeRecord:
        """Create a volume, or copy one when `spec.source` is set."""
        key = make_key(pool, spec.project, spec.type, spec.name)
        if spec.source is not None:
            return await self._copy(key, spec, spec.source)
        if spec.size_bytes is None or spec.size_bytes <= 0:
            raise InvalidInput("invalid_size", "A positive size is required to create a volume")
        content = spec.content_type or _default_content(spec.type)
        _check_content(spec.type, content)
        sizes = [round_size_kib(spec.size_bytes)]
        if spec.type is VolumeType.VIRTUAL_MACHINE:
            sizes.append(round_size_kib(self.settings.vm_filesystem_size))  # volume 1: the filesystem part
        props = self.codec.volume_props(key, content, spec.description)
        async with self.locks.hold(key):
            group = await self.require_pool(pool)
            key = replace(key, pool=group.name)
            await self.require_free(key)
            rd = random_linstor_name(self.settings.volume_prefix)
            record = VolumeRecord(
                key=key,
                rd_name=rd,
                content_type=content,
                description=spec.description,
                volume_sizes_kib=tuple(sizes),
            )
            async with self.undo_on_error(rd):
                with upstream("create volume"):
                    rcs = await self.client.spawn(group.name, rd, sizes, props=props)
                    if spawned_without_resources(rcs):
                        await self.client.autoplace(rd)
                await self.settle(record)
            await self.resolver.written(record)
            return record

    async def _copy(self, key: VolumeKey, spec: CreateSpec, source: SourceSpec) -> VolumeRecord:
        if spec.size_bytes is not None:
            raise InvalidInput("invalid_size", "size cannot be set on a copy: the copy has the source's size")
        src_key = source_key(key, source)
        check_copy_types(spec.type, source.type)
        async with self.locks.hold(key):
            group = await self.require_pool(key.pool)
            key = replace(key, pool=group.name)
            src = await self.get_source(src_key)
            content = copy_content(spec, src.content_type)
            await self.require_free(key)
            rd = random_linstor_name(self.settings.volume_prefix)
            # The clone copies every source prop (DRBD options included); the new identity replaces it in
            # the clone's own transaction and the source's snapshot mappings are dropped, so no moment exists
            # in which two RDs carry one identity (lxc/incus#2314; linstor-rest-api.md §2.8). Only the Aux
            # identity goes in the request: linstor-server refuses a clone whose override_props set
            # DrbdOptions/ExactSize=true (CtrlRscDfnApiCallHandler's clone "ExactSize check").
            props = self.codec.identity_props(key, content, spec.description)
            request = CloneRequest(
                name=rd,
                resource_group=group.name,
                override_props=props,
                delete_props=[] if spec.description else [self.codec.keys.description],
                delete_namespaces=self.codec.keys.snapshot_namespaces,
            )
            record = VolumeRecord(
                key=key,
                rd_name=rd,
                content_type=content,
                description=spec.description,
                volume_sizes_kib=src.volume_sizes_kib,
            )
            async with self.undo_on_error(rd):
                with upstream("copy volume"):
                    await self.client.clone(src.rd_name, request)
                await self._wait_clone(src.rd_name, rd)
                await self.settle(record)
            await self.resolver.written(record)
            return record

    async def _wait_clone(self, source_rd: str, clone_rd: str) -> None:
        """Poll the clone until COMPLETE; FAILED or the deadline is an error (Incus has no deadline)."""
        deadline = time.monotonic() + self.settings.clone_timeout
        while True:
            with upstream("wait for clone"):
                status = (await self.client.clone_status(source_rd, clone_rd)).status
            if status == "COMPLETE":
                return
            if status == "FAILED":
                raise UpstreamError("clone_failed", f"LINSTOR failed to clone {source_rd} into {clone_rd}")
            if time.monotonic() >= deadline:
                raise UpstreamError(
                    "clone_timeout",
                    f"clone of {source_rd} not complete after {self.settings.clone_timeout:g}s",
                    status=504,
                )
            await asyncio.sleep(self.settings.clone_poll_interval)

    async def require_free(self, key: VolumeKey) -> None:
        """409 volume_exists when `key` is taken."""
        # authoritative: a trusted cache could hold an entry deleted behind the service's back, and only the
        # props filter sees a duplicate created behind it
        records = await self.resolver.find_in_linstor(key)
        if records:
            raise Conflict(
                "volume_exists",
                f"Volume {key.type.value} {key.name!r} exists in pool {key.pool!r} (project {key.project!r})",
                resource_definition=records[0].rd_name,
            )

    async def settle(self, record: VolumeRecord) -> None:
        """After a create: if another writer (another replica) made the same identity meanwhile, the RD with
        the smallest name wins and the others remove themselves, so exactly one survives. Call it inside
        `undo_on_error`: a create that cannot be settled is removed too."""
        found = await self.resolver.find_in_linstor(record.key)
        rivals = sorted(r.rd_name.upper() for r in found if r.rd_name != record.rd_name)
        if rivals and rivals[0] < record.rd_name.upper():
            raise Conflict(
                "volume_exists", f"Volume {record.key.name!r} was created concurrently by another writer"
            )

    def undo_on_error(self, rd: str) -> _Undo:
        """Remove `rd` if the block raises: a failed create or copy leaves nothing behind."""
        return _Undo(self, rd)

    async def discard(self, rd: str) -> None:
        """Delete a resource definition this service created, whatever happens to the caller."""
        try:
            await asyncio.shield(self.client.delete_resource_definition(rd))
        except Exception:  # the original error matters more; the orphan is logged for an operator
            log.exception("could not remove %s after a failed create; remove it by hand", rd)
        await self.resolver.removed(rd)

    # ---- rename and delete -----------------------------------------------------------------------------

    async def rename(self, key: VolumeKey, new_name: str) -> VolumeRecord:
        """Rename by rewriting Aux/<ns>/name in one property update; the RD name never changes."""
        new_key = make_key(key.pool, key.project, key.type, new_name)
        async with self.locks.hold(key, new_key):
            record, _ = await self.get(key)
            new_key = replace(new_key, pool=record.key.pool)
            if new_name == key.name:
                return record
            await self.require_free(new_key)  # Incus does not check (incus-linstor-driver.md §4.1); we do
            with upstream("rename volume"):
                await self.client.modify_resource_definition(
                    record.rd_name, override_props={self.codec.keys.name: self.codec.aux_name(new_key)}
                )
            renamed = replace(record, key=new_key)
            await self.resolver.written(renamed)
            return renamed

    async def delete(self, key: VolumeKey) -> None:
        """Delete the volume's LINSTOR snapshots (LINSTOR refuses otherwise), then its resource definition."""
        async with self.locks.hold(key):
            record, _ = await self.get(key)
            with upstream("delete volume"):
                for snap in await self.client.list_snapshots(record.rd_name):
                    await self.client.delete_snapshot(record.rd_name, snap.name)
                await self.client.delete_resource_definition(record.rd_name)
            await self.resolver.removed(record.rd_name)


class _Undo:
    """Async context: on any error inside, remove the resource definition being created, then re-raise."""

    def __init__(self, service: VolumeService, rd: str) -> None:
        self.service = service
        self.rd = rd

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is not None:
            await self.service.discard(self.rd)


def _default_content(vtype: VolumeType) -> ContentType:
    return ContentType.BLOCK if vtype is VolumeType.VIRTUAL_MACHINE else ContentType.FILESYSTEM


def _check_content(vtype: VolumeType, content: ContentType) -> None:
    if content not in ALLOWED_CONTENT[vtype]:
        allowed = ", ".join(sorted(c.value for c in ALLOWED_CONTENT[vtype]))
        raise InvalidInput(
            "invalid_content_type", f"{vtype.value} volumes have content type {allowed}, not {content.value}"
        )


def source_key(target: VolumeKey, source: SourceSpec) -> VolumeKey:
    """The source's identity; pool and project default to the target's."""
    return make_key(source.pool or target.pool, source.project or target.project, source.type, source.name)


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
    _check_content(spec.type, source)
    return source
