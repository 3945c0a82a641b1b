"""The pools: LINSTOR resource groups."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.common import ERRORS
from app.api.deps import VolumesDep
from app.api.schemas import Pool, PoolList

router = APIRouter(tags=["pools"], responses=ERRORS)


@router.get("/v1/pools")
async def list_pools(volumes: VolumesDep) -> PoolList:
    """The pools: LINSTOR resource groups."""
    return PoolList(pools=[Pool.of(g) for g in await volumes.pools()])
