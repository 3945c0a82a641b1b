"""Nodes and storage pools built through the real API, with emulated satellites.

`#n` cites line n of tests/conformance/linstor/transcripts/linstor-1.33.3-controller-api.jsonl (a real
controller with one satellite, server01, whose hostname is `vm`); answers are compared to the recording after
normalising UUIDs and timestamps. Every answer is also checked against LINBIT's OpenAPI spec.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from linstor import sharedconsts as apiconsts

from app.emulator import EmulatorState, create_emulator_app
from app.transcripts.normalize import normalize
from tests.conformance.spec import SpecValidator
from tests.emulator.helpers import codes

TRANSCRIPTS = Path(__file__).parents[1] / "conformance" / "linstor" / "transcripts"

# signed ret_codes as the controller writes them (checked against python-linstor in the first test)
NODE_CREATED = 20709377
NODE_NOT_CONNECTED = -9223372036834065430
NODE_NAME_MISMATCH = 4611686018448107281
NODE_EXISTS = -4611686018406678028
NODE_DELETED = 54263810
NODE_DEL_MODIFIED = 54263811
NODE_DEL_NOT_FOUND = -9223372036800509000
NODE_DEL_IN_USE = -4611686018373123099
NODE_HAS_USED_RSC = -4611686018373123863
NODE_DEL_NOT_CONNECTED = -9223372036800510998
NODE_LOST_CONNECTED = -4611686018373123590
POOL_CREATED = 18087937
POOL_UPDATED = 18087939
POOL_NOT_SUPPORTED = -4611686018409298979
POOL_DELETED = 51642370
POOL_DEL_NOT_FOUND = -9223372036803130440
POOL_DEL_DISKLESS = -4611686018375745328
POOL_DEL_IN_USE = -4611686018375744539
RSC_CREATED = 20185089

SERVER01 = {
    "name": "server01",
    "type": "SATELLITE",
    "net_interfaces": [
        {
            "name": "default",
            "address": "127.0.0.1",
            "satellite_port": 13367,
            "satellite_encryption_type": "PLAIN",
        }
    ],
}
THINPOOL = {
    "storage_pool_name": "thinpool",
    "provider_kind": "FILE_THIN",
    "props": {"StorDriver/FileDir": "/srv/linstor/thinpool"},
}


def recorded(line: int, name: str = "linstor-1.33.3-controller-api.jsonl") -> dict[str, Any]:
    """One exchange of a recording (request, status, decoded answer)."""
    with (TRANSCRIPTS / name).open() as fh:
        for number, raw in enumerate(fh, start=1):
            if number == line:
                exchange: dict[str, Any] = orjson.loads(raw)
                exchange["answer"] = orjson.loads(exchange["response"])
                return exchange
    raise LookupError(line)


def same(answer: Any, expected: Any) -> bool:
    """Equal after normalisation, key order and list order included (JSON objects are ordered here)."""
    return orjson.dumps(normalize(answer)) == orjson.dumps(normalize(expected))


async def replay(client: httpx.AsyncClient, line: int) -> httpx.Response:
    """Send the recorded request of `line` as it was sent."""
    exchange = recorded(line)
    body = exchange["body"].encode() or None
    return await client.request(exchange["method"], exchange["path"], params=exchange["query"], content=body)


def node(name: str, port: int = 3366) -> dict[str, Any]:
    """A POST /v1/nodes body like #172's."""
    netif = {
        "name": "default",
        "address": "127.0.0.1",
        "satellite_port": port,
        "satellite_encryption_type": "PLAIN",
    }
    return {"name": name, "type": "SATELLITE", "net_interfaces": [netif]}


@pytest.fixture
async def conformant(spec_validator: SpecValidator) -> AsyncIterator[None]:
    """Fail the test if an answer broke LINBIT's spec (with the named deviations)."""
    spec_validator.take_failures()
    yield
    failures = spec_validator.take_failures()
    assert not failures, "answers that do not match the spec:\n" + "\n".join(failures)


@pytest.fixture
def bare() -> EmulatorState:
    """The recorded cluster before anything was created: satellites server01 (hostname `vm`) and server02."""
    return EmulatorState(layout="bare", satellites={"server01": "vm", "server02": "server02"})


@pytest.fixture
async def api(
    bare: EmulatorState, spec_validator: SpecValidator, conformant: None
) -> AsyncIterator[httpx.AsyncClient]:
    """httpx on the bare emulator, every answer validated against the spec."""
    app = create_emulator_app(state=bare, observer=spec_validator.observe)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as client:
        yield client


