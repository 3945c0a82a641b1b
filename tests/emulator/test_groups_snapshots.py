"""Resource groups, spawn, placement, snapshots, restore, rollback, clone (§2.3-§2.8, §6)."""

from __future__ import annotations

import asyncio

import httpx

from app.emulator import EmulatorState
from tests.emulator.helpers import RD_URL, codes, deployed_rd, make_rd

RG_URL = "/v1/resource-groups"


async def test_resource_group_crud(client: httpx.AsyncClient) -> None:
    r = await client.post(
        RG_URL, json={"name": "rg1", "props": {"Aux/ignored": "1"}, "select_filter": {"place_count": 2}}
    )
    assert (r.status_code, codes(r)) == (201, [21233665])
    dup = await client.post(RG_URL, json={"name": "RG1"})
    assert (dup.status_code, codes(dup)) == (500, [-4611686018406153718])
    assert (
        await client.post(RG_URL, json={"name": "rg2", "select_filter": {"place_count": 0}})
    ).status_code == 500
    assert (await client.post(RG_URL, json={"name": "1"})).status_code == 500
    got = (await client.get(f"{RG_URL}/rg1")).json()
    assert "props" not in got  # props on create are ignored upstream
    assert got["select_filter"] == {"place_count": 2}
    body = {
        "description": "d",
        "override_props": {"Aux/x": "1"},
        "select_filter": {"storage_pool": "thinpool"},
    }
    assert (await client.put(f"{RG_URL}/rg1", json=body)).status_code == 200
    got = (await client.get(f"{RG_URL}/rg1")).json()
    # golinstor-traffic.jsonl #6: the controller keeps storage_pool and storage_pool_list in step
    assert got["select_filter"] == {
        "place_count": 2,
        "storage_pool": "thinpool",
        "storage_pool_list": ["thinpool"],
    }
    assert (got["description"], got["props"]) == ("d", {"Aux/x": "1"})
    assert (await client.put(f"{RG_URL}/nope", json={})).status_code == 404
    assert (await client.get(f"{RG_URL}/nope")).status_code == 404
    names = [rg["name"] for rg in (await client.get(RG_URL)).json()]
    assert names == ["DfltRscGrp", "rg1"]
    assert [rg["name"] for rg in (await client.get(RG_URL, params={"props": "Aux/x=1"})).json()] == ["rg1"]
    assert [rg["name"] for rg in (await client.get(RG_URL, params={"resource_groups": "RG1"})).json()] == [
        "rg1"
    ]
    assert [rg["name"] for rg in (await client.get(RG_URL, params={"limit": "1", "offset": "1"})).json()] == [
        "rg1"
    ]
    await make_rd(client, "vol1", resource_group_name="rg1")
    busy = await client.delete(f"{RG_URL}/rg1")
    assert busy.status_code == 500
    assert "has existing resource definitions" in busy.json()[0]["message"]
    await client.delete(f"{RD_URL}/vol1")
    assert (await client.delete(f"{RG_URL}/rg1")).status_code == 200
    gone = await client.delete(f"{RG_URL}/rg1")
    assert gone.status_code == 200
    assert gone.json()[0]["message"] == "Resource group: rg1 not found."


