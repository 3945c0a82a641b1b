"""Annotated dependency aliases, one per service, and the volume key of a route: signatures stay short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from app.cache_service import CacheService
from app.identity import VolumeKey, VolumeType
from app.services import Services
from app.snapshots import SnapshotService
from app.specs import make_key
from app.volumes import VolumeService

# Every dependency is async: a sync dependency costs a thread hop per request.


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _volumes(request: Request) -> VolumeService:
    return (await _services(request)).volumes


async def _snapshots(request: Request) -> SnapshotService:
    return (await _services(request)).snapshots


async def _cache(request: Request) -> CacheService:
    return (await _services(request)).cache_service


async def _volume_key(
    pool: str,
    type: VolumeType,
    name: str,
    project: Annotated[str, Query(description="Incus project of the volume.")] = "default",
) -> VolumeKey:
    return make_key(pool, project, type, name)


_IDEMPOTENCY_KEY = (
    "Makes a retry safe (draft-ietf-httpapi-idempotency-key-header; README, Idempotency): a key unique to "
    "the request (a UUID), quoted or bare, of 1 to 255 printable ASCII characters; needs the cache. A retry "
    "with the same key and request is answered the first final answer again (`Idempotent-Replayed: true`); "
    "409 `idempotency_key_in_flight` while the first runs, 422 `idempotency_key_reused` with another request."
)


async def _idempotency_key(
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description=_IDEMPOTENCY_KEY)
    ] = None,
) -> None:
    """Nothing: documents the header, which app/api/idempotency.py honours before any route runs."""


ServicesDep = Annotated[Services, Depends(_services)]
VolumesDep = Annotated[VolumeService, Depends(_volumes)]
SnapshotsDep = Annotated[SnapshotService, Depends(_snapshots)]
CacheDep = Annotated[CacheService, Depends(_cache)]
VolumeKeyDep = Annotated[VolumeKey, Depends(_volume_key)]
# every POST, PATCH and DELETE route: `dependencies=[IDEMPOTENT]`
IDEMPOTENT = Depends(_idempotency_key)
