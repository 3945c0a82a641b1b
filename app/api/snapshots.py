"""Snapshot routes of a volume."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Response

from app.api.common import ERRORS
from app.api.deps import IDEMPOTENT, SnapshotsDep, VolumeKeyDep
from app.api.schemas import (
    RestoreResult,
    SnapshotCreate,
    SnapshotList,
    SnapshotOut,
    SnapshotRename,
    SnapshotRestore,
)

router = APIRouter(
    prefix="/v1/pools/{pool}/volumes/{type}/{name}/snapshots", tags=["snapshots"], responses=ERRORS
)


@router.post("", status_code=201, dependencies=[IDEMPOTENT])
async def create_snapshot(
    key: VolumeKeyDep, body: SnapshotCreate, snapshots: SnapshotsDep, response: Response
) -> SnapshotOut:
    """Take a LINSTOR snapshot and map the Incus name to it on the volume's resource definition."""
    view = await snapshots.create(key, body.name)
    parts = [quote(p, safe="") for p in (key.pool, key.type.value, key.name, view.name)]
    location = "/v1/pools/{}/volumes/{}/{}/snapshots/{}".format(*parts)
    response.headers["Location"] = f"{location}?project={quote(key.project, safe='')}"
    return SnapshotOut.of(view)


@router.get("")
async def list_snapshots(key: VolumeKeyDep, snapshots: SnapshotsDep) -> SnapshotList:
    """The volume's snapshots, oldest first."""
    views = await snapshots.list_snapshots(key)
    return SnapshotList(snapshots=[SnapshotOut.of(v) for v in views])


@router.get("/{snapshot}")
async def get_snapshot(key: VolumeKeyDep, snapshot: str, snapshots: SnapshotsDep) -> SnapshotOut:
    """One snapshot."""
    view = await snapshots.get(key, snapshot)
    return SnapshotOut.of(view)


@router.patch("/{snapshot}", dependencies=[IDEMPOTENT])
async def rename_snapshot(
    key: VolumeKeyDep, snapshot: str, body: SnapshotRename, snapshots: SnapshotsDep
) -> SnapshotOut:
    """Rename: one property update (old key deleted, new key set); the LINSTOR snapshot is untouched."""
    view = await snapshots.rename(key, snapshot, body.name)
    return SnapshotOut.of(view)


@router.delete("/{snapshot}", status_code=204, dependencies=[IDEMPOTENT])
async def delete_snapshot(key: VolumeKeyDep, snapshot: str, snapshots: SnapshotsDep) -> Response:
    """Delete the LINSTOR snapshot, then its mapping."""
    await snapshots.delete(key, snapshot)
    return Response(status_code=204)


@router.post("/{snapshot}/restore", dependencies=[IDEMPOTENT])
async def restore_snapshot(
    key: VolumeKeyDep, snapshot: str, snapshots: SnapshotsDep, body: SnapshotRestore | None = None
) -> RestoreResult:
    """Roll the volume back to this snapshot (409 not_latest_snapshot unless newer ones may be deleted)."""
    delete_newer = body.delete_newer_snapshots if body else False
    deleted = await snapshots.restore(key, snapshot, delete_newer=delete_newer)
    return RestoreResult(restored=snapshot, deleted_snapshots=deleted)
