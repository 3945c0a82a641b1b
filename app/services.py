"""What the lifespan builds once per process and every request uses: the domain services and the client."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from app.cache.store import CacheStore
from app.cache_service import CacheService, Condition
from app.linstor import LinstorClient, LinstorError
from app.linstor.client import Timeouts
from app.linstor.config import ConnectionConfig
from app.linstor.transport import CallObserver, Deadlines, linstor_deadline
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

    async def readiness(self) -> Readiness:
        """One check per dependency ("ok" or what is wrong) and whether they let the replica serve, within
        the readiness deadline."""
        seconds = self.settings.readiness_deadline
        checks = {"linstor": self._linstor_ready(seconds)}
        if self.cache is not None:
            checks["cache"] = self._cache_ready(self.cache, seconds)
        # side by side: a hung dependency costs /readyz one deadline, not one per check
        results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        return Readiness(
            ready=all(r.ready for r in results.values()),
            checks={name: r.detail for name, r in results.items()},
        )

    async def _linstor_ready(self, seconds: float) -> Condition:
        try:
            with linstor_deadline(seconds):
                await self.client.controller_version()
        except LinstorError as exc:
            return Condition(False, f"unavailable: {exc.message}")
        return Condition(True, "ok")

    async def _cache_ready(self, cache: CacheStore, seconds: float) -> Condition:
        deadline = time.monotonic() + seconds
        try:
            async with asyncio.timeout(seconds):
                await cache.stats()
        except TimeoutError:
            return Condition(False, f"unavailable: no answer within {seconds:g}s")
        except Exception as exc:  # any database error makes the replica not ready
            return Condition(False, f"unavailable: {exc}")
        # usable: then whether it is warm and its resyncs succeed, with what is left of the deadline
        return await self.cache_service.condition(wait=max(0.0, deadline - time.monotonic()))


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this replica may serve, and each dependency's check ("ok" or what is wrong with it)."""

    ready: bool
    checks: dict[str, str]


def linstor_client(
    settings: Settings,
    connection: ConnectionConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    observer: CallObserver | None = None,
) -> LinstorClient:
    """The LINSTOR client with the timeouts, deadlines, retries and connection cap of `settings`; `observer`
    is told of every call (the app's metrics)."""
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
        observer=observer,
    )
