"""Reverse resolution: LINSTOR names to volumes and snapshots."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.common import ERRORS, lookup_answer
from app.api.deps import VolumesDep
from app.api.schemas import Resolution, volume_view
from app.volumes import VolumeService

router = APIRouter(tags=["resolve"], responses=ERRORS)


@router.get("/v1/resolve/{linstor_name}", response_model=Resolution)
async def resolve(linstor_name: str, volumes: VolumesDep) -> Response:
    """Reverse lookup: the volume (and snapshot) behind a LINSTOR resource definition or snapshot name."""
    return await resolve_name(volumes, linstor_name)


async def resolve_name(volumes: VolumeService, linstor_name: str) -> Response:
    """The reverse lookup's answer; app/api/hot.py answers most lookups with it before routing."""
    record, snapshot, info = await volumes.resolve(linstor_name)
    if snapshot is None:
        name, kind = record.rd_name, "resource-definition"
    else:
        name, kind = record.snapshots[snapshot], "snapshot"
    answer = {"linstor_name": name, "kind": kind, "volume": volume_view(record), "snapshot": snapshot}
    return lookup_answer(answer, info)
