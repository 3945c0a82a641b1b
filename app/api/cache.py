"""The cache's report and its rebuild."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter

from app.api.common import problems
from app.api.deps import ServicesDep
from app.api.schemas import CacheReport, RebuildReport
from app.errors import Conflict

router = APIRouter(prefix="/v1/cache", tags=["cache"])


@router.get("")
async def cache_report(svc: ServicesDep) -> CacheReport:
    """Size, last sync time and age, hit and miss counts of this replica."""
    counters = svc.resolver.counters
    report = CacheReport(
        enabled=svc.cache is not None,
        mode=svc.settings.cache_mode.value if svc.cache is not None else "off",
        resync_interval_seconds=svc.settings.cache_resync_interval,
        hits=counters.hits,
        misses=counters.misses,
    )
    if svc.cache is not None:
        stats = await svc.cache.stats()
        report.backend = svc.cache.dialect
        report.volumes, report.snapshots = stats.volumes, stats.snapshots
        if stats.last_sync is not None:
            report.last_sync = datetime.fromtimestamp(stats.last_sync, tz=UTC)
            report.age_seconds = max(0.0, time.time() - stats.last_sync)
    return report


@router.post("/rebuild", responses=problems(409))
async def rebuild_cache(svc: ServicesDep) -> RebuildReport:
    """Empty the cache and fill it again from LINSTOR alone."""
    if svc.cache is None:
        raise Conflict(
            "cache_disabled", "This service runs without a cache (LINSTOR_NAMES_CACHE_URL=none or mode off)"
        )
    result = await svc.resync(rebuild=True)
    return RebuildReport(volumes=result.volumes, duration_seconds=result.duration)
