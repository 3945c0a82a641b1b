"""The lookups answered before routing (app/api/hot.py) answer exactly as their routes do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson
import pytest

from app.api import hot
from app.api.schemas import Volume, volume_view
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from tests.api.conftest import ServiceFactory
from tests.support.api import POOL, create

VOLUMES = f"/v1/pools/{POOL}/volumes"
# plain lookups (the fast path takes them) and every kind of oddity it must leave to the routes
REQUESTS = [
    f"{VOLUMES}/container/c1",
    f"{VOLUMES}/container/c1?project=default",
    f"{VOLUMES}/virtual-machine/v1?project=p2",
    f"{VOLUMES}/virtual-machine/v%31?project=p%32",
    f"{VOLUMES}/container/missing",
    f"{VOLUMES}/container/c1?project=",
    f"{VOLUMES}/container/c1?project=bad%20project",
    f"{VOLUMES}/image/c1?project=p2",  # images live in project default only: 4xx from make_key
    f"{VOLUMES}/container/{'x' * 300}",
    f"{VOLUMES}/containers/c1",  # not a type: FastAPI's 422
    f"{VOLUMES}/container/c1?project=p2&project=default",
    f"{VOLUMES}/container/c1?other=1",
    f"{VOLUMES}/container/c1/",
    "/v1/pools/nopool/volumes/container/c1",
    "/v1/resolve/{rd}",
    "/v1/resolve/{rd_lower}",
    "/v1/resolve/{snap}",
    "/v1/resolve/incus-volume-00000000000000000000000000000000",
    "/v1/resolve/not%20a%20name",
    "/v1/resolve/{rd}?x=1",
    "/v1/resolve/",
]


@asynccontextmanager
async def populated(
    service: ServiceFactory, mode: str
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A service in cache `mode` with a container, a VM in project p2 and a snapshot of it; the names."""
    async with service(cache_mode=mode) as api:
        c1 = await create(api, name="c1", type="container")
        await create(api, name="v1", type="virtual-machine", project="p2")
        snap = await api.post(f"{VOLUMES}/virtual-machine/v1/snapshots?project=p2", json={"name": "s1"})
        assert snap.status_code == 201, snap.text
        snapshot = (await api.get(f"{VOLUMES}/virtual-machine/v1/snapshots/s1?project=p2")).json()
        names = {"rd": c1["linstor_name"], "rd_lower": c1["linstor_name"].lower()}
        names["snap"] = snapshot["linstor_name"]
        yield api, names


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    # the request id is per request; Age ticks with the clock
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "age", "date")}
    return response.status_code, headers, response.content


@pytest.mark.parametrize("mode", ["trust", "verify", "off"])
async def test_fast_path_answers_as_the_routes_do(
    service: ServiceFactory, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    async with populated(service, mode) as (api, names):
        paths = [p.format(**names) for p in REQUESTS]
        fast = [_answer(await api.get(p)) for p in paths]
        with monkeypatch.context() as patch:
            patch.setattr(hot.HotLookups, "_lookup", _nothing)  # every request goes on to the routes
            routed = [_answer(await api.get(p)) for p in paths]
    for path, one, other in zip(paths, fast, routed, strict=True):
        assert one == other, path
    statuses = {s for s, _, _ in fast}
    assert {200, 404, 422}.issubset(statuses)


async def _nothing(self: hot.HotLookups, scope: object) -> None:
    return None


async def test_plain_lookups_take_the_fast_path_and_are_counted_under_their_route(
    service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with populated(service, "trust") as (api, names):
        answered: list[str] = []
        original = hot.HotLookups._answer

        async def spy(
            self: hot.HotLookups, scope: dict[str, object], route: str, lookup: hot.Lookup
        ) -> object:
            answered.append(route)
            return await original(self, scope, route, lookup)

        monkeypatch.setattr(hot.HotLookups, "_answer", spy)
        assert (await api.get(f"{VOLUMES}/container/c1")).status_code == 200
        assert (await api.get(f"/v1/resolve/{names['snap']}")).status_code == 200
        assert (await api.get(f"{VOLUMES}/container/missing")).status_code == 404
        assert (await api.get(f"{VOLUMES}/container/c1?other=1")).status_code == 200  # the route's
        assert answered == ["get_volume", "resolve", "get_volume"]
        metrics = (await api.get("/metrics")).text
    route = "/v1/pools/{pool}/volumes/{type}/{name}"
    assert f'linstor_names_http_requests_total{{method="GET",route="{route}",status="200"}} 2.0' in metrics
    assert f'linstor_names_http_requests_total{{method="GET",route="{route}",status="404"}} 1.0' in metrics
    assert (
        'linstor_names_http_requests_total{method="GET",route="/v1/resolve/{linstor_name}",status="200"}'
        in (metrics)
    )


@pytest.mark.parametrize("description", [None, "a VM ✓"])
def test_volume_view_is_what_volume_serializes(description: str | None) -> None:
    # the lookups answer volume_view() without a validation pass: it must stay the model's own JSON
    record = VolumeRecord(
        key=VolumeKey(pool="p", project="default", type=VolumeType.VIRTUAL_MACHINE, name="v"),
        rd_name="incus-volume-" + "0" * 32,
        content_type=ContentType.BLOCK,
        description=description,
        volume_sizes_kib=(1024, 2048),
        snapshots={"b": "snap-b", "a": "snap-a"},
    )
    assert orjson.dumps(volume_view(record)) == Volume.of(record).model_dump_json().encode()
