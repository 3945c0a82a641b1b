"""Volume routes: create, copy, list, look up, rename, delete."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response

from app.api.common import ERRORS, cache_headers, lookup_answer
from app.api.deps import IDEMPOTENT, VolumeKeyDep, VolumesDep
from app.api.schemas import Volume, VolumeCreate, VolumeList, VolumeRename, volume_view
from app.identity import VolumeKey, VolumeRecord, VolumeType
from app.specs import CreateSpec, SourceSpec
from app.volumes import VolumeService

router = APIRouter(prefix="/v1/pools/{pool}/volumes", tags=["volumes"], responses=ERRORS)


def volume_path(record: VolumeRecord) -> str:
    """The URL path of a volume."""
    k = record.key
    base = f"/v1/pools/{quote(k.pool, safe='')}/volumes/{k.type.value}/{quote(k.name, safe='')}"
    return f"{base}?project={quote(k.project, safe='')}"


@router.post("", status_code=201, dependencies=[IDEMPOTENT])
async def create_volume(pool: str, body: VolumeCreate, volumes: VolumesDep, response: Response) -> Volume:
    """Create a volume, or copy one (`source`) with a LINSTOR clone that carries the new identity."""
    source = body.source
    spec = CreateSpec(
        name=body.name,
        type=body.type,
        content_type=body.content_type,
        project=body.project,
        size_bytes=int(body.size) if body.size is not None else None,
        description=body.description,
        source=SourceSpec(source.type, source.name, source.project, source.pool, source.snapshot)
        if source
        else None,
    )
    record = await volumes.create(pool, spec)
    response.headers["Location"] = volume_path(record)
    return Volume.of(record)


@router.get("")
async def list_volumes(
    pool: str,
    volumes: VolumesDep,
    response: Response,
    project: Annotated[str | None, Query(description="Only this project (default: all projects).")] = None,
    type: Annotated[VolumeType | None, Query(description="Only this type.")] = None,
    fresh: Annotated[bool, Query(description="Bypass the cache and list from LINSTOR.")] = False,
) -> VolumeList:
    """The volumes of a pool (a LINSTOR resource group)."""
    records, info = await volumes.list_volumes(pool, project=project, vtype=type, fresh=fresh)
    cache_headers(response, info)
    return VolumeList(volumes=[Volume.of(r) for r in records])


@router.get("/{type}/{name}", response_model=Volume)
async def get_volume(key: VolumeKeyDep, volumes: VolumesDep) -> Response:
    """Forward lookup: the LINSTOR resource definition of a volume."""
    return await lookup_volume(volumes, key)


async def lookup_volume(volumes: VolumeService, key: VolumeKey) -> Response:
    """The forward lookup's answer; app/api/hot.py answers most lookups with it before routing."""
    record, info = await volumes.get(key, confirm=False)
    return lookup_answer(volume_view(record), info)


@router.patch("/{type}/{name}", dependencies=[IDEMPOTENT])
async def rename_volume(key: VolumeKeyDep, body: VolumeRename, volumes: VolumesDep) -> Volume:
    """Rename: one property update of Aux/<ns>/name; the LINSTOR name never changes."""
    return Volume.of(await volumes.rename(key, body.name))


@router.delete("/{type}/{name}", status_code=204, dependencies=[IDEMPOTENT])
async def delete_volume(key: VolumeKeyDep, volumes: VolumesDep) -> Response:
    """Delete a volume: its snapshots first, then its resource definition."""
    await volumes.delete(key)
    return Response(status_code=204)
