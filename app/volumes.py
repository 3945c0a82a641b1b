"""The domain service: create, look up, list, rename, copy and delete volumes.

Every LINSTOR object is named `<prefix><uuid4 hex>`; the identity lives in Aux properties written in the
same call that creates the resource definition, so no resource definition ever exists without (or with
someone else's) identity in the pool's resource group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from app.builds import Build, CloneOf, Draft, NewVolume, RestoreOf
from app.claims import Claims
from app.errors import Conflict, InvalidInput, NotFound
from app.identity import Pool, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient, LinstorNotFound
from app.linstor.models import ResourceGroup, Snapshot
from app.locks import KeyedLocks
from app.markers import OWN_NAME, PENDING
from app.naming import LINSTOR_NAME_RE, random_linstor_name, validate_project
from app.resolver import CacheInfo, Resolver, same_pool
from app.settings import Settings
from app.specs import CreateSpec, SourceSpec, make_key, source_key
from app.translate import translates_linstor_errors

__all__ = ["CreateSpec", "SourceSpec", "VolumeService", "make_key", "source_key"]

log = logging.getLogger(__name__)


class VolumeService:
    """The rules of naming and resolution, on top of the LINSTOR client and the resolver (cache)."""

    def __init__(self, client: LinstorClient, resolver: Resolver, settings: Settings) -> None:
        self.client = client
        self.resolver = resolver
        self.codec = resolver.codec
        self.settings = settings
        self.locks = KeyedLocks()
        self.claims = Claims(client, settings.staging_resource_group, settings.claim_timeout)

    # ---- pools -----------------------------------------------------------------------------------------

    @translates_linstor_errors("list pools")
    async def pools(self) -> list[Pool]:
        """The resource groups that can hold volumes (the restore staging group is not one)."""
        groups = await self.client.list_resource_groups()
        return [pool_of(g) for g in groups if not same_pool(g.name, self.settings.staging_resource_group)]

    def check_pool_name(self, pool: str) -> None:
        """400 invalid_pool, or 404 pool_not_found for the staging group: what a pool's name alone says."""
        if not LINSTOR_NAME_RE.fullmatch(pool):
            raise InvalidInput("invalid_pool", f"{pool!r} is not a valid LINSTOR resource group name")
        if same_pool(pool, self.settings.staging_resource_group):
            raise NotFound("pool_not_found", f"Pool {pool!r} is the service's staging group, not a pool")

    async def require_pool(self, pool: str) -> Pool:
        """The pool's resource group, or 404 pool_not_found."""
        self.check_pool_name(pool)
        return await self._pool(pool)

    async def _pool(self, pool: str) -> Pool:
        """The resource group of a pool whose name check_pool_name passed, or 404 pool_not_found."""
        try:
            return pool_of(await self.client.get_resource_group(pool))
        except LinstorNotFound as exc:
            raise NotFound("pool_not_found", f"Pool (resource group) {pool!r} not found") from exc

    # ---- lookups ---------------------------------------------------------------------------------------

    @translates_linstor_errors("look up volume")
    async def get(
        self, key: VolumeKey, *, confirm: bool = True, ahead: Callable[[str], object] | None = None
    ) -> tuple[VolumeRecord, CacheInfo]:
        """The one resource definition holding `key`: 404 when none, 409 ambiguous_volume when several.

        Changes need `confirm` (the default): a trusted cache entry is checked against LINSTOR first.
        `ahead`: Resolver.find's.
        """
        records, info = await self.resolver.find(key, confirm=confirm, ahead=ahead)
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

    @translates_linstor_errors("list volumes")
    async def list_volumes(
        self, pool: str, *, project: str | None, vtype: VolumeType | None, fresh: bool = False
    ) -> tuple[list[VolumeRecord], CacheInfo]:
        """Volumes of a pool."""
        if project is not None:
            validate_project(project)
        await self.require_pool(pool)
        return await self.resolver.list_volumes(pool, project=project, vtype=vtype, fresh=fresh)

    @translates_linstor_errors("resolve LINSTOR name")
    async def resolve(self, linstor_name: str) -> tuple[VolumeRecord, str | None, CacheInfo]:
        """Reverse lookup: the volume behind an RD name, or the volume and Incus name behind a snapshot."""
        if not LINSTOR_NAME_RE.fullmatch(linstor_name):
            raise InvalidInput("invalid_name", f"{linstor_name!r} is not a valid LINSTOR name")
        resolved = await self.resolver.resolve(linstor_name)
        if resolved is None:
            raise NotFound(
                "linstor_name_not_found", f"No volume or snapshot of this service is named {linstor_name!r}"
            )
        return resolved

    # ---- create and copy: the one provisioning path -------------------------------------------------------

    @translates_linstor_errors("create volume")
    async def create(self, pool: str, spec: CreateSpec) -> VolumeRecord:
        """Create a volume, or copy one (`spec.source`), or make one from a snapshot (`source.snapshot`)."""
        key = make_key(pool, spec.project, spec.type, spec.name)
        return await self.provision(key, self.build_for(spec))

    def build_for(self, spec: CreateSpec) -> Build:
        """The build step a request asks for (it checks what it can before any lock is taken)."""
        if spec.source is None:
            return NewVolume(spec, self.client, self.codec, self.settings)
        if spec.source.snapshot is None:
            return CloneOf(spec, spec.source, self)
        return RestoreOf(spec, spec.source, self)

    async def provision(self, key: VolumeKey, build: Build) -> VolumeRecord:
        """Make exactly one resource definition for `key`, or none: the invariant every create shares.

        Under the key's lock and the identity's claim (taken while the pool and the build's plan are looked
        up): the free check, a random name and the record; then the build makes the RD and `settle` checks
        that no other writer made the same identity meanwhile, both inside the undo, so any failure removes
        what was made; then the cache learns the new volume.
        """
        async with self.locks.hold(key):
            self.check_pool_name(key.pool)  # a name that cannot be a pool is refused before any claim
            # the pool and the build's source are looked up while the claim is taken (claims.py)
            async with self.claims.hold_while(key, self._prepare(key, build)) as (group, key, draft):
                adopted = await self.adopt_unfinished(key, draft, build)
                if adopted is not None:
                    return adopted
                record = VolumeRecord(
                    key=key,
                    rd_name=random_linstor_name(self.settings.volume_prefix),
                    content_type=draft.content_type,
                    description=draft.description,
                    volume_sizes_kib=draft.sizes_kib,
                )
                async with self.undo_on_error(record.rd_name):
                    await build.make(record, group.name)
                    await self.settle(record)
                    await build.finish(record)
                await self.resolver.remember(record)
                return record

    async def _prepare(self, key: VolumeKey, build: Build) -> tuple[Pool, VolumeKey, Draft]:
        """The pool, the key with the pool's own name, and the build's plan: the reads before a create."""
        group = await self._pool(key.pool)  # provision checked its name
        key = replace(key, pool=group.name)
        return group, key, await build.plan(key)

    async def adopt_unfinished(self, key: VolumeKey, draft: Draft, build: Build) -> VolumeRecord | None:
        """None when `key` is free; the volume when an earlier attempt of the same request left it
        unfinished (a timed-out create whose spawn completed later, a crash); else 409 volume_exists."""
        found = await self.resolver.find_in_linstor(key)
        if not found:
            return None
        if len(found) == 1:
            record = found[0]
            rd = await self.client.get_resource_definition(record.rd_name)
            unfinished = rd.props.get(PENDING) == build.operation and rd.props.get(OWN_NAME) == rd.name
            same = (record.content_type, record.volume_sizes_kib) == (draft.content_type, draft.sizes_kib)
            if unfinished and same:
                log.warning(
                    "adopting %s, left unfinished by an earlier %s of %s", rd.name, build.operation, key
                )
                await build.resume(record)
                await build.finish(record)
                await self.resolver.remember(record)
                return record
        raise Conflict(
            "volume_exists",
            f"Volume {key.type.value} {key.name!r} exists in pool {key.pool!r} (project {key.project!r})",
            resource_definition=found[0].rd_name,
        )

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
        await self.resolver.forget(rd)

    # ---- rename and delete -----------------------------------------------------------------------------

    @translates_linstor_errors("rename volume")
    async def rename(self, key: VolumeKey, new_name: str) -> VolumeRecord:
        """Rename by rewriting Aux/<ns>/name in one property update; the RD name never changes."""
        new_key = make_key(key.pool, key.project, key.type, new_name)
        async with self.locks.hold(key, new_key):
            if new_name == key.name:
                record, _ = await self.get(key)
                return record
            # the volume is looked up while the new identity's claim is taken (claims.py)
            async with self.claims.hold_while(new_key, self.get(key)) as (record, _):
                return await self._rename(record, replace(new_key, pool=record.key.pool))

    async def _rename(self, record: VolumeRecord, new_key: VolumeKey) -> VolumeRecord:
        """The rename itself, under the new identity's claim."""
        await self.require_free(new_key)  # Incus does not check (incus-linstor-driver.md §4.1); we do
        await self.client.modify_resource_definition(
            record.rd_name, override_props={self.codec.keys.name: self.codec.aux_name(new_key)}
        )
        renamed = replace(record, key=new_key)
        await self.resolver.remember(renamed)
        return renamed

    @translates_linstor_errors("delete volume")
    async def delete(self, key: VolumeKey) -> None:
        """Delete the volume's LINSTOR snapshots (LINSTOR refuses otherwise), then its resource definition."""
        async with self.locks.hold(key):
            # the RD the cache knows is listed for snapshots while the scan confirms it: one round trip
            ahead: dict[str, asyncio.Future[list[Snapshot]]] = {}

            def list_ahead(rd: str) -> None:
                ahead[rd] = asyncio.ensure_future(self.client.list_snapshots(rd))

            try:
                record, _ = await self.get(key, ahead=list_ahead)
            except BaseException:
                _discard(*ahead.values())
                raise
            listing = ahead.pop(record.rd_name, None)  # used only for the RD the scan confirmed
            _discard(*ahead.values())
            snaps = await listing if listing is not None else await self.client.list_snapshots(record.rd_name)
            for snap in snaps:
                await self.client.delete_snapshot(record.rd_name, snap.name)
            await self.client.delete_resource_definition(record.rd_name)
            await self.resolver.forget(record.rd_name)


def _discard(*tasks: asyncio.Future[Any]) -> None:
    """Reads sent ahead that are not wanted: cancelled if still out, their outcome never raised or logged."""
    for task in tasks:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


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


def pool_of(group: ResourceGroup) -> Pool:
    """The pool a resource group is: its placement, not LINSTOR's wire model."""
    f = group.select_filter
    pools = f.storage_pool_list or ([f.storage_pool] if f.storage_pool else [])
    return Pool(
        name=group.name, description=group.description, place_count=f.place_count, storage_pools=tuple(pools)
    )