async def test_spawn(client: httpx.AsyncClient) -> None:
    await client.post(RG_URL, json={"name": "rg1"})
    body = {
        "resource_definition_name": "sp1",
        "volume_sizes": [1024],
        "resource_definition_props": {"Aux/n": "1"},
    }
    r = await client.post(f"{RG_URL}/rg1/spawn", json=body)
    assert r.status_code == 201
    # controller-api.jsonl #9: every group places 2 replicas by default, so spawn places; the controller
    # sets quorum off on an RD with fewer than three resources (service-traffic.jsonl #24)
    assert codes(r)[-1] == 21233667  # "Created resource ... on ..." in the RG context
    rd = (await client.get(RD_URL, params={"with_volume_definitions": "true"})).json()[0]
    assert (rd["resource_group_name"], rd["props"], rd["volume_definitions"][0]["size_kib"]) == (
        "rg1",
        {"Aux/n": "1", "DrbdOptions/Resource/quorum": "off"},
        1024,
    )
    dup = await client.post(f"{RG_URL}/rg1/spawn", json=body)
    assert dup.status_code == 500
    placed = await client.post(
        f"{RG_URL}/rg1/spawn",
        json={"resource_definition_name": "sp2", "volume_sizes": [1024], "select_filter": {"place_count": 3}},
    )
    assert placed.status_code == 201
    assert len((await client.get(f"{RD_URL}/sp2/resources")).json()) == 3
    only = {
        "resource_definition_name": "sp3",
        "volume_sizes": [1],
        "select_filter": {"place_count": 1},
        "definitions_only": True,
    }
    assert codes(await client.post(f"{RG_URL}/rg1/spawn", json=only))[-1] == 4611686018448631568
    assert (
        await client.post(f"{RG_URL}/nope/spawn", json={"resource_definition_name": "x1"})
    ).status_code == 404
    too_many = await client.post(
        f"{RG_URL}/rg1/spawn", json={"resource_definition_name": "sp4", "select_filter": {"place_count": 4}}
    )
    assert too_many.status_code == 500
    assert (await client.get(f"{RD_URL}/sp4")).status_code == 404  # rolled back


async def test_resources_and_autoplace(client: httpx.AsyncClient, state: EmulatorState) -> None:
    await make_rd(client, "vol1")
    await client.post(f"{RD_URL}/vol1/volume-definitions", json={"volume_definition": {"size_kib": 1048576}})
    assert (await client.post(f"{RD_URL}/vol1/autoplace", json={"select_filter": {}})).status_code == 201
    rscs = (await client.get(f"{RD_URL}/vol1/resources")).json()
    assert [r["node_name"] for r in rscs] == ["server01", "server02"]  # default place count 2
    # the next RD goes first to the node with the most free space
    await make_rd(client, "vol2")
    await client.post(f"{RD_URL}/vol2/autoplace", json={"select_filter": {"place_count": 1}})
    assert [r["node_name"] for r in (await client.get(f"{RD_URL}/vol2/resources")).json()] == ["server03"]
    created = await client.post(
        f"{RD_URL}/vol2/resources", json=[{"resource": {"node_name": "server01", "flags": ["DRBD_DISKLESS"]}}]
    )
    assert created.status_code == 201
    assert (
        await client.post(f"{RD_URL}/vol2/resources", json=[{"resource": {"node_name": "server01"}}])
    ).status_code == 500
    assert (
        await client.post(f"{RD_URL}/vol2/resources", json=[{"resource": {"node_name": "nope"}}])
    ).status_code == 404
    assert (await client.get(f"{RD_URL}/vol2/resources/server01")).json()["flags"] == ["DRBD_DISKLESS"]
    assert (await client.get(f"{RD_URL}/vol2/resources/server02")).status_code == 404
    assert (await client.get(f"{RD_URL}/nope/resources")).status_code == 404
    view = (
        await client.get("/v1/view/resources", params=[("resources", "VOL1"), ("nodes", "server02")])
    ).json()
    assert [(v["name"], v["node_name"]) for v in view] == [("vol1", "server02")]
    assert view[0]["volumes"][0]["allocated_size_kib"] == 1048576
    state.set_node_online("server03", False)
    state.set_node_online("server02", False)
    await make_rd(client, "vol3")
    fail = await client.post(f"{RD_URL}/vol3/autoplace", json={"select_filter": {"place_count": 2}})
    assert fail.status_code == 500
    assert fail.json()[0]["message"] == "Not enough available nodes"


