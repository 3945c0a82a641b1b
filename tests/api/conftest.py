"""The service over real HTTP, in front of the session's emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import AutoSelectFilter, ResourceGroupCreate
from app.main import create_app
from app.services import Services
from app.settings import Settings
from tests.conftest import Emulator
from tests.support.api import POOL
from tests.support.server import free_port, serve


@dataclass
class Service:
    """A running linstor-names."""

    url: str
    app: FastAPI


def service_settings(cache_dir: Path, **overrides: object) -> Settings:
    """Settings for a test service: SQLite cache in `cache_dir`, fast clone polling, no periodic resync."""
    values: dict[str, object] = {
        "cache_url": f"sqlite:///{cache_dir / 'cache.db'}",
        "clone_poll_interval": 0.01,
        "clone_timeout": 5.0,
        "cache_resync_interval": 3600.0,
        "linstor_retries": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def serve_without_linstor(cache_dir: Path, *, retries: int) -> Iterator[str]:
    """A service pointed at a port where nothing listens, no cache, a read deadline of 0.5 s: its URL."""
    app = create_app(
        service_settings(cache_dir, cache_url="none", linstor_retries=retries, linstor_read_deadline=0.5),
        linstor=ConnectionConfig(urls=(f"http://127.0.0.1:{free_port()}",)),
    )
    with serve(app) as url:
        yield url


@pytest.fixture(scope="session")
def service_server(emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """linstor-names in its default mode (SQLite cache, verify) against the session's emulator."""
    app = create_app(
        service_settings(tmp_path_factory.mktemp("cache")),
        linstor=ConnectionConfig(urls=(emulator_server.url,)),
    )
    with serve(app) as url:
        yield Service(url=url, app=app)


@pytest.fixture
async def linstor(emulator: Emulator) -> AsyncIterator[LinstorClient]:
    """A LINSTOR client on the (reset) emulator, with the test pool created (place_count 2)."""
    async with LinstorClient(ConnectionConfig(urls=(emulator.url,)), retries=0) as client:
        await client.create_resource_group(
            ResourceGroupCreate(name=POOL, select_filter=AutoSelectFilter(place_count=2))
        )
        yield client


@pytest.fixture
async def api(linstor: LinstorClient, service_server: Service) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the service, whose cache was emptied to match the freshly reset emulator (directly:
    a rebuild over HTTP per test cost more than the tests themselves)."""
    services: Services = service_server.app.state.services
    if services.cache is not None:
        await services.cache.clear()
        await services.cache.mark_synced(await services.cache.clock())
    async with httpx.AsyncClient(base_url=service_server.url, timeout=30) as client:
        yield client


ServiceFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def service(emulator: Emulator, linstor: LinstorClient, tmp_path: Path) -> ServiceFactory:
    """Start a service of its own with the given settings (empty SQLite cache in tmp_path, no periodic
    resync unless asked) against the reset emulator; `linstor` is asked for so that the test pool exists."""
    _ = linstor

    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            service_settings(tmp_path, **overrides), linstor=ConnectionConfig(urls=(emulator.url,))
        )
        with serve(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield client

    return start
