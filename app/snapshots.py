"""Snapshots: create, list, rename, delete, restore (rollback), and new volumes from a snapshot.

Incus maps each snapshot with a key on the parent RD, `Aux/<ns>/snapshot-name/<incus name>` = LINSTOR
snapshot name (its code writes `snapshot-name`; its documentation shows `SnapshotName`:
incus-linstor-driver.md §2.5). LINSTOR snapshot names come from the same `<prefix><uuid4 hex>` generator.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from app.builds import linstor_snapshot
from app.errors import Conflict, NotFound
from app.identity import SnapshotInfo, VolumeKey, VolumeRecord
from app.linstor.models import Snapshot
from app.naming import random_linstor_name, validate_snapshot_name
from app.translate import translates_linstor_errors
from app.volumes import VolumeService

log = logging.getLogger(__name__)


def snapshot_info(name: str, snap: Snapshot) -> SnapshotInfo:
    """The domain's view of a mapped LINSTOR snapshot."""
    sizes = tuple(vd.size_kib for vd in sorted(snap.volume_definitions, key=lambda v: v.volume_number))
    return SnapshotInfo(
        name=name,
        linstor_name=snap.name,
        created_on_ms=snap.created_on,
        nodes=tuple(snap.nodes),
        volume_sizes_kib=sizes,
        flags=tuple(snap.flags),
    )