async def test_snapshot_lifecycle(client: httpx.AsyncClient, state: EmulatorState) -> None:
    await make_rd(client, "vol1", {"Aux/name": "one"})
    url = f"{RD_URL}/vol1/snapshots"
    nothing = await client.post(url, json={"name": "s1"})
    assert (nothing.status_code, codes(nothing)) == (500, [-4611686018409823261])
    await client.post(f"{RD_URL}/vol1/volume-definitions", json={"volume_definition": {"size_kib": 1024}})
    await client.post(f"{RD_URL}/vol1/autoplace", json={"select_filter": {"place_count": 2}})
    state.set_node_online("server01", False)
    state.set_node_online("server02", False)
    offline = await client.post(url, json={"name": "s1"})
    assert offline.status_code == 500
    state.set_node_online("server01", True)
    r = await client.post(url, json={"name": "s1", "snapshot_definition_props": {"Aux/u": "v"}})
    assert r.status_code == 201
    assert codes(r)[0] == 17563649
    assert any(e["ret_code"] < 0 and "offline" in e["message"] for e in r.json())  # warning for server02
    dup = await client.post(url, json={"name": "S1"})
    assert (dup.status_code, codes(dup)) == (500, [-4611686018409823742])
    assert codes(await client.post(url, json={"name": "1"})) == [-4611686018409824038]
    assert (await client.post(f"{RD_URL}/nope/snapshots", json={"name": "s1"})).status_code == 404
    snap = (await client.get(f"{url}/S1")).json()
    assert snap["flags"] == ["SUCCESSFUL"]
    assert snap["nodes"] == ["server01"]
    assert snap["resource_definition_props"] == {"Aux/name": "one", "DrbdOptions/Resource/quorum": "off"}
    assert snap["snapshot_definition_props"] == {
        "Aux/u": "v",
        "BackupShipping/BackupNodeIdsToReset": "",
        "SequenceNumber": "1",
    }
    # service-traffic.jsonl #3: each VD's props at snapshot time come along
    [volume] = snap["volume_definitions"]
    assert (volume["volume_number"], volume["size_kib"]) == (0, 1024)
    assert set(volume["volume_definition_props"]) == {"DrbdCurrentGi"}
    assert snap["snapshots"][0]["create_timestamp"] > 1_600_000_000_000
    assert (await client.get(f"{url}/nope")).status_code == 404
    assert (await client.get(f"{RD_URL}/nope/snapshots")).status_code == 404
    assert (await client.put(f"{url}/s1", json={"override_props": {"Aux/w": "1"}})).status_code == 200
    assert (await client.get(f"{url}/s1")).json()["snapshot_definition_props"] == {
        "Aux/u": "v",
        "Aux/w": "1",
        "BackupShipping/BackupNodeIdsToReset": "",
        "SequenceNumber": "1",
    }
    view = await client.get("/v1/view/snapshots", params=[("resources", "VOL1"), ("nodes", "server01")])
    assert [s["name"] for s in view.json()] == ["s1"]
    assert (await client.get("/v1/view/snapshots", params={"nodes": "server03"})).json() == []
    blocked = await client.delete(f"{RD_URL}/vol1")
    assert (blocked.status_code, codes(blocked)) == (500, [-4611686018373385726])
    deleted = await client.delete(f"{url}/s1")
    assert (deleted.status_code, codes(deleted)[0]) == (200, 51118082)
    missing = await client.delete(f"{url}/s1")
    assert (missing.status_code, codes(missing)) == (200, [-9223372036803654728])
    assert (await client.delete(f"{RD_URL}/vol1")).status_code == 200


async def test_multi_snapshot(client: httpx.AsyncClient) -> None:
    await deployed_rd(client, "vol1")
    await deployed_rd(client, "vol2")
    body = {"snapshots": [{"name": "m1", "resource_name": "vol1"}, {"name": "m1", "resource_name": "vol2"}]}
    assert (await client.post("/v1/actions/snapshot/multi", json=body)).status_code == 201
    assert len((await client.get("/v1/view/snapshots")).json()) == 2


async def test_restore_copies_snapshot_props_over_target(client: httpx.AsyncClient) -> None:
    await deployed_rd(client, "src", {"Aux/name": "source", "Aux/only-src": "1"})
    await client.post(f"{RD_URL}/src/snapshots", json={"name": "s1"})
    await make_rd(client, "dst", {"Aux/name": "target", "Aux/only-dst": "2"})
    restore_vd = f"{RD_URL}/src/snapshot-restore-volume-definition/s1"
    assert (await client.post(restore_vd, json={"to_resource": "nope"})).status_code == 404
    assert (await client.post(restore_vd, json={"to_resource": "dst"})).status_code == 200
    again = await client.post(restore_vd, json={"to_resource": "dst"})
    assert again.status_code == 500  # VD exists
    assert (await client.post(restore_vd, content=b"{")).status_code == 400
    restore = f"{RD_URL}/src/snapshot-restore-resource/s1"
    assert (await client.post(restore, json={"to_resource": "dst"})).status_code == 200
    dst = (await client.get(f"{RD_URL}/dst")).json()
    assert dst["props"] == {
        "Aux/name": "source",
        "Aux/only-dst": "2",
        "Aux/only-src": "1",
        "DrbdOptions/Resource/quorum": "off",
    }
    assert len((await client.get(f"{RD_URL}/dst/resources")).json()) == 2
    busy = await client.post(restore, json={"to_resource": "dst"})
    assert busy.status_code == 500
    assert busy.json()[0]["message"] == "Cannot restore to resource definition which already has resources"
    assert (
        await client.post(f"{RD_URL}/src/snapshot-restore-resource/nope", json={"to_resource": "dst"})
    ).status_code == 404


