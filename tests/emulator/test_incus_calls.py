"""The calls Incus's LINSTOR driver makes to use a volume on a node (incus-linstor-driver.md §3.1, §6.2):
make-available, the resource's volumes for its device path, the deletion of the diskless resource.

golinstor-traffic.jsonl #95 is the one recorded answer (`#n` is a line of that file); the rest follows
linstor-server's CtrlRscMakeAvailableApiCallHandler and CtrlRscDeleteApiCallHandler. Every answer is checked
against LINBIT's OpenAPI spec.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import linstor
import pytest

from app.emulator import EmulatorState, create_emulator_app
from tests.conftest import Emulator
from tests.emulator.helpers import codes
from tests.emulator.test_topology import SERVER01, THINPOOL, conformant, recorded, same
from tests.support.server import serve

__all__ = ["conformant"]  # a fixture of test_topology, used here too (it could move to conftest.py)

GOLINSTOR = "linstor-1.33.3-golinstor-traffic.jsonl"
RSC_CREATED = 20185089
RSC_ALREADY = 20185088  # MASK_SUCCESS in the make-available context
RSC_NO_POOL = -4611686018407202506
RSC_CRT_RD_NOT_FOUND = -4611686018407202515
RSC_CRT_NODE_NOT_FOUND = -4611686018407202516
RSC_TOGGLE = 36962307
RSC_DELETED = 53739522
RSC_DEL_MODIFIED = 53739523
RSC_DEL_NOT_FOUND = -9223372036801033288
RSC_DEL_IN_USE = -4611686018373647387
RSC_DEL_NOT_CONNECTED = -9223372036801035286
RAW_RSC_NOT_FOUND = -4611686018427387602
RD = "/v1/resource-definitions"


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """The default cluster (server01-03, DRBD) over real HTTP; its answers are checked against the spec."""
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as client:
        yield client


async def spawn_incus_volume(http: httpx.AsyncClient, rd: str) -> str:
    """Incus's CreateVolume: its group (place_count 2, golinstor #3), spawn; returns a node without the RD."""
    group = {
        "name": "incus",
        "description": "Resource group managed by Incus",
        "select_filter": {"place_count": 2},
    }
    assert (await http.post("/v1/resource-groups", json=group)).status_code == 201
    spawn = await http.post(
        "/v1/resource-groups/incus/spawn", json={"resource_definition_name": rd, "volume_sizes": [1048576]}
    )
    assert spawn.status_code == 201, spawn.text
    placed = {r["node_name"] for r in (await http.get(f"{RD}/{rd}/resources")).json()}
    return next(n for n in ("server01", "server02", "server03") if n not in placed)


async def test_make_available_without_drbd_refuses_like_the_recording(
    spec_validator: Any, conformant: None
) -> None:
    state = EmulatorState(layout="bare", satellites={"server01": "vm"})  # the recorded satellite: no DRBD
    app = create_emulator_app(state=state, observer=spec_validator.observe)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as api:
        await api.post("/v1/nodes", json=SERVER01)
        await api.post("/v1/nodes/server01/storage-pools", json=THINPOOL)
        for line in (3, 7, 95):  # the group (place_count 2), the RD spawned without resources, make-available
            exchange = recorded(line, GOLINSTOR)
            answer = await api.request(exchange["method"], exchange["path"], content=exchange["body"])
            assert answer.status_code == exchange["status"], answer.text
    # DRBD over STORAGE needs a diskful first resource, and the satellite has no DRBD
    assert codes(answer) == [RSC_NO_POOL]
    assert same(answer.json(), recorded(95, GOLINSTOR)["answer"])


