"""GET /v1/pools/{pool}/orphans and POST …/orphans/repair over HTTP, and the repair pass at start-up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from app import markers
from app.identity import ContentType, VolumeType
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.main import create_app
from app.naming import AuxCodec
from app.specs import make_key
from tests.api.conftest import service_settings
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem, create
from tests.support.server import serve

STUCK = "incus-volume-0123456789abcdef0123456789abcdef"


async def leave_unfinished_create(linstor: LinstorClient) -> None:
    """An RD as a create that crashed after its spawn leaves it: identity and pending marks, an hour old."""
    key = make_key(POOL, "default", VolumeType.CONTAINER, "stuck")
    props = AuxCodec("incus-volume-", "Incus").volume_props(key, ContentType.FILESYSTEM)
    props |= markers.pending(STUCK, "create") | {markers.STARTED: f"{time.time() - 3600:.3f}"}
    await linstor.create_resource_definition(STUCK, resource_group=POOL, props=props)


async def test_the_report_the_dry_run_and_the_repair(api: httpx.AsyncClient, linstor: LinstorClient) -> None:
    volume = await create(api, name="c1", type="container")
    await leave_unfinished_create(linstor)

    listed = await api.get(f"/v1/pools/{POOL}/orphans")
    assert listed.status_code == 200, listed.text
    body: dict[str, Any] = listed.json()
    reason = body["orphans"][0].pop("reason")
    assert reason.startswith("create unfinished for 3600s (grace 600s)")
    assert body == {
        "pool": POOL,
        "applied": False,
        "grace_seconds": 600.0,
        "orphans": [
            {
                "kind": "unfinished",
                "resource_definition": STUCK,
                "snapshot": None,
                "key": None,
                "volume": {"project": "default", "type": "container", "name": "stuck"},
                "action": "delete_rd",
                "outcome": "planned",
                "error": None,
            }
        ],
    }

    dry = await api.post(f"/v1/pools/{POOL}/orphans/repair")
    assert dry.status_code == 200, dry.text
    assert dry.json()["applied"] is False
    assert [o["outcome"] for o in dry.json()["orphans"]] == ["planned"]
    assert [rd.name for rd in await linstor.list_resource_definitions(names=[STUCK])] == [STUCK]

    fixed = await api.post(f"/v1/pools/{POOL}/orphans/repair", json={"apply": True})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["applied"] is True
    assert [(o["resource_definition"], o["outcome"]) for o in fixed.json()["orphans"]] == [(STUCK, "done")]
    assert await linstor.list_resource_definitions(names=[STUCK]) == []
    again = await api.get(f"/v1/pools/{POOL}/orphans")
    assert again.json()["orphans"] == []
    found = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
    assert found.json()["linstor_name"] == volume["linstor_name"]


async def test_problems(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/pools/nope/orphans"), 404, "pool_not_found")
    wrong = await api.post(f"/v1/pools/{POOL}/orphans/repair", json={"apply": True, "force": True})
    assert_problem(wrong, 422, "invalid_request")


async def test_a_repair_interval_repairs_at_start_up(
    linstor: LinstorClient, emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    await leave_unfinished_create(linstor)
    settings = service_settings(tmp_path_factory.mktemp("repair"), cache_url="none", repair_interval=3600)
    with serve(create_app(settings, linstor=ConnectionConfig(urls=(emulator.url,)))):
        for _ in range(200):
            if not await linstor.list_resource_definitions(names=[STUCK]):
                break
            await asyncio.sleep(0.02)
    assert await linstor.list_resource_definitions(names=[STUCK]) == []
