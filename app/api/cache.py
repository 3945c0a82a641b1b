"""The cache's report and its rebuild."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.common import ERRORS
from app.api.deps import IDEMPOTENT, CacheDep
from app.api.schemas import CacheReport, RebuildReport
from app.cache_service import CacheSummary

router = APIRouter(prefix="/v1/cache", tags=["cache"], responses=ERRORS)


@router.get("")
async def cache_report(cache: CacheDep) -> CacheReport:
    """Size, last sync time and age, hit and miss counts, warmth and failing syncs of this replica."""
    return _report(await cache.report())


@router.post("/rebuild", dependencies=[IDEMPOTENT])
async def rebuild_cache(cache: CacheDep) -> RebuildReport:
    """Fill the cache again from LINSTOR alone; when LINSTOR fails, the cache is left as it was."""
    result = await cache.rebuild()
    return RebuildReport(volumes=result.volumes, duration_seconds=result.duration)


def _report(summary: CacheSummary) -> CacheReport:
    return CacheReport(
        enabled=summary.enabled,
        mode=summary.mode.value,
        backend=summary.backend,
        volumes=summary.volumes,
        snapshots=summary.snapshots,
        last_sync=summary.last_sync,
        age_seconds=summary.age_seconds,
        resync_interval_seconds=summary.resync_interval,
        hits=summary.hits,
        misses=summary.misses,
        warm=summary.warm,
        rebuilding=summary.rebuilding,
        last_error=summary.last_error,
        last_error_at=summary.last_error_at,
        failing_since=summary.failing_since,
    )
