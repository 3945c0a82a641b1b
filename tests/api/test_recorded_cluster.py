"""The service against an emulator built like the recorded cluster: one satellite, a FILE_THIN pool, the
STORAGE layer only (shared/linstor/transcripts/README.md), through LINSTOR's own API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.emulator import EmulatorState, ExchangeRecord, create_emulator_app
from app.linstor.config import ConnectionConfig
from app.main import create_app
from app.transcripts.prelude import cluster_requests
from tests.api.conftest import service_settings
from tests.support.server import serve

# service-traffic.jsonl #18: the group the service's tests made on the real controller
RECORDED_POOL = {
    "name": "linstor",
    "select_filter": {"place_count": 1, "storage_pool_list": ["thinpool"], "layer_stack": ["storage"]},
}


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, list[ExchangeRecord]]]:
    """The service in front of a fresh emulator set up as the recorded cluster; the emulator's exchanges."""
    seen: list[ExchangeRecord] = []
    emulator = create_emulator_app(
        state=EmulatorState(layout="bare", satellites={"server01": "vm"}), observer=seen.append
    )
    with serve(emulator) as linstor_url:
        async with httpx.AsyncClient(base_url=linstor_url) as linstor:
            for request in cluster_requests():
                answer = await linstor.request(request.method, request.path, json=request.body)
                assert answer.status_code == 201, answer.text
            assert (await linstor.post("/v1/resource-groups", json=RECORDED_POOL)).status_code == 201
        app = create_app(
            service_settings(tmp_path, cache_url="none"), linstor=ConnectionConfig(urls=(linstor_url,))
        )
        with serve(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as api:
                seen.clear()
                yield api, seen


async def test_new_volume_from_a_snapshot_passes_the_recorded_controllers_rules(
    recorded: tuple[httpx.AsyncClient, list[ExchangeRecord]],
) -> None:
    """service-traffic.jsonl #151-156: the real controller refuses `DrbdOptions/ExactSize=true` on the
    restored RD, whose resource is deployed; the service rewrites only the identity there."""
    api, seen = recorded
    vm = {"name": "vm1", "type": "virtual-machine", "size": "1GiB"}
    assert (await api.post("/v1/pools/linstor/volumes", json=vm)).status_code == 201
    snap = await api.post("/v1/pools/linstor/volumes/virtual-machine/vm1/snapshots", json={"name": "before"})
    assert snap.status_code == 201, snap.text
    seen.clear()
    source = {"type": "virtual-machine", "name": "vm1", "snapshot": "before"}
    body = {"name": "vm2", "type": "virtual-machine", "source": source}
    response = await api.post("/v1/pools/linstor/volumes", json=body)
    assert response.status_code == 201, response.text
    restored = response.json()["linstor_name"]
    puts = [e for e in seen if e.method == "PUT" and e.path == f"/v1/resource-definitions/{restored}"]
    assert len(puts) == 1
    props = json.loads(puts[0].request_body)["override_props"]
    assert all(key.startswith("Aux/") for key in props), props
    # the recorded sequence (#153-156): RD, restore VDs, restore resources, identity PUT (the staging group
    # exists since vm1's claim); around it, the identity's claim is taken and released (app/claims.py)
    writes = [(e.method, e.route, e.status) for e in seen if e.method != "GET"]
    assert writes == [
        ("POST", "/v1/resource-definitions", 201),  # the claim
        ("POST", "/v1/resource-definitions", 201),  # the new RD, in the staging group
        ("POST", "/v1/resource-definitions/{resource}/snapshot-restore-volume-definition/{snapshot}", 200),
        ("POST", "/v1/resource-definitions/{resource}/snapshot-restore-resource/{snapshot}", 200),
        ("PUT", "/v1/resource-definitions/{resource}", 200),
        ("DELETE", "/v1/resource-definitions/{resource}", 200),  # the claim released
    ]
    got = await api.get("/v1/pools/linstor/volumes/virtual-machine/vm2")
    assert got.status_code == 200
    assert got.json()["linstor_name"] == restored
