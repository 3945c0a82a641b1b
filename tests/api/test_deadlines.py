"""Deadlines, not retries multiplied by timeouts: a hung controller costs a request its deadline, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.main import create_app
from app.services import Services
from tests.api.conftest import service_settings
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem
from tests.support.server import serve

# The read deadline of these services. Before deadlines, a hung controller cost a request every attempt's
# read timeout (4 x 30 s); the bound asserted below, 3 deadlines, fails with any second attempt of 30 s.
DEADLINE = 0.5
MARGIN = 3 * DEADLINE

Start = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, FastAPI]]]


@pytest.fixture
def service(emulator: Emulator, linstor: LinstorClient, tmp_path: Path) -> Start:
    """Start a service with a short read deadline and 3 retries against the emulator."""
    _ = linstor  # asked for its side effect: the test pool exists

    @asynccontextmanager
    async def start(
        *, cache: bool = False, **overrides: object
    ) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
        values: dict[str, object] = {"linstor_retries": 3, "linstor_read_deadline": DEADLINE, **overrides}
        if not cache:
            values["cache_url"] = "none"
        app = create_app(service_settings(tmp_path, **values), linstor=ConnectionConfig(urls=(emulator.url,)))
        try:
            with serve(app) as url:
                async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                    yield client, app
        finally:
            emulator.state.clear_faults()

    return start


def hang(emulator: Emulator, method: str = "*", path: str = r"^/v1/") -> None:
    """The controller answers nothing (SIGSTOP): each request waits until the client hangs up."""
    emulator.state.add_fault(action="hang", method=method, path=path)


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    """The response and the seconds it took."""
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


def assert_retry_after(response: httpx.Response, status: int, code: str) -> None:
    """A 503/504 problem that says when to ask again."""
    assert_problem(response, status, code)
    assert response.headers["retry-after"] == "1"  # whole seconds: the 0.5 s read deadline, rounded up


async def test_a_hung_controller_answers_504_with_retry_after_within_the_deadline(
    service: Start, emulator: Emulator
) -> None:
    body = {"name": "c1", "type": "container", "size": "1GiB"}
    async with service() as (api, _):
        hang(emulator)
        lookup = await timed(api.get(f"/v1/pools/{POOL}/volumes/container/c1"))
        pools = await timed(api.get("/v1/pools"))
        created = await timed(api.post(f"/v1/pools/{POOL}/volumes", json=body))
    for response, seconds in (lookup, pools, created):
        assert_retry_after(response, 504, "linstor_timeout")
        assert DEADLINE * 0.9 < seconds < MARGIN, seconds


async def test_the_calls_of_one_request_share_its_deadline(service: Start, emulator: Emulator) -> None:
    """A list reads the pool, then its volumes: 0.3 s each fits the deadline, both together do not."""
    async with service() as (api, _):
        assert (await api.get(f"/v1/pools/{POOL}/volumes")).status_code == 200
        emulator.state.add_fault(action="latency", method="GET", path=r"^/v1/", seconds=0.3)
        response, seconds = await timed(api.get(f"/v1/pools/{POOL}/volumes"))
        assert_retry_after(response, 504, "linstor_timeout")
        assert seconds < MARGIN


async def test_a_create_that_writes_has_the_write_deadline(service: Start, emulator: Emulator) -> None:
    """A spawn may block longer than any read: a create is cut by the write deadline, not the read one."""
    async with service(linstor_write_deadline=1.5, clone_timeout=1.0) as (api, _):
        emulator.state.add_fault(action="latency", method="POST", path=r"/spawn$", seconds=0.8)
        body = {"name": "c1", "type": "container", "size": "1GiB"}
        slow, _seconds = await timed(api.post(f"/v1/pools/{POOL}/volumes", json=body))
        assert slow.status_code == 201, slow.text
        emulator.state.clear_faults()
        hang(emulator, "POST", r"/spawn$")
        body["name"] = "c2"
        hung, seconds = await timed(api.post(f"/v1/pools/{POOL}/volumes", json=body))
        assert_retry_after(hung, 504, "linstor_timeout")
        assert 1.5 * 0.9 < seconds < 3 * 1.5, seconds


async def test_readyz_answers_within_its_deadline_whatever_linstor_does(
    service: Start, emulator: Emulator
) -> None:
    """Its own deadline (1 s), shorter than the requests' (5 s by default, kept here)."""
    async with service(cache=True, linstor_read_deadline=5.0) as (api, _):
        assert (await api.get("/readyz")).status_code == 200
        hang(emulator)
        response, seconds = await timed(api.get("/readyz"))
    assert seconds < 2.0, seconds
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["linstor"] == "unavailable: GET /v1/controller/version: LINSTOR did not answer in time"
    assert checks["cache"] == "ok"


async def test_a_hung_cache_check_does_not_hold_up_readyz(
    service: Start, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both checks hung: they run side by side, so /readyz costs one readiness deadline (1 s), not two."""

    async def hung() -> None:
        await asyncio.sleep(10)

    async with service(cache=True) as (api, app):
        services: Services = app.state.services
        assert services.cache is not None
        monkeypatch.setattr(services.cache, "stats", hung)
        only_cache, _ = await timed(api.get("/readyz"))
        hang(emulator)
        response, seconds = await timed(api.get("/readyz"))
    assert only_cache.json()["checks"] == {"linstor": "ok", "cache": "unavailable: no answer within 1s"}
    assert seconds < 1.8, seconds
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["cache"] == "unavailable: no answer within 1s"
    assert checks["linstor"].startswith("unavailable")
