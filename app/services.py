"""What the lifespan builds once per process and every request uses: the domain services and the client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from app.cache.store import CacheStore
from app.cache_service import CacheService
from app.linstor import LinstorClient, LinstorError
from app.linstor.client import Timeouts
from app.linstor.config import ConnectionConfig
from app.linstor.transport import Deadlines, linstor_deadline
from app.repair import RepairService
from app.resolver import Resolver
from app.settings import Settings
from app.snapshots import SnapshotService
from app.volumes import VolumeService


@dataclass
class Services:
    """Everything a request needs, built once per process by the lifespan."""

    settings: Settings
    client: LinstorClient
    resolver: Resolver
    volumes: VolumeService
    snapshots: SnapshotService
    cache_service: CacheService
    cache: CacheStore | None
    repair: RepairService

    async def readiness(self) -> dict[str, str]:
        """One check per dependency: "ok" or the reason it is not, within the readiness deadline."""
        seconds = self.settings.readiness_deadline
        checks = {"linstor": self._linstor_ready(seconds)}
        if self.cache is not None:
            checks["cache"] = _cache_ready(self.cache, seconds)
        # side by side: a hung dependency costs /readyz one deadline, not one per check
        return dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))

    async def _linstor_ready(self, seconds: float) -> str:
        try:
            with linstor_deadline(seconds):
                await self.client.controller_version()
        except LinstorError as exc:
            return f"unavailable: {exc.message}"
        return "ok"


async def _cache_ready(cache: CacheStore, seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await cache.stats()
    except TimeoutError:
        return f"unavailable: no answer within {seconds:g}s"
    except Exception as exc:  # any database error makes the replica not ready
        return f"unavailable: {exc}"
    return "ok"


def linstor_client(
    settings: Settings, connection: ConnectionConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> LinstorClient:
    """The LINSTOR client with the timeouts, deadlines, retries and connection cap of `settings`."""
    return LinstorClient(
        connection,
        timeouts=Timeouts(
            connect=settings.linstor_connect_timeout,
            read=settings.linstor_read_timeout,
            write=settings.linstor_write_timeout,
        ),
        deadlines=Deadlines(read=settings.linstor_read_deadline, write=settings.linstor_write_deadline),
        retries=settings.linstor_retries,
        max_connections=settings.linstor_max_connections,
        transport=transport,
    )