class SnapshotService:
    """Snapshot operations on top of the volume service."""

    def __init__(self, volumes: VolumeService) -> None:
        self.volumes = volumes
        self.client = volumes.client
        self.keys = volumes.codec.keys
        self.settings = volumes.settings

    # ---- read ------------------------------------------------------------------------------------------

    @translates_linstor_errors("list snapshots")
    async def list_snapshots(self, key: VolumeKey) -> list[SnapshotInfo]:
        """The volume's mapped snapshots, oldest first (LINSTOR snapshots without a mapping are not shown)."""
        record, _ = await self.volumes.get(key)
        snaps = await self.client.list_snapshots(record.rd_name)
        by_name = {s.name.upper(): s for s in snaps}
        views = [
            snapshot_info(incus, by_name[linstor.upper()])
            for incus, linstor in record.snapshots.items()
            if linstor.upper() in by_name
        ]
        return sorted(views, key=lambda v: (v.created_on_ms or 0, v.name))

    @translates_linstor_errors("read snapshot")
    async def get(self, key: VolumeKey, name: str) -> SnapshotInfo:
        """One snapshot: 404 snapshot_not_found when unmapped or gone from LINSTOR."""
        record, _ = await self.volumes.get(key)
        return snapshot_info(name, await self._linstor_snapshot(record, name))

    async def _linstor_snapshot(self, record: VolumeRecord, name: str) -> Snapshot:
        return await linstor_snapshot(self.client, record, name)

    def _mapped(self, record: VolumeRecord, name: str) -> str:
        try:
            return record.snapshots[name]
        except KeyError:
            raise NotFound(
                "snapshot_not_found", f"Volume {record.key.name!r} has no snapshot {name!r}"
            ) from None

    # ---- write -----------------------------------------------------------------------------------------

    @translates_linstor_errors("create snapshot")
    async def create(self, key: VolumeKey, name: str) -> SnapshotInfo:
        """Record the mapping, then take the LINSTOR snapshot (intent first: a crash in between leaves a
        mapping to a missing snapshot, which reads as no snapshot, never a snapshot nothing maps); a failure
        removes both."""
        validate_snapshot_name(name)
        self.volumes.codec.check_snapshot_key(name)
        async with self.volumes.locks.hold(key):
            record, _ = await self.volumes.get(key)
            if name in record.snapshots:
                try:
                    await self._linstor_snapshot(record, name)
                    raise Conflict("snapshot_exists", f"Volume {key.name!r} already has a snapshot {name!r}")
                except NotFound:
                    pass  # a stale mapping (its LINSTOR snapshot is gone): the name is free again
            snap = random_linstor_name(self.settings.volume_prefix)
            await self.client.modify_resource_definition(
                record.rd_name, override_props={self.keys.snapshot(name): snap}
            )
            try:
                await self.client.create_snapshot(record.rd_name, snap)
                taken = await self.client.get_snapshot(record.rd_name, snap)
            except BaseException:
                await self._drop_snapshot(record.rd_name, snap)
                await self._drop_mapping(record.rd_name, name)
                raise
            await self.volumes.resolver.remember(replace(record, snapshots={**record.snapshots, name: snap}))
            return snapshot_info(name, taken)

    async def _drop_mapping(self, rd: str, name: str) -> None:
        try:
            await self.client.modify_resource_definition(rd, delete_props=self.keys.snapshot_keys(name))
        except Exception:  # a stale mapping reads as no snapshot; the repair removes it
            log.exception(
                "could not remove the mapping of snapshot %s of %s after a failed snapshot", name, rd
            )

    async def _drop_snapshot(self, rd: str, snap: str) -> None:
        try:
            await self.client.delete_snapshot(rd, snap)
        except Exception:  # keep the original error; the unmapped snapshot is logged for an operator
            log.exception("could not remove snapshot %s of %s after a failed mapping write", snap, rd)

    @translates_linstor_errors("rename snapshot")
    async def rename(self, key: VolumeKey, name: str, new_name: str) -> SnapshotInfo:
        """Rename in one property update: delete the old key and set the new one; LINSTOR is untouched."""
        validate_snapshot_name(new_name)
        self.volumes.codec.check_snapshot_key(new_name)
        async with self.volumes.locks.hold(key):
            record, _ = await self.volumes.get(key)
            linstor_name = self._mapped(record, name)
            if new_name == name:
                return snapshot_info(name, await self._linstor_snapshot(record, name))
            if new_name in record.snapshots:
                raise Conflict("snapshot_exists", f"Volume {key.name!r} already has a snapshot {new_name!r}")
            await self.client.modify_resource_definition(
                record.rd_name,
                override_props={self.keys.snapshot(new_name): linstor_name},
                delete_props=self.keys.snapshot_keys(name),
            )
            snapshots = {k: v for k, v in record.snapshots.items() if k != name} | {new_name: linstor_name}
            renamed = replace(record, snapshots=snapshots)
            await self.volumes.resolver.remember(renamed)
            return snapshot_info(new_name, await self._linstor_snapshot(renamed, new_name))

    @translates_linstor_errors("delete snapshot")
    async def delete(self, key: VolumeKey, name: str) -> None:
        """Delete the LINSTOR snapshot, then its mapping key."""
        async with self.volumes.locks.hold(key):
            record, _ = await self.volumes.get(key)
            await self._delete_mapped(record, name)

    async def _delete_mapped(self, record: VolumeRecord, name: str) -> VolumeRecord:
        linstor_name = self._mapped(record, name)
        await self.client.delete_snapshot(record.rd_name, linstor_name)
        await self.client.modify_resource_definition(
            record.rd_name, delete_props=self.keys.snapshot_keys(name)
        )
        remaining = replace(record, snapshots={k: v for k, v in record.snapshots.items() if k != name})
        await self.volumes.resolver.remember(remaining)
        return remaining

    @translates_linstor_errors("restore snapshot")
    async def restore(self, key: VolumeKey, name: str, *, delete_newer: bool) -> list[str]:
        """Roll the volume back; LINSTOR can only roll back to the latest snapshot, so newer ones must go
        (Incus's linstor.remove_snapshots). Returns the names of the snapshots deleted."""
        async with self.volumes.locks.hold(key):
            record, _ = await self.volumes.get(key)
            target = await self._linstor_snapshot(record, name)
            snaps = await self.client.list_snapshots(record.rd_name)
            incus_of = {v.upper(): k for k, v in record.snapshots.items()}
            newer = [
                s for s in snaps if (s.created_on or 0) > (target.created_on or 0) and s.name != target.name
            ]
            if newer and not delete_newer:
                names = sorted(incus_of.get(s.name.upper(), s.name) for s in newer)
                raise Conflict(
                    "not_latest_snapshot",
                    f"LINSTOR can only restore the latest snapshot; newer: {', '.join(names)}. "
                    "Ask for delete_newer_snapshots to delete them first.",
                    newer_snapshots=names,
                )
            deleted: list[str] = []
            for snap in sorted(newer, key=lambda s: s.created_on or 0, reverse=True):
                incus_name = incus_of.get(snap.name.upper())
                if incus_name is None:  # an unmapped LINSTOR snapshot blocks the rollback just the same
                    await self.client.delete_snapshot(record.rd_name, snap.name)
                    deleted.append(snap.name)
                else:
                    record = await self._delete_mapped(record, incus_name)
                    deleted.append(incus_name)
            await self.client.rollback_snapshot(record.rd_name, target.name)
            return deleted
