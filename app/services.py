"""What the lifespan builds once per process and every request uses: the domain services and the client."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.cache.store import CacheStore
from app.cache_service import CacheService
from app.linstor import LinstorClient, LinstorError
from app.linstor.client import Timeouts
from app.linstor.config import ConnectionConfig
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

    async def readiness(self) -> dict[str, str]:
        """One check per dependency: "ok" or the reason it is not."""
        checks: dict[str, str] = {}
        try:
            await self.client.controller_version()
            checks["linstor"] = "ok"
        except LinstorError as exc:
            checks["linstor"] = f"unavailable: {exc.message}"
        if self.cache is not None:
            try:
                await self.cache.stats()
                checks["cache"] = "ok"
            except Exception as exc:  # any database error makes the replica not ready
                checks["cache"] = f"unavailable: {exc}"
        return checks


def linstor_client(
    settings: Settings, connection: ConnectionConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> LinstorClient:
    """The LINSTOR client with the timeouts, retries and connection cap of `settings`."""
    return LinstorClient(
        connection,
        timeouts=Timeouts(
            connect=settings.linstor_connect_timeout,
            read=settings.linstor_read_timeout,
            write=settings.linstor_write_timeout,
        ),
        retries=settings.linstor_retries,
        max_connections=settings.linstor_max_connections,
        transport=transport,
    )
