"""Compatibility with Incus, both ways, from the seed document (linstor-driver-internals.txt)."""

from __future__ import annotations

import asyncio
import re

import httpx
import linstor as pylinstor

from app.linstor import LinstorClient
from tests.conftest import Emulator
from tests.support.api import POOL, create
from tests.support.emulator import set_rd_props

IMAGE_BLOCK = "d21a26af7d5a95c3aa6e923257a1cb5cd765b102796b92ab111fb29ebfb86137"
IMAGE_FS = "e3b67bf05e20c6c977f161a425733b00efe88834914e7fc8dd910c4b51cd5804"
SNAP = "incus-volume-19dd0b015d22445f8097ba5e740948de"
V1 = "incus-volume-4df9f0598bd14d73953151614428d298"

# `linstor resource-definition list --show-props …` of the seed document
SEED = {
    V1: ("incus-volume-v1", "block", "virtual-machines"),
    "incus-volume-61be43e12fed4845ab3f2443cccbe50c": ("incus-volume-c1", "filesystem", "containers"),
    "incus-volume-d0531e21ce6b4218b9b8996582b9bf31": (f"incus-volume-{IMAGE_BLOCK}", "block", "images"),
    "incus-volume-e3e682324ff54fa3a3cf3203d5029366": ("incus-volume-default_vol", "block", "custom"),
    "incus-volume-ef2f8cc7bfc148c58a7259f5a201658f": (f"incus-volume-{IMAGE_FS}", "filesystem", "images"),
}
# `incus storage volume list linstor` of the seed document (snapshots are shown on their volume)
INCUS_LIST = [
    ("container", "c1", "filesystem"),
    ("custom", "vol", "block"),
    ("image", IMAGE_BLOCK, "block"),
    ("image", IMAGE_FS, "filesystem"),
    ("virtual-machine", "v1", "block"),
]


async def arrange_seed(linstor: LinstorClient, emulator: Emulator) -> None:
    """The seed's resource definitions, with the props exactly as listed there (written behind our back)."""
    for rd, (name, content, vtype) in SEED.items():
        await linstor.spawn(POOL, rd, [10 * 1024 * 1024, 500 * 1024] if rd == V1 else [1024 * 1024])
        props = {"Aux/Incus/name": name, "Aux/Incus/content-type": content, "Aux/Incus/type": vtype}
        if rd == V1:
            await linstor.create_snapshot(V1, SNAP)
            props |= {
                # the seed shows the documentation's key, not the `snapshot-name` Incus's code writes
                "Aux/Incus/SnapshotName/snap0": SNAP,
                "DrbdOptions/Net/allow-two-primaries": "yes",
                "DrbdOptions/Resource/on-no-quorum": "io-error",
                "DrbdOptions/Resource/quorum": "majority",
                "DrbdOptions/auto-verify-alg": "crct10dif",
                "DrbdPrimarySetOn": "SERVER01",
                "cloned-from": "incus-volume-d0531e21ce6b4218b9b8996582b9bf31",
            }
        set_rd_props(emulator.state, rd, props)


