"""Faults, reset, save/load, the observer, and real HTTP (uvicorn) including refused connections."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from app.emulator import EmulatorState, ExchangeRecord, create_emulator_app
from app.emulator.faults import ConnectionDropped
from tests.emulator.helpers import RD_URL, make_rd
from tests.support.emulator import running_emulator
from tests.support.server import serve


async def test_latency_and_error_faults(client: httpx.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(action="latency", method="GET", path="^/v1/resource-definitions$", seconds=0.2, times=1)
    started = time.monotonic()
    assert (await client.get(RD_URL)).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert state.faults.rules() == []  # fired once
    r = await client.post(
        "/_emulator/faults",
        json={"action": "error", "method": "POST", "path": "resource-definitions", "times": 2},
    )
    assert r.status_code == 201
    for _ in range(2):
        failed = await make_rd(client, "vol1")
        assert failed.status_code == 500
        assert failed.json()[0]["ret_code"] == -4611686018427386906
    assert (await make_rd(client, "vol1")).status_code == 201
    state.add_fault(action="error", path="^/v1/nodes", status=503, body={"oops": True})
    assert (await client.get("/v1/nodes")).status_code == 503
    assert len((await client.get("/_emulator/faults")).json()) == 1
    assert (await client.delete("/_emulator/faults")).status_code == 200
    assert (await client.get("/v1/nodes")).status_code == 200


async def test_drop_in_process_raises(client: httpx.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(action="drop", path="^/v1/nodes$", times=1)
    with pytest.raises(ConnectionDropped):
        await client.get("/v1/nodes")


async def test_reset_and_save_load(client: httpx.AsyncClient, state: EmulatorState, tmp_path: Path) -> None:
    await make_rd(client, "vol1", {"Aux/a": "1"})
    await client.post(f"{RD_URL}/vol1/volume-definitions", json={"volume_definition": {"size_kib": 1024}})
    await client.post(f"{RD_URL}/vol1/autoplace", json={"select_filter": {}})
    await client.post(f"{RD_URL}/vol1/snapshots", json={"name": "s1"})
    path = tmp_path / "state.json"
    assert (await client.post("/_emulator/save", json={"path": str(path)})).status_code == 200
    assert (await client.post("/_emulator/reset")).status_code == 200
    assert (await client.get(RD_URL)).json() == []
    assert (await client.post("/_emulator/load", json={"path": str(path)})).status_code == 200
    assert (await client.get(f"{RD_URL}/VOL1")).json()["props"] == {
        "Aux/a": "1",
        "DrbdOptions/Resource/quorum": "off",
    }
    assert len((await client.get("/v1/view/snapshots")).json()) == 1
    other = EmulatorState()
    other.load(path)
    assert other.rds["VOL1"].snapshots["S1"].volumes == [(0, 1024)]


async def test_observer_sees_v1_only() -> None:
    seen: list[ExchangeRecord] = []
    app = create_emulator_app(observer=seen.append, controls=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as client:
        await client.post(RD_URL, json={"resource_definition": {"name": "vol1"}})
        await client.get(f"{RD_URL}/vol1", params=[("props", "Aux/a=b")])
        await client.get("/v1/nope")
        await client.post("/_emulator/reset")
    assert [(r.method, r.route, r.status) for r in seen] == [
        ("POST", "/v1/resource-definitions", 201),
        ("GET", "/v1/resource-definitions/{resource}", 200),
        ("GET", None, 404),
    ]
    assert seen[0].request_body.startswith(b"{")
    assert seen[1].query == [("props", "Aux/a=b")]
    assert seen[1].content_type == "application/json"


def test_real_http_hang_and_drop() -> None:
    state = EmulatorState()
    with serve(create_emulator_app(state=state)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/v1/controller/version").status_code == 200
        state.add_fault(action="hang", path="^/v1/nodes$", times=1)
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v1/nodes", timeout=0.3)
        assert client.get("/v1/resource-definitions", timeout=2).status_code == 200  # the loop is not blocked
        state.add_fault(action="drop", path="^/v1/nodes$", times=1)
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/v1/nodes", timeout=2)
        assert client.get("/v1/nodes", timeout=2).status_code == 200


async def test_hang_does_not_block_other_requests() -> None:
    state = EmulatorState()
    with serve(create_emulator_app(state=state)) as url:
        state.add_fault(action="hang", path="^/v1/nodes$", times=1)
        async with httpx.AsyncClient(base_url=url) as client:
            hung = asyncio.create_task(client.get("/v1/nodes", timeout=1.0))
            await asyncio.sleep(0.1)
            assert (await client.get(RD_URL, timeout=1.0)).status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                await hung


def test_refuse_connections() -> None:
    with running_emulator() as (url, _state):
        with httpx.Client(base_url=url) as client:
            assert client.post("/_emulator/refuse", json={"seconds": 0.6}).json()["mode"] == "refuse"
        time.sleep(0.1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v1/controller/version", timeout=1)
        time.sleep(0.8)
        assert httpx.get(f"{url}/v1/controller/version", timeout=2).status_code == 200


def test_refuse_without_runner_drops() -> None:
    with serve(create_emulator_app(controls=True)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/_emulator/refuse", json={"seconds": 0.3}).json()["mode"] == "drop"
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/v1/nodes")
        time.sleep(0.35)
        assert client.get("/v1/nodes").status_code == 200
