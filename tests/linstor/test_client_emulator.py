"""The client against the project's LINSTOR emulator over real HTTP: every client method at least once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest

from app.linstor import LinstorClient, LinstorConflict, LinstorExists, LinstorInvalid, LinstorNotFound
from app.linstor.config import ConnectionConfig
from app.linstor.models import AutoSelectFilter, CloneRequest, ResourceGroupCreate

GIB_KIB = 1024 * 1024
NAME = "Aux/Incus/name"
TYPE = "Aux/Incus/type"


class RunningEmulator(Protocol):
    """What these tests need of the `emulator` fixture (tests/conftest.py)."""

    url: str


@pytest.fixture
async def client(emulator: RunningEmulator) -> AsyncIterator[LinstorClient]:
    """A client of the freshly reset emulator."""
    async with LinstorClient(ConnectionConfig(urls=(emulator.url,)), retries=0) as c:
        yield c


async def make_rg(client: LinstorClient, name: str = "rg1", place_count: int = 2) -> None:
    """A resource group that places `place_count` replicas in the default pool."""
    select = AutoSelectFilter(place_count=place_count, storage_pool="thinpool")
    await client.create_resource_group(ResourceGroupCreate(name=name, select_filter=select))


async def test_controller_version(client: LinstorClient) -> None:
    version = await client.controller_version()
    assert version.version
    assert version.rest_api_version.startswith("1.")


# ---- resource groups ---------------------------------------------------------------------------------


async def test_resource_group_lifecycle(client: LinstorClient) -> None:
    rcs = await client.create_resource_group(ResourceGroupCreate(name="rg1", description="pool one"))
    assert rcs
    assert "rg1" in [rg.name for rg in await client.list_resource_groups()]
    assert [rg.name for rg in await client.list_resource_groups(names=["RG1"])] == ["rg1"]

    await client.modify_resource_group(
        "rg1",
        override_props={"Aux/Incus/pool": "p1", "Aux/Incus/other": "x"},
        select_filter=AutoSelectFilter(place_count=2, storage_pool="thinpool"),
        description="pool one, two replicas",
    )
    rg = await client.get_resource_group("rg1")
    assert rg.props["Aux/Incus/pool"] == "p1"
    assert (rg.select_filter.place_count, rg.select_filter.storage_pool) == (2, "thinpool")
    assert rg.description == "pool one, two replicas"
    assert [g.name for g in await client.list_resource_groups(props=["Aux/Incus/pool=p1"])] == ["rg1"]
    assert await client.list_resource_groups(props=["Aux/Incus/pool=p2"]) == []

    await client.modify_resource_group("rg1", delete_props=["Aux/Incus/other"])
    assert "Aux/Incus/other" not in (await client.get_resource_group("rg1")).props

    await client.delete_resource_group("rg1")
    with pytest.raises(LinstorNotFound):
        await client.get_resource_group("rg1")


async def test_resource_group_errors(client: LinstorClient) -> None:
    await make_rg(client)
    with pytest.raises(LinstorExists):
        await make_rg(client)
    with pytest.raises(LinstorNotFound):
        await client.get_resource_group("nope")
    await client.spawn("rg1", "vol1", [GIB_KIB], definitions_only=True)
    with pytest.raises(LinstorExists):
        await client.delete_resource_group("rg1")


async def test_spawn_with_props_places_resources(client: LinstorClient) -> None:
    await make_rg(client)
    spawned = await client.spawn(
        "rg1", "vol1", [GIB_KIB], props={NAME: "incus-volume-c1", TYPE: "containers"}
    )
    assert spawned.placed
    (rd,) = await client.list_resource_definitions(names=["vol1"], with_volume_definitions=True)
    assert (rd.resource_group_name, rd.props[NAME], rd.props[TYPE]) == (
        "rg1",
        "incus-volume-c1",
        "containers",
    )
    assert [(vd.volume_number, vd.size_kib) for vd in rd.volume_definitions] == [(0, GIB_KIB)]
    assert len(await client.list_resources("vol1")) == 2


async def test_spawn_definitions_only(client: LinstorClient) -> None:
    await make_rg(client)
    spawned = await client.spawn("rg1", "vol1", [GIB_KIB, 2 * GIB_KIB], definitions_only=True)
    assert not spawned.placed
    assert await client.list_resources("vol1") == []
    with pytest.raises(LinstorExists):
        await client.spawn("rg1", "vol1", [GIB_KIB])
    with pytest.raises(LinstorNotFound):
        await client.spawn("nope", "vol2", [GIB_KIB])


# ---- resource definitions ----------------------------------------------------------------------------


async def test_resource_definition_lookup_by_props(client: LinstorClient) -> None:
    await make_rg(client)
    await client.create_resource_definition(
        "vol1", resource_group="rg1", props={NAME: "c1", TYPE: "containers"}
    )
    await client.create_resource_definition("vol2", resource_group="rg1", props={NAME: "c1", TYPE: "vms"})
    await client.create_resource_definition("vol3", props={NAME: "c3", TYPE: "containers"})

    async def names(**filters: Any) -> list[str]:
        return [rd.name for rd in await client.list_resource_definitions(**filters)]

    # Repeated props filters are ANDed; a bare key means "is set".
    assert await names(props=[f"{NAME}=c1", f"{TYPE}=containers"]) == ["vol1"]
    assert await names(props=[f"{NAME}=c1"]) == ["vol1", "vol2"]
    assert await names(props=[f"{TYPE}=containers"]) == ["vol1", "vol3"]
    assert await names(props=[NAME]) == ["vol1", "vol2", "vol3"]
    assert await names(props=[f"{NAME}=nope"]) == []
    assert await names(names=["VOL2", "vol3"]) == ["vol2", "vol3"]
    assert await names(names=["vol2"], props=[f"{TYPE}=containers"]) == []
    assert await names(offset=1, limit=1) == ["vol2"]

    rd = await client.get_resource_definition("VOL3")
    assert (rd.name, rd.resource_group_name, rd.props[NAME]) == ("vol3", "DfltRscGrp", "c3")


async def test_volume_definitions_only_when_asked(client: LinstorClient) -> None:
    await client.create_resource_definition("vol1")
    await client.create_volume_definition("vol1", GIB_KIB)
    await client.create_volume_definition("vol1", 2 * GIB_KIB, volume_number=5)
    assert [(vd.volume_number, vd.size_kib) for vd in await client.list_volume_definitions("vol1")] == [
        (0, GIB_KIB),
        (5, 2 * GIB_KIB),
    ]
    (with_vds,) = await client.list_resource_definitions(names=["vol1"], with_volume_definitions=True)
    (without,) = await client.list_resource_definitions(names=["vol1"])
    assert len(with_vds.volume_definitions) == 2
    assert without.volume_definitions == []
    assert (await client.get_resource_definition("vol1")).volume_definitions == []
    with pytest.raises(LinstorExists):
        await client.create_volume_definition("vol1", GIB_KIB, volume_number=5)
    with pytest.raises(LinstorNotFound):
        await client.list_volume_definitions("nope")


async def test_modify_resource_definition(client: LinstorClient) -> None:
    await client.create_resource_group(ResourceGroupCreate(name="rg2"))
    await client.create_resource_definition(
        "vol1", props={NAME: "old", "Aux/Incus/x/a": "1", "Aux/Incus/x/b": "2"}
    )
    await client.modify_resource_definition(
        "vol1",
        override_props={NAME: "new", "Aux/Incus/gone": "y"},
        delete_props=["Aux/Incus/gone"],
        delete_namespaces=["Aux/Incus/x"],
    )
    rd = await client.get_resource_definition("vol1")
    assert rd.props[NAME] == "new"
    assert not any(k.startswith(("Aux/Incus/x", "Aux/Incus/gone")) for k in rd.props)
    await client.modify_resource_definition("vol1", resource_group="rg2")
    assert (await client.get_resource_definition("vol1")).resource_group_name == "rg2"


async def test_resource_definition_errors(client: LinstorClient) -> None:
    await client.create_resource_definition("vol1")
    with pytest.raises(LinstorExists):
        await client.create_resource_definition("VOL1")
    with pytest.raises(LinstorInvalid):
        await client.create_resource_definition("vol2", props={"Foo/bar": "x"})
    with pytest.raises(LinstorInvalid):
        await client.create_resource_definition("x")
    with pytest.raises(LinstorNotFound):
        await client.create_resource_definition("vol3", resource_group="nope")
    with pytest.raises(LinstorNotFound):
        await client.get_resource_definition("nope")
    with pytest.raises(LinstorNotFound):
        await client.modify_resource_definition("nope", override_props={NAME: "x"})
    assert [rd.name for rd in await client.list_resource_definitions()] == ["vol1"]


async def test_delete_resource_definition(client: LinstorClient) -> None:
    await client.create_resource_definition("vol1")
    assert await client.delete_resource_definition("vol1") is True
    assert await client.delete_resource_definition("vol1") is False
    with pytest.raises(LinstorNotFound):
        await client.get_resource_definition("vol1")


# ---- resources ---------------------------------------------------------------------------------------


async def test_autoplace_and_list_resources(client: LinstorClient) -> None:
    await client.create_resource_definition("vol1")
    await client.create_volume_definition("vol1", GIB_KIB)
    assert await client.list_resources("vol1") == []
    await client.autoplace("vol1", AutoSelectFilter(place_count=2, storage_pool="thinpool"))
    resources = await client.list_resources("vol1")
    assert len(resources) == 2
    assert {r.name for r in resources} == {"vol1"}
    assert len({r.node_name for r in resources}) == 2
    with pytest.raises(LinstorNotFound):
        await client.list_resources("nope")


async def test_autoplace_from_the_resource_group(client: LinstorClient) -> None:
    await make_rg(client, place_count=3)
    await client.spawn("rg1", "vol1", [GIB_KIB], definitions_only=True)
    await client.autoplace("vol1")
    assert len(await client.list_resources("vol1")) == 3


# ---- snapshots ---------------------------------------------------------------------------------------


async def test_snapshot_lifecycle(client: LinstorClient) -> None:
    await make_rg(client)
    await client.spawn("rg1", "vol1", [GIB_KIB], props={NAME: "c1"})
    await client.create_snapshot("vol1", "snap1")
    nodes = sorted(r.node_name for r in await client.list_resources("vol1"))
    await client.create_snapshot("vol1", "snap2", nodes=nodes[:1])

    assert [s.name for s in await client.list_snapshots("vol1")] == ["snap1", "snap2"]
    snap = await client.get_snapshot("vol1", "SNAP1")
    assert (snap.name, snap.resource_name, sorted(snap.nodes)) == ("snap1", "vol1", nodes)
    assert snap.resource_definition_props[NAME] == "c1"
    assert [(v.volume_number, v.size_kib) for v in snap.volume_definitions] == [(0, GIB_KIB)]
    assert "SUCCESSFUL" in snap.flags
    assert snap.created_on is not None
    assert (await client.get_snapshot("vol1", "snap2")).nodes == nodes[:1]

    assert {(s.resource_name, s.name) for s in await client.view_snapshots()} == {
        ("vol1", "snap1"),
        ("vol1", "snap2"),
    }
    assert [s.name for s in await client.view_snapshots(resources=["VOL1"], nodes=[nodes[1]])] == ["snap1"]
    assert await client.view_snapshots(resources=["vol2"]) == []

    with pytest.raises(LinstorExists):
        await client.create_snapshot("vol1", "Snap1")
    with pytest.raises(LinstorExists):
        await client.delete_resource_definition("vol1")

    # snap1 is on every node of vol1: LINSTOR cannot roll back to a snapshot missing on one (LINBIT#418).
    await client.rollback_snapshot("vol1", "snap1")

    assert await client.delete_snapshot("vol1", "snap2") is True
    assert await client.delete_snapshot("vol1", "snap2") is False
    with pytest.raises(LinstorNotFound):
        await client.get_snapshot("vol1", "snap2")


async def test_snapshot_errors(client: LinstorClient) -> None:
    await make_rg(client)
    await client.spawn("rg1", "vol1", [GIB_KIB], definitions_only=True)
    with pytest.raises(LinstorConflict):
        await client.create_snapshot("vol1", "snap1")
    with pytest.raises(LinstorNotFound):
        await client.create_snapshot("nope", "snap1")
    with pytest.raises(LinstorNotFound):
        await client.list_snapshots("nope")
    with pytest.raises(LinstorNotFound):
        await client.rollback_snapshot("vol1", "nope")


async def test_restore_snapshot_into_a_new_rd(client: LinstorClient) -> None:
    await make_rg(client)
    await client.spawn("rg1", "vol1", [GIB_KIB, 2 * GIB_KIB], props={NAME: "c1"})
    await client.create_snapshot("vol1", "snap1")

    await client.create_resource_definition("vol2", resource_group="rg1", props={NAME: "c2"})
    await client.restore_volume_definitions("vol1", "snap1", "vol2")
    assert [(vd.volume_number, vd.size_kib) for vd in await client.list_volume_definitions("vol2")] == [
        (0, GIB_KIB),
        (1, 2 * GIB_KIB),
    ]
    await client.restore_resources("vol1", "snap1", "vol2")
    assert len(await client.list_resources("vol2")) == 2
    # LINSTOR copies the snapshot's RD props over the target's (reference §6.4).
    assert (await client.get_resource_definition("vol2")).props[NAME] == "c1"

    with pytest.raises(LinstorExists):
        await client.restore_resources("vol1", "snap1", "vol2")
    with pytest.raises(LinstorNotFound):
        await client.restore_volume_definitions("vol1", "nope", "vol2")


# ---- clone -------------------------------------------------------------------------------------------


async def wait_for_clone(client: LinstorClient, source: str, clone: str) -> str:
    """Poll the clone status until it is no longer CLONING."""
    for _ in range(200):
        status = (await client.clone_status(source, clone)).status
        if status != "CLONING":
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"clone {clone} of {source} did not finish")


async def test_clone(client: LinstorClient) -> None:
    await make_rg(client)
    await client.spawn("rg1", "vol1", [GIB_KIB], props={NAME: "c1", TYPE: "containers"})
    started = await client.clone(
        "vol1", CloneRequest(name="vol2", override_props={NAME: "c2"}, delete_props=[TYPE])
    )
    assert (started.source_name, started.clone_name) == ("vol1", "vol2")
    assert started.location == "/v1/resource-definitions/vol1/clone/vol2"
    assert await wait_for_clone(client, "vol1", "vol2") == "COMPLETE"

    clone = await client.get_resource_definition("vol2")
    assert (clone.props[NAME], clone.props["cloned-from"], clone.resource_group_name) == ("c2", "vol1", "rg1")
    assert TYPE not in clone.props
    assert len(await client.list_resources("vol2")) == 2

    with pytest.raises(LinstorExists):
        await client.clone("vol1", CloneRequest(name="vol2"))
    with pytest.raises(LinstorNotFound):
        await client.clone("nope", CloneRequest(name="vol3"))
    with pytest.raises(LinstorNotFound):
        await client.clone_status("vol1", "nope")