async def test_incus_volume_life_cycle(http: httpx.AsyncClient) -> None:
    rd = "incus-volume-3c7801b1e6ab4931a2cdf8428a05b7ae"
    node = await spawn_incus_volume(http, rd)
    url = f"{RD}/{rd}/resources/{node}"

    attached = await http.post(f"{url}/make-available", json={})  # golinstor's body (#95)
    assert (attached.status_code, codes(attached)) == (200, [RSC_CREATED, RSC_CREATED])
    assert attached.json()[0]["message"] == f"New resource '{rd}' on node '{node}' registered."
    again = await http.post(f"{url}/make-available", json={"diskful": False})
    assert (again.status_code, codes(again)) == (200, [RSC_ALREADY])
    assert again.json()[0]["message"] == "Resource already deployed as requested"
    assert again.json()[0]["obj_refs"] == {"RscDfn": rd, "Node": node}

    volumes = await http.get(f"{url}/volumes")
    assert volumes.status_code == 200
    [volume] = volumes.json()
    diskful = (await http.get("/v1/view/resources", params={"resources": rd})).json()
    peer = next(r for r in diskful if r["node_name"] != node)
    # a diskless DRBD client opens the same /dev/drbdN as its diskful peers
    assert volume["device_path"] == peer["volumes"][0]["device_path"]
    assert volume["device_path"].startswith("/dev/drbd")
    assert (volume["storage_pool_name"], volume["provider_kind"]) == ("DfltDisklessStorPool", "DISKLESS")
    assert volume["state"] == {"disk_state": "Diskless"}

    # deleteDisklessResource: list the local resource, delete it only if it is DISKLESS
    [local] = (await http.get("/v1/view/resources", params={"resources": rd, "nodes": node})).json()
    assert local["flags"] == ["DISKLESS", "DRBD_DISKLESS"]
    deleted = await http.delete(url)
    assert deleted.status_code == 200
    assert codes(deleted) == [
        RSC_DELETED,
        *[RSC_DEL_MODIFIED] * 3,
        RSC_DELETED,
        *[RSC_DEL_MODIFIED] * 3,
        RSC_DELETED,
    ]
    messages = [e["message"] for e in deleted.json()]
    assert messages[0] == f"Node: {node}, Resource: {rd} preparing for deletion."
    assert f"Cleaning up '{rd}' on '{node}'" in messages
    assert messages[-1] == f"Node: {node}, Resource: {rd} deletion complete."
    assert node not in {r["node_name"] for r in (await http.get(f"{RD}/{rd}/resources")).json()}

    gone = await http.delete(f"{RD}/{rd}")
    assert gone.status_code == 200
    assert gone.json()[-1]["message"] == f"Resource definition '{rd}' deleted."


async def test_make_available_turns_the_client_diskful_on_request(http: httpx.AsyncClient) -> None:
    node = await spawn_incus_volume(http, "vol1")
    await http.post(f"{RD}/vol1/resources/{node}/make-available", json={})
    toggled = await http.post(f"{RD}/vol1/resources/{node}/make-available", json={"diskful": True})
    assert (toggled.status_code, codes(toggled)) == (200, [RSC_TOGGLE] * 4)
    assert toggled.json()[0]["message"] == f"Addition of disk to resource 'vol1' on node '{node}' registered"
    assert toggled.json()[-1]["message"] == f"Added disk on '{node}'"
    [volume] = (await http.get(f"{RD}/vol1/resources/{node}/volumes")).json()
    assert (volume["storage_pool_name"], volume["provider_kind"]) == ("thinpool", "LVM_THIN")
    assert volume["device_path"].startswith("/dev/drbd")  # DRBD stays the top layer


async def test_refusals(http: httpx.AsyncClient, emulator: Emulator) -> None:
    node = await spawn_incus_volume(http, "vol1")
    missing_rd = await http.post(f"{RD}/nope/resources/{node}/make-available", json={})
    assert (missing_rd.status_code, codes(missing_rd)) == (404, [RSC_CRT_RD_NOT_FOUND])
    assert missing_rd.json()[0]["details"] == f"Node: {node}, Resource: 'nope'"
    assert missing_rd.json()[0]["correction"] == "Create a resource definition with the name 'nope' first."
    missing_node = await http.post(f"{RD}/vol1/resources/server09/make-available", json={})
    assert (missing_node.status_code, codes(missing_node)) == (404, [RSC_CRT_NODE_NOT_FOUND])
    emulator.state.set_node_online(node, False)
    offline = await http.post(f"{RD}/vol1/resources/{node}/make-available", json={})
    assert (offline.status_code, codes(offline)) == (404, [RSC_NO_POOL])
    assert offline.json()[0]["message"] == (
        f"Autoplacer could not find diskless stor pool on node {node} "
        "matching resource-groups autoplace-settings"
    )
    emulator.state.set_node_online(node, True)

    volumes = await http.get(f"{RD}/vol1/resources/{node}/volumes")
    assert (volumes.status_code, codes(volumes)) == (404, [RAW_RSC_NOT_FOUND])
    assert volumes.json()[0]["message"] == f"Resource 'vol1' not found on node '{node}'."
    nothing = await http.delete(f"{RD}/vol1/resources/{node}")
    assert (nothing.status_code, codes(nothing)) == (200, [RSC_DEL_NOT_FOUND])
    assert nothing.json()[0]["message"] == f"Node: {node}, Resource: vol1 not found."

    await http.post("/v1/resource-groups", json={"name": "one", "select_filter": {"place_count": 1}})
    await http.post(
        "/v1/resource-groups/one/spawn", json={"resource_definition_name": "vol2", "volume_sizes": [1024]}
    )
    [disk] = (await http.get(f"{RD}/vol2/resources")).json()
    client = next(n for n in ("server01", "server02", "server03") if n != disk["node_name"])
    await http.post(f"{RD}/vol2/resources/{client}/make-available", json={})
    last = await http.delete(f"{RD}/vol2/resources/{disk['node_name']}")
    assert (last.status_code, codes(last)) == (500, [RSC_DEL_IN_USE])
    assert (
        last.json()[0]["message"]
        == "Last resource of 'vol2' with disk still has diskless resources attached."
    )


