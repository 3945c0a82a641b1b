"""End-to-end: snapshots, their Aux mapping keys, restore, and new volumes from a snapshot."""

from __future__ import annotations

import asyncio
import re

import httpx

from app.linstor import LinstorClient
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem, create

SNAP_NAME = re.compile(r"^incus-volume-[0-9a-f]{32}$")
VOL = f"/v1/pools/{POOL}/volumes/virtual-machine/v1"


async def snapshot(api: httpx.AsyncClient, name: str, path: str = VOL) -> dict[str, object]:
    """Create a snapshot through the API."""
    response = await api.post(f"{path}/snapshots", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_snapshot_maps_the_name_with_incus_key(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    vol = await create(api, name="v1", type="virtual-machine", size="10GiB")
    response = await api.post(f"{VOL}/snapshots", json={"name": "snap0"})
    assert response.status_code == 201, response.text
    snap = response.json()
    assert response.headers["location"] == f"{VOL}/snapshots/snap0?project=default"
    assert snap["name"] == "snap0"
    assert SNAP_NAME.match(snap["linstor_name"])
    assert snap["volumes"] == [
        {"number": 0, "size_bytes": 10 * 1024**3},
        {"number": 1, "size_bytes": 500 * 1024**2},
    ]
    assert len(snap["nodes"]) == 2
    assert snap["created_on"]
    props = (await linstor.get_resource_definition(vol["linstor_name"])).props
    # Incus's code writes `snapshot-name` (its docs say `SnapshotName`): incus-linstor-driver.md §2.5
    assert props["Aux/Incus/snapshot-name/snap0"] == snap["linstor_name"]
    assert (await api.get(VOL)).json()["snapshots"] == ["snap0"]


async def test_snapshot_list_get_and_errors(api: httpx.AsyncClient) -> None:
    await create(api, name="v1", type="virtual-machine")
    first = await snapshot(api, "snap0")
    await asyncio.sleep(0.01)
    await snapshot(api, "snap1")
    listed = (await api.get(f"{VOL}/snapshots")).json()["snapshots"]
    assert [s["name"] for s in listed] == ["snap0", "snap1"]
    assert (await api.get(f"{VOL}/snapshots/snap0")).json() == first
    assert_problem(await api.post(f"{VOL}/snapshots", json={"name": "snap0"}), 409, "snapshot_exists")
    assert_problem(await api.post(f"{VOL}/snapshots", json={"name": "a/b"}), 422, "invalid_name")
    assert_problem(await api.post(f"{VOL}/snapshots", json={"name": "x" * 240}), 422, "invalid_name")
    assert_problem(await api.get(f"{VOL}/snapshots/nope"), 404, "snapshot_not_found")
    missing_volume = f"/v1/pools/{POOL}/volumes/container/nope/snapshots"
    assert_problem(await api.post(missing_volume, json={"name": "s"}), 404, "volume_not_found")


async def test_snapshot_needs_a_placed_volume(api: httpx.AsyncClient, emulator: Emulator) -> None:
    await create(api, name="v1", type="virtual-machine")
    for node in ("server01", "server02", "server03"):
        emulator.state.set_node_online(node, False)
    response = await api.post(f"{VOL}/snapshots", json={"name": "snap0"})
    body = assert_problem(response, 409, "linstor_refused")
    assert "diskful" in body["linstor"]["message"]


async def test_failed_mapping_write_removes_the_snapshot(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    vol = await create(api, name="v1", type="virtual-machine")
    emulator.state.add_fault(action="error", method="PUT", path=r"^/v1/resource-definitions/[^/]+$", times=1)
    response = await api.post(f"{VOL}/snapshots", json={"name": "snap0"})
    assert_problem(response, 503, "linstor_unavailable")
    assert await linstor.list_snapshots(vol["linstor_name"]) == []


async def test_rename_snapshot_is_one_property_update(api: httpx.AsyncClient, linstor: LinstorClient) -> None:
    vol = await create(api, name="v1", type="virtual-machine")
    snap = await snapshot(api, "snap0")
    await snapshot(api, "snap1")
    response = await api.patch(f"{VOL}/snapshots/snap0", json={"name": "first"})
    assert response.status_code == 200, response.text
    assert response.json()["linstor_name"] == snap["linstor_name"]
    props = (await linstor.get_resource_definition(vol["linstor_name"])).props
    assert "Aux/Incus/snapshot-name/snap0" not in props
    assert props["Aux/Incus/snapshot-name/first"] == snap["linstor_name"]
    assert_problem(await api.patch(f"{VOL}/snapshots/first", json={"name": "snap1"}), 409, "snapshot_exists")
    assert_problem(await api.patch(f"{VOL}/snapshots/nope", json={"name": "x"}), 404, "snapshot_not_found")


async def test_delete_snapshot_removes_snapshot_then_key(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    vol = await create(api, name="v1", type="virtual-machine")
    await snapshot(api, "snap0")
    response = await api.delete(f"{VOL}/snapshots/snap0")
    assert response.status_code == 204
    assert await linstor.list_snapshots(vol["linstor_name"]) == []
    props = (await linstor.get_resource_definition(vol["linstor_name"])).props
    assert not [k for k in props if "snapshot-name" in k]
    assert_problem(await api.delete(f"{VOL}/snapshots/snap0"), 404, "snapshot_not_found")


async def test_restore_only_the_latest_unless_newer_may_go(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    vol = await create(api, name="v1", type="virtual-machine")
    await snapshot(api, "snap0")
    await asyncio.sleep(0.01)
    await snapshot(api, "snap1")
    refused = await api.post(f"{VOL}/snapshots/snap0/restore")
    body = assert_problem(refused, 409, "not_latest_snapshot")
    assert body["newer_snapshots"] == ["snap1"]
    latest = await api.post(f"{VOL}/snapshots/snap1/restore")
    assert latest.status_code == 200, latest.text
    assert latest.json() == {"restored": "snap1", "deleted_snapshots": []}
    forced = await api.post(f"{VOL}/snapshots/snap0/restore", json={"delete_newer_snapshots": True})
    assert forced.json() == {"restored": "snap0", "deleted_snapshots": ["snap1"]}
    assert [s.name for s in await linstor.list_snapshots(vol["linstor_name"])] == [
        (await api.get(f"{VOL}/snapshots/snap0")).json()["linstor_name"]
    ]
    assert (await api.get(VOL)).json()["snapshots"] == ["snap0"]


async def test_new_volume_from_snapshot_rewrites_identity_and_drops_snapshot_keys(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    parent = await create(api, name="v1", type="virtual-machine", size="2GiB")
    await snapshot(api, "snap0")
    await snapshot(api, "snap1")
    response = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={
            "name": "v2",
            "type": "virtual-machine",
            "source": {"type": "virtual-machine", "name": "v1", "snapshot": "snap0"},
        },
    )
    assert response.status_code == 201, response.text
    child = response.json()
    assert child["volumes"] == parent["volumes"]
    assert child["snapshots"] == []
    rd = await linstor.get_resource_definition(child["linstor_name"])
    assert rd.resource_group_name == POOL
    assert rd.props["Aux/Incus/name"] == "incus-volume-v2"
    assert not [k for k in rd.props if k.startswith("Aux/Incus/snapshot-name/")]
    assert len(await linstor.list_resources(child["linstor_name"])) == 2
    parent_now = (await api.get(VOL)).json()
    assert parent_now["linstor_name"] == parent["linstor_name"]
    assert parent_now["snapshots"] == ["snap0", "snap1"]


async def test_parent_lookup_never_sees_two_matches_during_a_restore(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    """Incus's own lookup (props filter, then the pool's RG) and ours both see one parent throughout."""
    await create(api, name="v1", type="virtual-machine")
    await snapshot(api, "snap0")
    # slow every restore step down so that lookups run while the new RD carries the parent's props
    emulator.state.add_fault(action="latency", method="POST", path=r"/snapshot-restore-", seconds=0.3)
    # and the final identity rewrite: the new RD carries the parent's props until it lands
    emulator.state.add_fault(
        action="latency", method="PUT", path=r"^/v1/resource-definitions/[^/]+$", seconds=0.3
    )
    restoring = asyncio.create_task(
        api.post(
            f"/v1/pools/{POOL}/volumes",
            json={
                "name": "v2",
                "type": "virtual-machine",
                "source": {"type": "virtual-machine", "name": "v1", "snapshot": "snap0"},
            },
        )
    )
    incus_lookup = ["Aux/Incus/name=incus-volume-v1", "Aux/Incus/type=virtual-machines"]
    seen: list[tuple[int, int, int]] = []
    carriers = set()
    while not restoring.done():
        rds = await linstor.list_resource_definitions(props=incus_lookup)
        carriers.add(len(rds))
        in_pool = [rd for rd in rds if rd.resource_group_name == POOL]
        lookup = await api.get(VOL)
        listing = await api.get(f"/v1/pools/{POOL}/volumes", params={"fresh": "true"})
        names = [v["name"] for v in listing.json()["volumes"]]
        seen.append((len(in_pool), lookup.status_code, names.count("v1")))
        await asyncio.sleep(0.02)
    assert (await restoring).status_code == 201
    emulator.state.clear_faults()
    assert len(seen) > 4
    assert set(seen) == {(1, 200, 1)}
    assert 2 in carriers  # LINSTOR's restore did copy the parent's identity: in the staging group only
    # the restore did happen with the parent's props on the new RD: in the staging group only
    assert (await api.get(f"/v1/pools/{POOL}/volumes/virtual-machine/v2")).status_code == 200


async def test_copy_from_snapshot_errors_and_rollback(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    parent = await create(api, name="v1", type="virtual-machine")
    await snapshot(api, "snap0")
    source = {"type": "virtual-machine", "name": "v1", "snapshot": "nope"}
    missing = await api.post(
        f"/v1/pools/{POOL}/volumes", json={"name": "v2", "type": "virtual-machine", "source": source}
    )
    assert_problem(missing, 404, "snapshot_not_found")
    emulator.state.add_fault(action="error", method="POST", path=r"/snapshot-restore-resource/", times=1)
    source["snapshot"] = "snap0"
    failed = await api.post(
        f"/v1/pools/{POOL}/volumes", json={"name": "v2", "type": "virtual-machine", "source": source}
    )
    assert_problem(failed, 503, "linstor_unavailable")
    assert [rd.name for rd in await linstor.list_resource_definitions()] == [parent["linstor_name"]]


async def test_resolve_snapshot_name_to_volume_and_snapshot(api: httpx.AsyncClient) -> None:
    vol = await create(api, name="v1", type="virtual-machine")
    snap = await snapshot(api, "snap0")
    response = await api.get(f"/v1/resolve/{snap['linstor_name']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "snapshot"
    assert body["snapshot"] == "snap0"
    assert body["linstor_name"] == snap["linstor_name"]
    assert body["volume"]["linstor_name"] == vol["linstor_name"]


async def test_delete_volume_deletes_its_snapshots_first(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    await create(api, name="v1", type="virtual-machine")
    await snapshot(api, "snap0")
    await snapshot(api, "snap1")
    assert (await api.delete(VOL)).status_code == 204
    assert await linstor.list_resource_definitions() == []


async def test_the_mapping_is_written_first_and_a_failed_snapshot_removes_it(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    """Intent first (issue 10): the key is written before the snapshot is taken; when the snapshot fails,
    neither is left, and a crash between the two would leave only a key, which reads as no snapshot."""
    vol = await create(api, name="v1", type="virtual-machine")
    emulator.state.add_fault(action="error", method="POST", path=r"/snapshots$", times=1)
    response = await api.post(f"{VOL}/snapshots", json={"name": "snap0"})
    assert_problem(response, 503, "linstor_unavailable")
    props = (await linstor.get_resource_definition(vol["linstor_name"])).props
    assert not [k for k in props if "snapshot-name" in k]
    assert await linstor.list_snapshots(vol["linstor_name"]) == []