def test_ret_codes_are_linbits() -> None:
    assert NODE_CREATED == apiconsts.MASK_CRT | apiconsts.MASK_NODE | apiconsts.CREATED
    not_connected = apiconsts.WARN_NOT_CONNECTED | apiconsts.MASK_CRT | apiconsts.MASK_NODE
    assert NODE_NOT_CONNECTED == not_connected - (1 << 64)
    assert NODE_HAS_USED_RSC == (
        apiconsts.FAIL_NODE_HAS_USED_RSC | apiconsts.MASK_DEL | apiconsts.MASK_NODE
    ) - (1 << 64)
    unsupported = (
        apiconsts.FAIL_STLT_DOES_NOT_SUPPORT_PROVIDER | apiconsts.MASK_CRT | apiconsts.MASK_STOR_POOL
    )
    assert POOL_NOT_SUPPORTED == unsupported - (1 << 64)


async def test_bare_layout_has_only_the_default_group(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/nodes")).json() == []
    assert (await api.get("/v1/view/storage-pools")).json() == []
    groups = (await api.get("/v1/resource-groups")).json()
    # golinstor-traffic.jsonl #6: DfltRscGrp places 2 replicas
    assert [(g["name"], g["select_filter"]) for g in groups] == [("DfltRscGrp", {"place_count": 2})]


async def test_node_with_a_satellite_comes_online_like_server01(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/nodes", json=SERVER01)
    assert created.status_code == 201
    assert codes(created) == [NODE_CREATED, NODE_NAME_MISMATCH]
    assert created.json()[0]["message"] == "New node 'server01' registered."
    assert created.json()[1]["message"] == "Linstor node name 'server01' and hostname 'vm' doesn't match."
    shown = await replay(api, 181)
    assert shown.status_code == 200
    assert same(shown.json(), recorded(181)["answer"])


async def test_node_without_a_satellite_stays_offline_with_the_warning(api: httpx.AsyncClient) -> None:
    created = await replay(api, 172)
    assert created.status_code == 201
    assert codes(created) == [NODE_CREATED, NODE_NOT_CONNECTED]
    assert same(created.json(), recorded(172)["answer"])
    for line in (173, 175):
        shown = (await replay(api, line)).json()
        expected = recorded(line)["answer"]
        one = shown if line == 173 else shown[0]
        # evicted one hour after the satellite was lost (#173's timestamp is the recording's clock)
        assert abs(one.pop("eviction_timestamp") - (time.time() * 1000 + 3_600_000)) < 60_000
        (expected if line == 173 else expected[0]).pop("eviction_timestamp")
        assert same(shown, expected)
    missing = await replay(api, 174)
    assert missing.status_code == 404
    assert same(missing.json(), recorded(174)["answer"])
    again = await replay(api, 172)
    assert (again.status_code, codes(again)) == (500, [NODE_EXISTS])
    assert again.json()[0]["cause"] == "A node with the specified name 't8c08aa-n1' already exists."


async def test_pools_follow_the_satellite(api: httpx.AsyncClient) -> None:
    await api.post("/v1/nodes", json=SERVER01)
    await replay(api, 172)
    created = await api.post("/v1/nodes/server01/storage-pools", json=THINPOOL)
    assert created.status_code == 201
    assert codes(created) == [POOL_CREATED, POOL_CREATED, POOL_UPDATED]
    assert [e["message"] for e in created.json()] == [
        "Successfully set property key(s): StorDriver/StorPoolName",
        "New storage pool 'thinpool' on node 'server01' registered.",
        "Storage pool updated on 'server01'",
    ]
    shown = await replay(api, 182)
    assert same(shown.json(), recorded(182)["answer"])
    for line in (176, 177, 178):  # refused on the node without a satellite; its diskless pool reports that
        answer = await replay(api, line)
        assert answer.status_code == recorded(line)["status"]
        assert same(answer.json(), recorded(line)["answer"])
    assert codes(await replay(api, 176)) == [POOL_NOT_SUPPORTED]
    nowhere = await api.get("/v1/nodes/nope/storage-pools")  # loadNode in doInScope: a raw entry
    assert (nowhere.status_code, codes(nowhere)) == (404, [-4611686018427387604])
    assert nowhere.json()[0]["cause"] == "The specified node 'nope' could not be found in the database"


async def test_pool_delete(api: httpx.AsyncClient, bare: EmulatorState) -> None:
    await api.post("/v1/nodes", json=SERVER01)
    await api.post("/v1/nodes/server01/storage-pools", json=THINPOOL)
    diskless = await api.delete("/v1/nodes/server01/storage-pools/DfltDisklessStorPool")
    assert (diskless.status_code, codes(diskless)) == (500, [POOL_DEL_DISKLESS])
    assert diskless.json()[0]["message"] == "The default diskless storage pool cannot be deleted!"
    await api.post("/v1/resource-groups", json={"name": "rg", "select_filter": {"place_count": 1}})
    spawn = {
        "resource_definition_name": "vol1",
        "volume_sizes": [1024],
        "select_filter": {"layer_stack": ["STORAGE"]},
    }
    assert (await api.post("/v1/resource-groups/rg/spawn", json=spawn)).status_code == 201
    [thin] = (await api.get("/v1/view/storage-pools", params={"storage_pools": "thinpool"})).json()
    assert thin["free_capacity"] == 514004  # a thin volume takes no space until written (#182)
    used = await api.delete("/v1/nodes/server01/storage-pools/thinpool")
    assert (used.status_code, codes(used)) == (500, [POOL_DEL_IN_USE])
    assert used.json()[0]["details"] == (
        "Volumes / snapshot-volumes that are still using the storage pool: \n"
        "   Node name: 'server01', resource name: 'vol1', volume number: 0, resource suffix: ''\n"
        "Node: server01, Storage pool name: thinpool"
    )
    assert (await api.delete("/v1/resource-definitions/vol1")).status_code == 200
    gone = await api.delete("/v1/nodes/server01/storage-pools/thinpool")
    assert (gone.status_code, codes(gone)) == (200, [POOL_DELETED])
    assert gone.json()[0]["message"] == "Node: server01, Storage pool name: thinpool deleted."
    again = await api.delete("/v1/nodes/server01/storage-pools/thinpool")
    assert (again.status_code, codes(again)) == (200, [POOL_DEL_NOT_FOUND])
    assert again.json()[0]["cause"] == "Storage pool 'thinpool' on node 'server01' does not exist."
    assert "thinpool" not in {
        p["storage_pool_name"] for p in (await api.get("/v1/view/storage-pools")).json()
    }


async def test_node_delete_is_refused_for_the_last_disk_and_lost_removes_the_client(
    api: httpx.AsyncClient, bare: EmulatorState
) -> None:
    bare.drbd = True  # a diskless client needs DRBD
    await api.post("/v1/nodes", json=SERVER01)
    await api.post("/v1/nodes", json=node("server02"))
    await api.post("/v1/nodes/server01/storage-pools", json=THINPOOL)
    await api.post("/v1/resource-groups", json={"name": "rg", "select_filter": {"place_count": 1}})
    assert (
        await api.post(
            "/v1/resource-groups/rg/spawn", json={"resource_definition_name": "vol1", "volume_sizes": [1024]}
        )
    ).status_code == 201
    client = await api.post("/v1/resource-definitions/vol1/resources/server02/make-available", json={})
    assert (client.status_code, codes(client)[0]) == (200, RSC_CREATED)

    refused = await api.delete("/v1/nodes/server01")
    assert (refused.status_code, codes(refused)) == (500, [NODE_DEL_IN_USE, NODE_HAS_USED_RSC])
    assert (
        refused.json()[0]["message"]
        == "Last resource of 'vol1' with disk still has diskless resources attached."
    )
    assert (
        refused.json()[1]["message"] == "Cannot delete node, because it has in use or last diskful resources."
    )
    assert refused.json()[1]["details"] == "Node: server01"
    assert (await api.get("/v1/nodes/server01")).status_code == 200

    connected = await api.delete("/v1/nodes/server02/lost")
    assert (connected.status_code, codes(connected)) == (500, [NODE_LOST_CONNECTED])
    assert connected.json()[0]["message"] == "Node 'server02' still connected, please use the 'DelNode' api."
    bare.set_node_online("server02", False)
    lost = await api.delete("/v1/nodes/server02/lost")
    assert (lost.status_code, codes(lost)) == (200, [NODE_DELETED, NODE_DEL_MODIFIED])
    assert [e["message"] for e in lost.json()] == [
        "Node 'server02' deleted.",
        "Notified 'server01' that 'server02' has been lost",
    ]
    assert [r["node_name"] for r in (await api.get("/v1/resource-definitions/vol1/resources")).json()] == [
        "server01"
    ]
    assert (await api.get("/v1/nodes/server02")).status_code == 404

    deleted = await api.delete("/v1/nodes/server01")  # no diskless peer left: the satellite undeploys
    assert (deleted.status_code, codes(deleted)) == (200, [NODE_DELETED, NODE_DEL_MODIFIED, NODE_DELETED])
    assert [e["message"] for e in deleted.json()] == [
        "Node 'server01' marked for deletion.",
        "Deleted resource 'vol1' on 'server01'",
        "Node 'server01' deleted.",
    ]
    assert (await api.get("/v1/resource-definitions/vol1/resources")).json() == []
    assert (await api.get("/v1/view/storage-pools")).json() == []


async def test_offline_node_with_resources_stays_marked_until_lost(
    api: httpx.AsyncClient, bare: EmulatorState
) -> None:
    await replay(api, 172)  # t8c08aa-n1, no satellite
    assert (
        await api.post("/v1/resource-definitions", json={"resource_definition": {"name": "vol1"}})
    ).status_code == 201
    body = [{"resource": {"node_name": "t8c08aa-n1", "flags": ["DRBD_DISKLESS"]}}]
    assert (await api.post("/v1/resource-definitions/vol1/resources", json=body)).status_code == 201
    marked = await api.delete("/v1/nodes/t8c08aa-n1")
    assert (marked.status_code, codes(marked)) == (200, [NODE_DELETED, NODE_DEL_NOT_CONNECTED])
    assert marked.json()[0]["message"] == "Node 't8c08aa-n1' marked for deletion."
    assert (await api.get("/v1/nodes/t8c08aa-n1")).json()["flags"] == ["DELETE"]
    lost = await api.delete("/v1/nodes/t8c08aa-n1/lost")
    assert (lost.status_code, codes(lost)) == (200, [NODE_DELETED])
    assert (await api.get("/v1/resource-definitions/vol1/resources")).json() == []
    nothing = await api.delete("/v1/nodes/t8c08aa-n1")
    assert (nothing.status_code, codes(nothing)) == (200, [NODE_DEL_NOT_FOUND])
    assert nothing.json()[0]["message"] == "Deletion of node 't8c08aa-n1' had no effect."
    assert nothing.json()[0]["cause"] == "Node 't8c08aa-n1' does not exist."


async def test_empty_node_is_deleted_at_once(api: httpx.AsyncClient) -> None:
    await api.post("/v1/nodes", json=node("server02"))
    deleted = await api.delete("/v1/nodes/SERVER02")
    assert (deleted.status_code, codes(deleted)) == (200, [NODE_DELETED])
    assert deleted.json()[0]["obj_refs"] == {"Node": "SERVER02"}
    assert (await api.get("/v1/nodes")).json() == []


async def test_default_layout_keeps_drbd_and_is_unchanged(client: httpx.AsyncClient) -> None:
    nodes = (await client.get("/v1/nodes")).json()
    assert [(n["name"], n["connection_status"], n["resource_layers"]) for n in nodes] == [
        (name, "ONLINE", ["DRBD", "STORAGE"]) for name in ("server01", "server02", "server03")
    ]
    assert nodes[0]["props"] == {"CurStltConnName": "default", "NodeUname": "server01"}
    assert "LVM_THIN" in nodes[0]["storage_providers"]
    assert "DRBD" not in nodes[0]["unsupported_layers"]
    created = await client.post("/v1/nodes", json=node("server04"))  # no satellite of that name
    assert codes(created) == [NODE_CREATED, NODE_NOT_CONNECTED]


async def test_nodes_and_pools_survive_save_and_load(
    api: httpx.AsyncClient, bare: EmulatorState, tmp_path: Path
) -> None:
    await api.post("/v1/nodes", json=SERVER01)
    await api.post("/v1/nodes/server01/storage-pools", json=THINPOOL)
    await replay(api, 172)
    before = [(await api.get(url)).json() for url in ("/v1/nodes", "/v1/view/storage-pools")]
    bare.save(tmp_path / "state.json")
    bare.reset()
    assert (await api.get("/v1/nodes")).json() == []
    bare.load(tmp_path / "state.json")
    after = [(await api.get(url)).json() for url in ("/v1/nodes", "/v1/view/storage-pools")]
    assert same(after, before)
