"""Snapshot routes of a volume."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Query, Response

from app.api.common import problems
from app.api.deps import ServicesDep
from app.api.schemas import (
    RestoreResult,
    SnapshotCreate,
    SnapshotList,
    SnapshotOut,
    SnapshotRename,
    SnapshotRestore,
)
from app.identity import VolumeType
from app.volumes import make_key

router = APIRouter(prefix="/v1/pools/{pool}/volumes/{type}/{name}/snapshots", tags=["snapshots"])
ProjectQuery = Query("default", description="Incus project of the volume.")


@router.post("", status_code=201, responses=problems(404, 409))
async def create_snapshot(
    pool: str,
    type: VolumeType,
    name: str,
    body: SnapshotCreate,
    svc: ServicesDep,
    response: Response,
    project: str = ProjectQuery,
) -> SnapshotOut:
    """Take a LINSTOR snapshot and map the Incus name to it on the volume's resource definition."""
    view = await svc.snapshots.create(make_key(pool, project, type, name), body.name)
    parts = [quote(p, safe="") for p in (pool, type.value, name, view.name)]
    location = "/v1/pools/{}/volumes/{}/{}/snapshots/{}".format(*parts)
    response.headers["Location"] = f"{location}?project={quote(project, safe='')}"
    return SnapshotOut.of(view.name, view.linstor)


@router.get("", responses=problems(404, 409))
async def list_snapshots(
    pool: str, type: VolumeType, name: str, svc: ServicesDep, project: str = ProjectQuery
) -> SnapshotList:
    """The volume's snapshots, oldest first."""
    views = await svc.snapshots.list_snapshots(make_key(pool, project, type, name))
    return SnapshotList(snapshots=[SnapshotOut.of(v.name, v.linstor) for v in views])


@router.get("/{snapshot}", responses=problems(404, 409))
async def get_snapshot(
    pool: str, type: VolumeType, name: str, snapshot: str, svc: ServicesDep, project: str = ProjectQuery
) -> SnapshotOut:
    """One snapshot."""
    view = await svc.snapshots.get(make_key(pool, project, type, name), snapshot)
    return SnapshotOut.of(view.name, view.linstor)


@router.patch("/{snapshot}", responses=problems(404, 409))
async def rename_snapshot(
    pool: str,
    type: VolumeType,
    name: str,
    snapshot: str,
    body: SnapshotRename,
    svc: ServicesDep,
    project: str = ProjectQuery,
) -> SnapshotOut:
    """Rename: one property update (old key deleted, new key set); the LINSTOR snapshot is untouched."""
    view = await svc.snapshots.rename(make_key(pool, project, type, name), snapshot, body.name)
    return SnapshotOut.of(view.name, view.linstor)


@router.delete("/{snapshot}", status_code=204, responses=problems(404, 409))
async def delete_snapshot(
    pool: str, type: VolumeType, name: str, snapshot: str, svc: ServicesDep, project: str = ProjectQuery
) -> Response:
    """Delete the LINSTOR snapshot, then its mapping."""
    await svc.snapshots.delete(make_key(pool, project, type, name), snapshot)
    return Response(status_code=204)


@router.post("/{snapshot}/restore", responses=problems(404, 409))
async def restore_snapshot(
    pool: str,
    type: VolumeType,
    name: str,
    snapshot: str,
    svc: ServicesDep,
    body: SnapshotRestore | None = None,
    project: str = ProjectQuery,
) -> RestoreResult:
    """Roll the volume back to this snapshot (409 not_latest_snapshot unless newer ones may be deleted)."""
    delete_newer = body.delete_newer_snapshots if body else False
    deleted = await svc.snapshots.restore(
        make_key(pool, project, type, name), snapshot, delete_newer=delete_newer
    )
    return RestoreResult(restored=snapshot, deleted_snapshots=deleted)
