"""Reverse resolution: LINSTOR names to volumes and snapshots."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.common import ERRORS, cache_headers
from app.api.deps import VolumesDep
from app.api.schemas import Resolution, Volume

router = APIRouter(tags=["resolve"], responses=ERRORS)


@router.get("/v1/resolve/{linstor_name}")
async def resolve(linstor_name: str, volumes: VolumesDep, response: Response) -> Resolution:
    """Reverse lookup: the volume (and snapshot) behind a LINSTOR resource definition or snapshot name."""
    record, snapshot, info = await volumes.resolve(linstor_name)
    cache_headers(response, info)
    if snapshot is None:
        return Resolution(linstor_name=record.rd_name, kind="resource-definition", volume=Volume.of(record))
    return Resolution(
        linstor_name=record.snapshots[snapshot], kind="snapshot", volume=Volume.of(record), snapshot=snapshot
    )