async def test_rollback_restores_sizes(client: httpx.AsyncClient) -> None:
    await deployed_rd(client, "vol1")
    await client.post(f"{RD_URL}/vol1/snapshots", json={"name": "s1"})
    await client.post(f"{RD_URL}/vol1/snapshots", json={"name": "s2"})
    await client.put(f"{RD_URL}/vol1/volume-definitions/0", json={"size_kib": 2097152})
    r = await client.post(f"{RD_URL}/vol1/snapshot-rollback/s1")  # empty body allowed, not only the latest
    assert r.status_code == 200
    # service-traffic.jsonl #135: a safety snapshot, the resources re-made from the snapshot, then dropped
    messages = [e["message"] for e in r.json()]
    assert "Resource 'vol1' restored from resource 'vol1', snapshot 's1'." in messages
    assert messages[-1] == "Resource already deployed as requested"
    assert (await client.get(f"{RD_URL}/vol1/volume-definitions/0")).json()["size_kib"] == 1048576
    assert (await client.post(f"{RD_URL}/vol1/snapshot-rollback/nope", json={})).status_code == 404


async def test_clone(client: httpx.AsyncClient, state: EmulatorState) -> None:
    await deployed_rd(client, "src", {"Aux/name": "source", "Aux/drop": "x", "Aux/ns/a": "1"})
    state.set_clone_behaviour(seconds=0.2)
    body = {
        "name": "cl1",
        "override_props": {"Aux/name": "copy"},
        "delete_props": ["Aux/drop"],
        "delete_namespaces": ["Aux/ns"],
    }
    r = await client.post(f"{RD_URL}/src/clone", json=body)
    assert r.status_code == 201
    started = r.json()
    assert started["location"] == "/v1/resource-definitions/src/clone/cl1"
    assert (started["source_name"], started["clone_name"]) == ("src", "cl1")
    status_url = f"{RD_URL}/anything/clone/cl1"
    assert (await client.get(status_url)).json() == {"status": "CLONING"}
    assert (await client.get(f"{RD_URL}/cl1/sync-status")).json() == {"synced_on_all": False}
    await asyncio.sleep(0.25)
    assert (await client.get(status_url)).json() == {"status": "COMPLETE"}
    assert (await client.get(f"{RD_URL}/cl1/sync-status")).json() == {"synced_on_all": True}
    clone = (await client.get(f"{RD_URL}/cl1", params={"with_volume_definitions": "true"})).json()
    assert clone["props"] == {"Aux/name": "copy", "DrbdOptions/Resource/quorum": "off", "cloned-from": "src"}
    assert len((await client.get(f"{RD_URL}/cl1/resources")).json()) == 2
    dup = await client.post(f"{RD_URL}/src/clone", json={"name": "cl1"})
    assert dup.status_code == 500
    assert dup.json()["clone_name"] == "cl1"
    assert dup.json()["messages"][0]["ret_code"] == -4611686018406940171
    assert (await client.post(f"{RD_URL}/nope/clone", json={"name": "cl2"})).status_code == 404
    assert (await client.get(f"{RD_URL}/src/clone/src")).status_code == 404  # no cloned-from
    assert (await client.get(f"{RD_URL}/src/clone/x")).status_code == 500
    state.set_clone_behaviour(fail=True)
    await client.post(f"{RD_URL}/src/clone", json={"name": "cl3"})
    assert (await client.get(f"{RD_URL}/src/clone/cl3")).json() == {"status": "FAILED"}
