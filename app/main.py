"""create_app(settings): the FastAPI application and the lifespan that owns its resources."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app import __version__
from app.api import cache as cache_routes
from app.api import errors, misc, snapshots, volumes
from app.cache.store import CacheStore
from app.cache_service import CacheService
from app.linstor import LinstorClient, LinstorError
from app.linstor.client import Timeouts
from app.linstor.config import ConnectionConfig
from app.naming import Codec
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


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(
    settings: Settings | None = None,
    *,
    linstor: ConnectionConfig | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The linstor-names application; `linstor` defaults to the LS_* environment, read now."""
    settings = settings or Settings()
    connection = linstor or ConnectionConfig.from_env(os.environ)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = linstor_client(settings, connection, transport=transport)
        cache: CacheStore | None = None
        if settings.cache_enabled:
            cache = CacheStore.open(settings.cache_url)
            await asyncio.to_thread(cache.upgrade)
        resolver = Resolver(
            client, Codec(settings.volume_prefix, settings.property_namespace), cache, settings.cache_mode
        )
        volume_service = VolumeService(client, resolver, settings)
        services = Services(
            settings=settings,
            client=client,
            resolver=resolver,
            volumes=volume_service,
            snapshots=SnapshotService(volume_service),
            cache_service=CacheService(cache, client, resolver, settings),
            cache=cache,
        )
        app.state.services = services
        # the start-up sync runs in the background: the service answers from LINSTOR until it is done
        task = asyncio.create_task(services.cache_service.keep_synced()) if cache is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await client.aclose()
            if cache is not None:
                await cache.close()

    app = FastAPI(
        title="linstor-names",
        version=__version__,
        summary="Incus-compatible name resolution for LINSTOR.",
        description=(
            "Creates, looks up, lists, renames, copies, snapshots and deletes volumes whose LINSTOR objects "
            "are named `<prefix><uuid4 hex>` and identified by `Aux/<namespace>/…` properties, as Incus "
            "writes them. Errors are RFC 9457 problem+json with a stable `code`."
        ),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    errors.install(app)
    for router in (volumes.router, snapshots.router, misc.router, cache_routes.router):
        app.include_router(router)
    return app
