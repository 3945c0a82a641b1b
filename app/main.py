"""create_app(settings): the FastAPI application and the lifespan that owns its resources."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app import __version__
from app.api import cache, docs, errors, health, orphans, pools, resolve, snapshots, volumes
from app.api.auth import Authenticate, document_security
from app.api.common import problem_json_only
from app.api.examples import document_examples
from app.api.hot import HotLookups
from app.api.idempotency import Idempotency
from app.api.inputs import document_inputs
from app.api.limits import BodyLimit
from app.api.observe import install as install_observability
from app.auth_tokens import configured_tokens
from app.cache.store import CacheStore
from app.cache_service import CacheService
from app.linstor.config import ConnectionConfig
from app.naming import AuxCodec
from app.repair import RepairService
from app.resolver import Resolver
from app.services import Services, linstor_client
from app.settings import Settings
from app.snapshots import SnapshotService
from app.volumes import VolumeService


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
        client = linstor_client(settings, connection, transport=transport, observer=metrics)
        cache: CacheStore | None = None
        if settings.cache_enabled:
            cache = CacheStore.open(settings.cache_url)
            await asyncio.to_thread(cache.upgrade)
        resolver = Resolver(
            client, AuxCodec(settings.volume_prefix, settings.property_namespace), cache, settings.cache_mode
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
            repair=RepairService(volume_service),
        )
        app.state.services = services
        # the start-up sync runs in the background: the service answers from LINSTOR until it is done
        task = asyncio.create_task(services.cache_service.keep_synced()) if cache is not None else None
        # a repair pass at start-up and on an interval, when one is set (it applies: see app/repair.py)
        repairs = asyncio.create_task(services.repair.keep_repaired()) if settings.repair_interval else None
        try:
            yield
        finally:
            for running in (task, repairs):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
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
        docs_url=None,  # Swagger UI and ReDoc come from app/api/docs.py, with local assets
        redoc_url=None,
        # FastAPI looks for configured OpenTelemetry providers on every request, which costs 6% of the cached
        # lookups a second (tests/benchmarks/bench_hot.py): only when asked for. The service's own metrics are
        # Prometheus' at /metrics.
        telemetry={"tracing": settings.otel, "metrics": settings.otel, "logs": settings.otel},
    )
    errors.install(app)
    app.add_middleware(Idempotency)  # added first, so inside the body limit: it reads bodies already bounded
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # the two lookups are answered before routing, inside authentication and metrics; they read no body and
    # take no Idempotency-Key, so the two middlewares above have nothing to do for them
    app.add_middleware(HotLookups)
    # outermost: a request without a valid token reaches neither the body limit nor the idempotency store
    app.add_middleware(Authenticate, tokens=configured_tokens(settings))
    # added last, so outermost: it times, counts and logs every answer, the 401s and 413s too
    metrics = install_observability(app)
    for router in (
        volumes.router,
        snapshots.router,
        pools.router,
        resolve.router,
        health.router,
        cache.router,
        orphans.router,
    ):
        app.include_router(router)
    docs.install(app)
    problem_json_only(app)
    document_inputs(app)
    document_security(app)
    document_examples(app)
    return app
