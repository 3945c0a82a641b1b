"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import ServicesDep
from app.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Health}})
async def readyz(svc: ServicesDep, response: Response) -> Health:
    """Readiness: LINSTOR answers and the cache (when configured) is usable and warm; 503 with the reason
    otherwise. A check may say what is wrong while the replica stays ready (a verify-mode resync failing)."""
    readiness = await svc.readiness()
    if not readiness.ready:
        response.status_code = 503
    return Health(status="ok" if readiness.ready else "unavailable", checks=readiness.checks)