async def test_seed_listing_reads_as_incus_storage_volume_list(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    await arrange_seed(linstor, emulator)
    await api.post("/v1/cache/rebuild")
    volumes = (await api.get(f"/v1/pools/{POOL}/volumes")).json()["volumes"]
    assert [(v["type"], v["name"], v["content_type"]) for v in volumes] == INCUS_LIST
    assert {v["project"] for v in volumes} == {"default"}
    v1 = next(v for v in volumes if v["name"] == "v1")
    assert v1["linstor_name"] == V1
    assert v1["snapshots"] == ["snap0"]  # "virtual-machine (snapshot) v1/snap0"
    fresh = (await api.get(f"/v1/pools/{POOL}/volumes", params={"fresh": "true"})).json()["volumes"]
    assert fresh == volumes


async def test_seed_volume_and_snapshot_resolve_both_ways(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    await arrange_seed(linstor, emulator)
    for rd, (name, _, _) in SEED.items():
        resolved = (await api.get(f"/v1/resolve/{rd}")).json()
        assert "incus-volume-" + resolved["volume"]["name"] in (name, name.replace("default_", ""))
    forward = (await api.get(f"/v1/pools/{POOL}/volumes/virtual-machine/v1")).json()
    assert forward["linstor_name"] == V1
    snap = (await api.get(f"/v1/pools/{POOL}/volumes/virtual-machine/v1/snapshots/snap0")).json()
    assert snap["linstor_name"] == SNAP
    assert snap["volumes"] == [
        {"number": 0, "size_bytes": 10 * 1024**3},
        {"number": 1, "size_bytes": 500 * 1024**2},
    ]
    reverse = (await api.get(f"/v1/resolve/{SNAP}")).json()
    assert reverse["kind"] == "snapshot"
    assert reverse["snapshot"] == "snap0"
    assert (reverse["volume"]["type"], reverse["volume"]["name"]) == ("virtual-machine", "v1")


async def test_renaming_a_documented_key_snapshot_writes_incus_code_key(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    await arrange_seed(linstor, emulator)
    response = await api.patch(
        f"/v1/pools/{POOL}/volumes/virtual-machine/v1/snapshots/snap0", json={"name": "s0"}
    )
    assert response.status_code == 200, response.text
    props = (await linstor.get_resource_definition(V1)).props
    assert props["Aux/Incus/snapshot-name/s0"] == SNAP
    assert "Aux/Incus/SnapshotName/snap0" not in props


async def test_what_the_api_writes_is_what_incus_writes(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    """Incus's setResourceDefinitionProperties keys and values and its name pattern, plus the project."""
    vm = await create(api, name="v1", type="virtual-machine", size="10GiB")
    snap = (
        await api.post(f"/v1/pools/{POOL}/volumes/virtual-machine/v1/snapshots", json={"name": "snap0"})
    ).json()
    custom = await create(api, name="vol", type="custom", content_type="block")
    name = re.compile(r"^incus-volume-[0-9a-f]{32}$")
    assert name.match(vm["linstor_name"])
    assert name.match(snap["linstor_name"])
    assert (await linstor.get_resource_definition(vm["linstor_name"])).props == {
        "Aux/Incus/name": "incus-volume-v1",
        "Aux/Incus/type": "virtual-machines",
        "Aux/Incus/content-type": "block",
        "Aux/Incus/snapshot-name/snap0": snap["linstor_name"],
        "Aux/Incus/project": "default",
        "DrbdOptions/Net/allow-two-primaries": "yes",
        "DrbdOptions/ExactSize": "true",
        # ours, beyond Incus's namespace: the RD's own name (app/markers.py)
        "Aux/linstor-names/rd": vm["linstor_name"],
        # set by the controller once resources exist, not by us (service-traffic.jsonl #24)
        "DrbdOptions/Resource/quorum": "off",
    }
    custom_props = (await linstor.get_resource_definition(custom["linstor_name"])).props
    assert custom_props["Aux/Incus/name"] == "incus-volume-default_vol"
    vds = await linstor.list_volume_definitions(vm["linstor_name"])
    assert [vd.size_kib for vd in vds] == [10 * 1024 * 1024, 500 * 1024]


async def test_python_linstor_sees_what_the_api_wrote(api: httpx.AsyncClient, emulator: Emulator) -> None:
    vol = await create(api, name="c1", type="container", project="foo")

    def read() -> dict[str, str]:
        with pylinstor.Linstor(emulator.url) as lin:
            replies = lin.resource_dfn_list(
                filter_by_props=["Aux/Incus/name=incus-volume-foo_c1", "Aux/Incus/type=containers"]
            )
            rds = replies[0].resource_definitions
            assert [rd.name for rd in rds] == [vol["linstor_name"]]
            props: dict[str, str] = rds[0].properties
            return props

    props = await asyncio.to_thread(read)
    assert props["Aux/Incus/name"] == "incus-volume-foo_c1"
    assert props["Aux/Incus/project"] == "foo"
    assert props["Aux/Incus/content-type"] == "filesystem"
