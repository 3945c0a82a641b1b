"""End-to-end: the volume API over real HTTP against the LINSTOR emulator."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from app.linstor import LinstorClient
from tests.support.api import FINGERPRINT, POOL, assert_problem, create

RD_NAME = re.compile(r"^incus-volume-[0-9a-f]{32}$")
GIB = 1024**3


async def test_create_container_writes_incus_identity_in_one_call(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    response = await api.post(
        f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": "10GiB"}
    )
    assert response.status_code == 201, response.text
    vol = response.json()
    assert response.headers["location"] == f"/v1/pools/{POOL}/volumes/container/c1?project=default"
    assert RD_NAME.match(vol["linstor_name"])
    assert vol | {"linstor_name": None} == {
        "pool": POOL,
        "project": "default",
        "type": "container",
        "name": "c1",
        "content_type": "filesystem",
        "description": None,
        "linstor_name": None,
        "volumes": [{"number": 0, "size_bytes": 10 * GIB}],
        "snapshots": [],
    }
    rd = await linstor.get_resource_definition(vol["linstor_name"])
    assert rd.resource_group_name == POOL
    assert {k: v for k, v in rd.props.items() if k.startswith("Aux/")} == {
        "Aux/Incus/name": "incus-volume-c1",
        "Aux/Incus/type": "containers",
        "Aux/Incus/content-type": "filesystem",
        "Aux/Incus/project": "default",
        # ours, beyond Incus's namespace: the RD's own name; the pending marks are gone (app/markers.py)
        "Aux/linstor-names/rd": vol["linstor_name"],
    }
    resources = await linstor.list_resources(vol["linstor_name"])
    assert len(resources) == 2  # placed by the resource group's place_count


async def test_virtual_machine_has_block_disk_and_500mib_filesystem_volume(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    vol = await create(api, name="v1", type="virtual-machine", size=10 * GIB)
    assert vol["content_type"] == "block"
    assert vol["volumes"] == [
        {"number": 0, "size_bytes": 10 * GIB},
        {"number": 1, "size_bytes": 500 * 1024**2},
    ]
    vds = await linstor.list_volume_definitions(vol["linstor_name"])
    assert [(vd.volume_number, vd.size_kib) for vd in vds] == [(0, 10 * 1024**2), (1, 500 * 1024)]


async def test_sizes_are_rounded_as_incus_does(api: httpx.AsyncClient) -> None:
    small = await create(api, name="tiny", type="custom", content_type="block", size=1000)
    assert small["volumes"][0]["size_bytes"] == 4 * 1024**2  # at least 4 MiB
    odd = await create(api, name="odd", type="custom", content_type="block", size=5 * 1024**2 + 1)
    assert odd["volumes"][0]["size_bytes"] == 5 * 1024**2 + 8192  # up to an 8 KiB boundary


@pytest.mark.parametrize(
    ("body", "aux_name", "aux_type"),
    [
        ({"name": "c1", "type": "container", "project": "foo"}, "incus-volume-foo_c1", "containers"),
        ({"name": "vol", "type": "custom", "content_type": "block"}, "incus-volume-default_vol", "custom"),
        ({"name": "vol", "type": "custom", "project": "foo"}, "incus-volume-foo_vol", "custom"),
        (
            {"name": FINGERPRINT, "type": "image", "content_type": "block"},
            f"incus-volume-{FINGERPRINT}",
            "images",
        ),
    ],
)
async def test_storage_names_embed_the_project_as_incus_does(
    api: httpx.AsyncClient, linstor: LinstorClient, body: dict[str, Any], aux_name: str, aux_type: str
) -> None:
    vol = await create(api, **body)
    rd = await linstor.get_resource_definition(vol["linstor_name"])
    assert rd.props["Aux/Incus/name"] == aux_name
    assert rd.props["Aux/Incus/type"] == aux_type
    assert rd.props["Aux/Incus/project"] == body.get("project", "default")


async def test_create_twice_is_409_volume_exists(api: httpx.AsyncClient, linstor: LinstorClient) -> None:
    await create(api, name="c1", type="container")
    response = await api.post(
        f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": 1 << 30}
    )
    assert_problem(response, 409, "volume_exists")
    # Same name in another project or of another type is another volume.
    await create(api, name="c1", type="container", project="foo")
    await create(api, name="c1", type="custom")
    assert len(await linstor.list_resource_definitions()) == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "bad_name", "type": "container"}, "invalid_name"),
        ({"name": "-c", "type": "container"}, "invalid_name"),
        ({"name": "123", "type": "container"}, "invalid_name"),
        ({"name": "x" * 64, "type": "container"}, "invalid_name"),
        ({"name": "a/b", "type": "custom"}, "invalid_name"),
        ({"name": "a\\b", "type": "custom"}, "invalid_name"),
        ({"name": "", "type": "custom"}, "invalid_name"),
        ({"name": "abc", "type": "image"}, "invalid_name"),
        ({"name": "c1", "type": "container", "project": "my_project"}, "invalid_project"),
        ({"name": "c1", "type": "container", "project": "a/b"}, "invalid_project"),
        ({"name": FINGERPRINT, "type": "image", "project": "foo"}, "invalid_project"),
        ({"name": "c1", "type": "container", "content_type": "block"}, "invalid_content_type"),
        ({"name": "v1", "type": "virtual-machine", "content_type": "filesystem"}, "invalid_content_type"),
        ({"name": "i1", "type": "container", "content_type": "iso"}, "invalid_content_type"),
        ({"name": "c1", "type": "container", "size": None}, "invalid_size"),
        ({"name": "c1", "type": "container", "size": "lots"}, "invalid_size"),
        ({"name": "c1", "type": "pod"}, "invalid_request"),
        ({"name": "c1", "type": "container", "colour": "red"}, "invalid_request"),
        ({"type": "container"}, "invalid_request"),
    ],
)
async def test_invalid_create_requests_never_reach_linstor(
    api: httpx.AsyncClient, linstor: LinstorClient, body: dict[str, Any], code: str
) -> None:
    request = {"size": "1GiB", **body}  # a copy: the parametrize dict must hold for a second run
    if request["size"] is None:
        del request["size"]
    response = await api.post(f"/v1/pools/{POOL}/volumes", json=request)
    assert_problem(response, 422, code)
    assert await linstor.list_resource_definitions() == []


async def test_unknown_pool_is_404_and_invalid_pool_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/pools/nopool/volumes", json={"name": "c1", "type": "container", "size": 1 << 30}
    )
    assert_problem(response, 404, "pool_not_found")
    response = await api.get("/v1/pools/bad.pool/volumes")
    assert_problem(response, 422, "invalid_pool")
    response = await api.get("/v1/pools/nopool/volumes")
    assert_problem(response, 404, "pool_not_found")


async def test_forward_lookup(api: httpx.AsyncClient) -> None:
    created = await create(api, name="c1", type="container", project="foo", description="web server")
    response = await api.get(f"/v1/pools/{POOL}/volumes/container/c1", params={"project": "foo"})
    assert response.status_code == 200, response.text
    assert response.json() == created
    assert response.json()["description"] == "web server"
    missing = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")  # project default
    body = assert_problem(missing, 404, "volume_not_found")
    assert body["instance"] == f"/v1/pools/{POOL}/volumes/container/c1"
    bad_type = await api.get(f"/v1/pools/{POOL}/volumes/pods/c1")
    assert_problem(bad_type, 422, "invalid_request")


async def test_list_filters_by_project_and_type(api: httpx.AsyncClient) -> None:
    await create(api, name="c1", type="container")
    await create(api, name="c2", type="container", project="foo")
    await create(api, name="vol", type="custom", project="foo", content_type="block")
    response = await api.get(f"/v1/pools/{POOL}/volumes")
    assert response.status_code == 200
    assert [(v["project"], v["type"], v["name"]) for v in response.json()["volumes"]] == [
        ("default", "container", "c1"),
        ("foo", "container", "c2"),
        ("foo", "custom", "vol"),
    ]
    foo = (await api.get(f"/v1/pools/{POOL}/volumes", params={"project": "foo"})).json()["volumes"]
    assert [v["name"] for v in foo] == ["c2", "vol"]
    custom = (await api.get(f"/v1/pools/{POOL}/volumes", params={"type": "custom"})).json()["volumes"]
    assert [v["name"] for v in custom] == ["vol"]
    fresh = (await api.get(f"/v1/pools/{POOL}/volumes", params={"fresh": "true"})).json()["volumes"]
    assert len(fresh) == 3


async def test_list_keeps_only_the_pools_resource_group(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    await create(api, name="c1", type="container")
    # the same identity in another resource group (another Incus pool with the same prefix)
    await linstor.create_resource_definition(
        "incus-volume-00000000000000000000000000000001",
        resource_group="DfltRscGrp",
        props={
            "Aux/Incus/name": "incus-volume-c1",
            "Aux/Incus/type": "containers",
            "Aux/Incus/content-type": "filesystem",
        },
    )
    assert len((await api.get(f"/v1/pools/{POOL}/volumes", params={"fresh": "true"})).json()["volumes"]) == 1
    assert (await api.get(f"/v1/pools/{POOL}/volumes/container/c1")).status_code == 200
    other = (await api.get("/v1/pools/DfltRscGrp/volumes/container/c1")).json()
    assert other["linstor_name"] == "incus-volume-00000000000000000000000000000001"


async def test_rename_rewrites_only_the_name_property(api: httpx.AsyncClient, linstor: LinstorClient) -> None:
    vol = await create(api, name="c1", type="container", project="foo")
    before = (await linstor.get_resource_definition(vol["linstor_name"])).props
    response = await api.patch(
        f"/v1/pools/{POOL}/volumes/container/c1", params={"project": "foo"}, json={"name": "d1"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "d1"
    assert response.json()["linstor_name"] == vol["linstor_name"]
    after = (await linstor.get_resource_definition(vol["linstor_name"])).props
    assert after == before | {"Aux/Incus/name": "incus-volume-foo_d1"}
    gone = await api.get(f"/v1/pools/{POOL}/volumes/container/c1", params={"project": "foo"})
    assert_problem(gone, 404, "volume_not_found")
    found = await api.get(f"/v1/pools/{POOL}/volumes/container/d1", params={"project": "foo"})
    assert found.json()["linstor_name"] == vol["linstor_name"]


async def test_rename_errors(api: httpx.AsyncClient) -> None:
    await create(api, name="c1", type="container")
    await create(api, name="c2", type="container")
    taken = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c2"})
    assert_problem(taken, 409, "volume_exists")
    invalid = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c_2"})
    assert_problem(invalid, 422, "invalid_name")
    missing = await api.patch(f"/v1/pools/{POOL}/volumes/container/nope", json={"name": "c3"})
    assert_problem(missing, 404, "volume_not_found")
    same = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c1"})
    assert same.status_code == 200


async def test_delete_removes_snapshots_then_the_resource_definition(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    vol = await create(api, name="c1", type="container")
    # a LINSTOR snapshot nobody mapped still blocks an RD delete (linstor-rest-api.md §2.4)
    await linstor.create_snapshot(vol["linstor_name"], "manual-snap")
    response = await api.delete(f"/v1/pools/{POOL}/volumes/container/c1")
    assert response.status_code == 204, response.text
    assert await linstor.list_resource_definitions() == []
    again = await api.delete(f"/v1/pools/{POOL}/volumes/container/c1")
    assert_problem(again, 404, "volume_not_found")


async def test_two_resource_definitions_with_one_identity_are_reported_not_crashed(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    props = {
        "Aux/Incus/name": "incus-volume-c1",
        "Aux/Incus/type": "containers",
        "Aux/Incus/content-type": "filesystem",
    }
    for rd in (
        "incus-volume-aaaa0000000000000000000000000000",
        "incus-volume-bbbb0000000000000000000000000000",
    ):
        await linstor.create_resource_definition(rd, resource_group=POOL, props=props)
    response = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
    body = assert_problem(response, 409, "ambiguous_volume")
    assert body["resource_definitions"] == [
        "incus-volume-aaaa0000000000000000000000000000",
        "incus-volume-bbbb0000000000000000000000000000",
    ]
    create_again = await api.post(
        f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": 1 << 30}
    )
    assert_problem(create_again, 409, "volume_exists")


async def test_pools_lists_resource_groups(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/pools")
    assert response.status_code == 200
    pools = {p["name"]: p for p in response.json()["pools"]}
    assert pools[POOL]["place_count"] == 2
    assert "DfltRscGrp" in pools


async def test_resolve_resource_definition_name(api: httpx.AsyncClient) -> None:
    vol = await create(api, name="c1", type="container", project="foo")
    response = await api.get(f"/v1/resolve/{vol['linstor_name']}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "linstor_name": vol["linstor_name"],
        "kind": "resource-definition",
        "volume": vol,
        "snapshot": None,
    }
    upper = await api.get(f"/v1/resolve/{vol['linstor_name'].upper()}")  # LINSTOR names are case-insensitive
    assert upper.json()["volume"]["name"] == "c1"
    assert_problem(await api.get("/v1/resolve/incus-volume-0000"), 404, "linstor_name_not_found")
    assert_problem(await api.get("/v1/resolve/1bad"), 422, "invalid_name")


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"linstor": "ok", "cache": "ok"}


async def test_unknown_route_and_method_are_problems(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/nothing"), 404, "not_found")
    assert_problem(await api.put(f"/v1/pools/{POOL}/volumes"), 405, "method_not_allowed")