async def test_make_available_places_the_first_disk_without_drbd(
    spec_validator: Any, conformant: None
) -> None:
    state = EmulatorState(layout="bare", satellites={"server01": "vm"})
    app = create_emulator_app(state=state, observer=spec_validator.observe)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as api:
        await api.post("/v1/nodes", json=SERVER01)
        await api.post("/v1/nodes/server01/storage-pools", json=THINPOOL)
        # DfltRscGrp stacks DRBD over STORAGE: the first disk needs DRBD, which this satellite lacks
        spawn = {"resource_definition_name": "vol0", "volume_sizes": [1024], "definitions_only": True}
        assert (await api.post("/v1/resource-groups/DfltRscGrp/spawn", json=spawn)).status_code == 201
        refused = await api.post(f"{RD}/vol0/resources/server01/make-available", json={})
        assert (refused.status_code, codes(refused)) == (404, [RSC_NO_POOL])
        group = {"name": "linstor", "select_filter": {"place_count": 1, "layer_stack": ["storage"]}}
        assert (await api.post("/v1/resource-groups", json=group)).status_code == 201
        spawn = {"resource_definition_name": "vol1", "volume_sizes": [1024], "definitions_only": True}
        assert (await api.post("/v1/resource-groups/linstor/spawn", json=spawn)).status_code == 201
        placed = await api.post(
            f"{RD}/vol1/resources/server01/make-available", json={"layer_list": ["storage"]}
        )
        assert (placed.status_code, codes(placed)[0]) == (200, RSC_CREATED)
        [volume] = (await api.get(f"{RD}/vol1/resources/server01/volumes")).json()
        assert (volume["storage_pool_name"], volume["provider_kind"]) == ("thinpool", "FILE_THIN")
        assert volume["device_path"].startswith("/dev/loop")
        state.set_node_online("server01", False)  # the satellite must undeploy it first
        marked = await api.delete(f"{RD}/vol1/resources/server01")
        assert (marked.status_code, codes(marked)) == (200, [RSC_DELETED, RSC_DEL_NOT_CONNECTED])
        [kept] = (await api.get(f"{RD}/vol1/resources")).json()
        assert kept["flags"] == ["DELETE"]
        state.set_node_online("server01", True)
        deleted = await api.delete(f"{RD}/vol1/resources/server01")
        assert (deleted.status_code, codes(deleted)) == (200, [RSC_DELETED, RSC_DEL_MODIFIED, RSC_DELETED])
        assert [e["message"] for e in deleted.json()] == [
            "Node: server01, Resource: vol1 marked for deletion.",
            "Cleaning up 'vol1' on 'server01'",
            "Node: server01, Resource: vol1 deletion complete.",
        ]


def test_python_linstor_request_shapes() -> None:
    """LINBIT's client sends {"diskful": false} and DELETE …/resources/{node}; both succeed."""
    state = EmulatorState()
    with serve(create_emulator_app(state=state)) as url:
        lin = linstor.Linstor(url.replace("http://", "linstor://"), timeout=10)
        lin.connect()
        try:
            assert not lin.resource_group_create("rg1", place_count=2)[0].is_error()
            assert not lin.resource_group_spawn("rg1", "vol1", ["1G"])[0].is_error()
            placed = {r.node_name for r in lin.resource_list_raise(filter_by_resources=["vol1"]).resources}
            node = next(n for n in ("server01", "server02", "server03") if n not in placed)
            replies = lin.resource_make_available(node, "vol1")
            assert [r.ret_code for r in replies] == [RSC_CREATED, RSC_CREATED]
            assert lin.resource_make_available(node, "vol1")[0].ret_code == RSC_ALREADY
            replies = lin.resource_delete(node, "vol1")
            assert not any(r.is_error() for r in replies)
            assert replies[-1].ret_code == RSC_DELETED
        finally:
            lin.disconnect()
