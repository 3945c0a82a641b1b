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
    """Readiness: LINSTOR answers and the cache (when configured) is usable; 503 with the reason otherwise."""
    checks = await svc.readiness()
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "unavailable", checks=checks)
