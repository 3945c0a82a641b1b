"""Pools, reverse resolution, health and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.common import cache_headers, problems
from app.api.deps import ServicesDep
from app.api.schemas import Health, Pool, PoolList, Resolution, Volume

router = APIRouter()


@router.get("/v1/pools", tags=["pools"], responses=problems())
async def list_pools(svc: ServicesDep) -> PoolList:
    """The pools: LINSTOR resource groups."""
    return PoolList(pools=[Pool.of(g) for g in await svc.volumes.pools()])


@router.get("/v1/resolve/{linstor_name}", tags=["resolve"], responses=problems(404))
async def resolve(linstor_name: str, svc: ServicesDep, response: Response) -> Resolution:
    """Reverse lookup: the volume (and snapshot) behind a LINSTOR resource definition or snapshot name."""
    record, snapshot, info = await svc.volumes.resolve(linstor_name)
    cache_headers(response, info)
    if snapshot is None:
        return Resolution(linstor_name=record.rd_name, kind="resource-definition", volume=Volume.of(record))
    return Resolution(
        linstor_name=record.snapshots[snapshot], kind="snapshot", volume=Volume.of(record), snapshot=snapshot
    )


@router.get("/healthz", tags=["health"])
async def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", tags=["health"], responses={503: {"model": Health}})
async def readyz(svc: ServicesDep, response: Response) -> Health:
    """Readiness: LINSTOR answers and the cache (when configured) is usable; 503 with the reason otherwise."""
    checks = await svc.readiness()
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "unavailable", checks=checks)
