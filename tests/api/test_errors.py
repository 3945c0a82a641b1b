"""The error boundary (app/translate.py, app/api/errors.py): LINSTOR's errors never become a 500."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.api import errors
from app.linstor.errors import LinstorTimeout, LinstorUnavailable
from app.translate import translates_linstor_errors
from tests.support.api import assert_problem


async def _raising(exc: Exception) -> None:
    raise exc


@translates_linstor_errors("look up volume")
async def _decorated() -> None:
    await _raising(LinstorTimeout("read timed out", controller="http://c:3370"))


def app_with_routes() -> FastAPI:
    """Two routes: one whose domain call forgot its boundary, one through a decorated operation."""
    app = FastAPI()
    errors.install(app)

    @app.get("/forgot")
    async def list_pools() -> None:
        await _raising(LinstorUnavailable("connection refused", controller="http://c:3370"))

    @app.get("/decorated")
    async def get_volume() -> None:
        await _decorated()

    return app


async def test_an_operation_without_its_boundary_is_translated_by_the_api_not_a_500() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_with_routes()), base_url="http://t"
    ) as c:
        body = assert_problem(await c.get("/forgot"), 503, "linstor_unavailable")
    assert body["detail"] == "list pools: LINSTOR is unavailable"  # the route's name says what failed
    assert body["linstor"] == {"message": "connection refused", "controller": "http://c:3370"}


async def test_a_decorated_operation_names_itself() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_with_routes()), base_url="http://t"
    ) as c:
        body = assert_problem(await c.get("/decorated"), 504, "linstor_timeout")
    assert body["detail"] == "look up volume: LINSTOR did not answer in time"
