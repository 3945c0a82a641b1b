"""One test per named deviation: the emulator answers like the controller's code; the spec says otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from linstor import sharedconsts as apiconsts

from tests.conformance.deviations import BY_NAME, is_error, ret_codes
from tests.conformance.spec import SpecValidator
from tests.conftest import Emulator
from tests.support.ret_codes import (
    PARSE_ERROR,
    RAW_RD_NOT_FOUND,
    RAW_RG_NOT_FOUND,
    RD_CREATE_EXISTS,
    RD_DELETE_NOT_FOUND,
    RD_MODIFY_INVALID_PROP,
    RD_MODIFY_NOT_FOUND,
    SNAPSHOT_DELETE_NOT_FOUND,
    UNKNOWN_ERROR,
    VD_CREATED,
)

RD = "/v1/resource-definitions/{resource}"
RG = "/v1/resource-groups/{resource_group}"
VDS = "/v1/resource-definitions/{resource}/volume-definitions"
VD = "/v1/resource-definitions/{resource}/volume-definitions/{volume_number}"


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the emulator."""
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        yield http


@asynccontextmanager
async def deviation(validator: SpecValidator, name: str) -> AsyncIterator[None]:
    """Assert that at least one answer inside the block was recognised as deviation `name`."""
    assert name in BY_NAME
    before = validator.hits[name]
    yield
    # The observer runs on the server thread and may finish just after the client got the answer.
    for _ in range(100):
        if validator.hits[name] > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no answer matched deviation {name}")


def op(validator: SpecValidator, route: str, method: str) -> dict[str, Any]:
    """The spec's raw operation object ({} if the spec lacks it)."""
    found: dict[str, Any] = validator.raw["paths"].get(route, {}).get(method, {})
    return found


def spec_schema(validator: SpecValidator, name: str) -> dict[str, Any]:
    """A raw component schema of the spec."""
    schema: dict[str, Any] = validator.raw["components"]["schemas"][name]
    return schema


def codes(response: httpx.Response) -> list[int]:
    """The signed ret_codes of an RC-list answer."""
    body = response.json()
    assert isinstance(body, list), body
    return [rc["ret_code"] for rc in body]


async def create_rd(http: httpx.AsyncClient, name: str, props: dict[str, str] | None = None) -> None:
    """POST a resource definition (with props), expecting 201."""
    rd: dict[str, Any] = {"name": name, **({"props": props} if props else {})}
    response = await http.post("/v1/resource-definitions", json={"resource_definition": rd})
    assert response.status_code == 201, response.text


async def create_vd(
    http: httpx.AsyncClient, rd: str, size_kib: int = 1048576, **extra: Any
) -> httpx.Response:
    """POST a volume definition."""
    body = {"volume_definition": {"size_kib": size_kib, **extra}}
    return await http.post(f"/v1/resource-definitions/{rd}/volume-definitions", json=body)


async def deploy(http: httpx.AsyncClient, rd: str) -> None:
    """An RD with one volume placed on two nodes (snapshots need a diskful resource)."""
    await create_rd(http, rd)
    assert (await create_vd(http, rd)).status_code == 200
    placed = await http.post(
        f"/v1/resource-definitions/{rd}/autoplace", json={"select_filter": {"place_count": 2}}
    )
    assert placed.status_code == 201, placed.text


async def test_volume_definition_create_200(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await create_rd(client, "vol1")
    async with deviation(spec_validator, "volume-definition-create-200"):
        response = await create_vd(client, "vol1")
    assert response.status_code == 200
    assert codes(response) == [VD_CREATED]
    assert sorted(op(spec_validator, VDS, "post")["responses"]) == ["201", "400", "500"]


async def test_resource_definition_get_one(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await create_rd(client, "vol1", {"Aux/Incus/name": "foo"})
    async with deviation(spec_validator, "resource-definition-get-one"):
        found = await client.get("/v1/resource-definitions/VOL1")  # names are case-insensitive
        missing = await client.get("/v1/resource-definitions/nope")
    assert found.status_code == 200
    assert found.json()["name"] == "vol1"
    assert found.json()["props"] == {"Aux/Incus/name": "foo"}
    assert missing.status_code == 404
    assert missing.json()[0]["ret_code"] == RAW_RD_NOT_FOUND
    assert missing.json()[0]["message"] == "Resource definition 'nope' not found."
    assert op(spec_validator, RD, "get") == {}


async def test_resource_group_get_one(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    async with deviation(spec_validator, "resource-group-get-one"):
        found = await client.get("/v1/resource-groups/dfltrscgrp")
        missing = await client.get("/v1/resource-groups/nope")
    assert found.status_code == 200
    assert found.json()["name"] == "DfltRscGrp"
    assert missing.status_code == 404
    assert codes(missing) == [RAW_RG_NOT_FOUND]
    assert op(spec_validator, RG, "get") == {}


async def test_volume_definition_get_one(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await create_rd(client, "vol1")
    await create_vd(client, "vol1", size_kib=2048)
    async with deviation(spec_validator, "volume-definition-get-one"):
        found = await client.get("/v1/resource-definitions/vol1/volume-definitions/0")
        missing = await client.get("/v1/resource-definitions/vol1/volume-definitions/7")
    assert found.status_code == 200
    assert (found.json()["volume_number"], found.json()["size_kib"]) == (0, 2048)
    assert missing.status_code == 404
    assert [rc & 0x7FFF for rc in ret_codes(missing.json())] == [303]  # FAIL_NOT_FOUND_VLM_DFN
    assert op(spec_validator, VD, "get") == {}


async def test_resource_get_one(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await deploy(client, "vol1")
    listed = await client.get("/v1/resource-definitions/vol1/resources")
    node = listed.json()[0]["node_name"]
    async with deviation(spec_validator, "resource-get-one"):
        found = await client.get(f"/v1/resource-definitions/vol1/resources/{node}")
        missing = await client.get("/v1/resource-definitions/vol1/resources/nowhere")
    assert found.status_code == 200
    assert (found.json()["name"], found.json()["node_name"]) == ("vol1", node)
    assert missing.status_code == 404
    assert [rc & 0x7FFF for rc in ret_codes(missing.json())] == [302]  # FAIL_NOT_FOUND_RSC
    assert op(spec_validator, "/v1/resource-definitions/{resource}/resources/{node}", "get") == {}


async def test_clone_failure_is_clone_started(
    client: httpx.AsyncClient, spec_validator: SpecValidator
) -> None:
    await deploy(client, "src")
    await create_rd(client, "dst")
    async with deviation(spec_validator, "clone-failure-is-clone-started"):
        response = await client.post("/v1/resource-definitions/src/clone", json={"name": "dst"})
    assert response.status_code == 500
    body = response.json()
    assert (body["source_name"], body["clone_name"]) == ("src", "dst")
    assert body["location"] == "/v1/resource-definitions/src/clone/dst"
    assert any(is_error(rc) for rc in ret_codes(body["messages"]))
    clone = op(spec_validator, "/v1/resource-definitions/{resource}/clone", "post")
    assert clone["responses"]["500"] == {"$ref": "#/components/responses/OperationFailed"}


async def test_operation_failed_is_rc_list(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await create_rd(client, "vol1")
    async with deviation(spec_validator, "operation-failed-is-rc-list"):
        again = await client.post("/v1/resource-definitions", json={"resource_definition": {"name": "VOL1"}})
    assert again.status_code == 500
    assert codes(again) == [RD_CREATE_EXISTS]
    create = op(spec_validator, "/v1/resource-definitions", "post")
    assert create["responses"]["500"] == {"$ref": "#/components/responses/OperationFailed"}
    failed = spec_validator.raw["components"]["responses"]["OperationFailed"]
    assert failed["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiCallRc"}


async def test_not_found_is_404(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    async with deviation(spec_validator, "not-found-is-404"):
        response = await client.put("/v1/resource-definitions/nope", json={"override_props": {"Aux/a": "1"}})
    assert response.status_code == 404
    assert codes(response) == [RD_MODIFY_NOT_FOUND]
    assert sorted(op(spec_validator, RD, "put")["responses"]) == ["200"]


async def test_business_error_is_500(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await create_rd(client, "vol1")
    async with deviation(spec_validator, "business-error-is-500"):
        response = await client.put(
            "/v1/resource-definitions/vol1", json={"override_props": {"Foo/bar": "1"}}
        )
    assert response.status_code == 500
    assert codes(response) == [RD_MODIFY_INVALID_PROP]
    assert response.json()[0]["message"] == "Invalid property key: Foo/bar"
    assert sorted(op(spec_validator, RD, "put")["responses"]) == ["200"]


async def test_unknown_path_404(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    async with deviation(spec_validator, "unknown-path-404"):
        response = await client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert codes(response) == [UNKNOWN_ERROR]
    assert response.json()[0]["message"] == "Path '/v1/no-such-thing' not found on server."
    assert spec_validator.match("/v1/no-such-thing") is None


async def test_method_not_allowed_405(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    async with deviation(spec_validator, "method-not-allowed-405"):
        response = await client.patch("/v1/resource-definitions", json={})
    assert response.status_code == 405
    assert response.json()[0]["message"].startswith("Method 'PATCH' not allowed on path")
    assert op(spec_validator, "/v1/resource-definitions", "patch") == {}


async def test_delete_missing_warns_200(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await create_rd(client, "vol1")
    async with deviation(spec_validator, "delete-missing-warns-200"):
        rd = await client.delete("/v1/resource-definitions/nope")
        snapshot = await client.delete("/v1/resource-definitions/vol1/snapshots/nope")
        rg = await client.delete("/v1/resource-groups/nope")
    assert (rd.status_code, codes(rd)) == (200, [RD_DELETE_NOT_FOUND])
    assert rd.json()[0]["message"] == "Resource definition: nope not found."
    assert (snapshot.status_code, codes(snapshot)) == (200, [SNAPSHOT_DELETE_NOT_FOUND])
    assert rg.status_code == 200
    assert [rc & 0x7FFF for rc in ret_codes(rg.json())] == [3000]  # WARN_NOT_FOUND
    # The spec documents 200 only as "deleted", and no answer at all for a missing object.
    assert (
        op(spec_validator, RD, "delete")["responses"]["200"]["description"] == "resource-definition deleted"
    )
    assert op(spec_validator, RG, "delete")["responses"]["200"]["description"] == "resource-group deleted"


async def test_json_parse_error_is_500(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await deploy(client, "vol1")
    async with deviation(spec_validator, "json-parse-error-is-500"):
        response = await client.post(
            "/v1/resource-definitions/vol1/snapshots",
            content=b'{"name": ',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 500
    assert codes(response) == [PARSE_ERROR]
    snapshots = op(spec_validator, "/v1/resource-definitions/{resource}/snapshots", "post")
    assert snapshots["responses"]["400"] == {"$ref": "#/components/responses/InvalidInput"}


async def test_resource_group_create_ignores_props(
    client: httpx.AsyncClient, spec_validator: SpecValidator
) -> None:
    async with deviation(spec_validator, "resource-group-create-ignores-props"):
        created = await client.post("/v1/resource-groups", json={"name": "rg1", "props": {"Aux/x": "1"}})
    assert created.status_code == 201
    listed = await client.get("/v1/resource-groups", params={"resource_groups": "rg1"})
    assert [rg["name"] for rg in listed.json()] == ["rg1"]
    assert "props" not in listed.json()[0]
    assert "props" in spec_schema(spec_validator, "ResourceGroup")["properties"]


async def test_snapshot_create_ignores_props(
    client: httpx.AsyncClient, spec_validator: SpecValidator
) -> None:
    await deploy(client, "vol1")
    async with deviation(spec_validator, "snapshot-create-ignores-props"):
        created = await client.post(
            "/v1/resource-definitions/vol1/snapshots", json={"name": "snap1", "props": {"Aux/snap": "1"}}
        )
    assert created.status_code == 201, created.text
    snapshot = (await client.get("/v1/resource-definitions/vol1/snapshots/snap1")).json()
    assert "Aux/snap" not in snapshot.get("props", {})
    assert "Aux/snap" not in snapshot.get("snapshot_definition_props", {})
    assert "props" in spec_schema(spec_validator, "Snapshot")["properties"]


async def test_limit_max_not_enforced(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    for i in range(55):
        await create_rd(client, f"vol{i:02d}")
    async with deviation(spec_validator, "limit-max-not-enforced"):
        response = await client.get("/v1/resource-definitions", params={"limit": 55})
    assert response.status_code == 200
    assert len(response.json()) == 55
    assert spec_validator.raw["components"]["parameters"]["Limit"]["schema"]["maximum"] == 50


async def test_offset_needs_limit(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    for name in ("a1", "b1", "c1"):
        await create_rd(client, name)
    async with deviation(spec_validator, "offset-needs-limit"):
        ignored = await client.get("/v1/resource-definitions", params={"offset": 2})
    paged = await client.get("/v1/resource-definitions", params={"offset": 2, "limit": 10})
    assert [rd["name"] for rd in ignored.json()] == ["a1", "b1", "c1"]
    assert [rd["name"] for rd in paged.json()] == ["c1"]
    offset = spec_validator.raw["components"]["parameters"]["Offset"]
    assert offset["description"] == "number of records to skip for pagination"


async def test_volume_definition_list_ignores_paging(
    client: httpx.AsyncClient, spec_validator: SpecValidator
) -> None:
    await create_rd(client, "vol1")
    await create_vd(client, "vol1")
    await create_vd(client, "vol1")
    async with deviation(spec_validator, "volume-definition-list-ignores-paging"):
        response = await client.get("/v1/resource-definitions/vol1/volume-definitions", params={"limit": 1})
    assert [vd["volume_number"] for vd in response.json()] == [0, 1]
    params = op(spec_validator, VDS, "get")["parameters"]
    assert {"$ref": "#/components/parameters/Limit"} in params


async def test_volume_definition_modify_ignores_delete_namespaces(
    client: httpx.AsyncClient, spec_validator: SpecValidator
) -> None:
    await create_rd(client, "vol1")
    await create_vd(client, "vol1", props={"Aux/ns/a": "1"})
    async with deviation(spec_validator, "volume-definition-modify-ignores-delete-namespaces"):
        response = await client.put(
            "/v1/resource-definitions/vol1/volume-definitions/0", json={"delete_namespaces": ["Aux/ns"]}
        )
    assert response.status_code == 200
    vd = (await client.get("/v1/resource-definitions/vol1/volume-definitions/0")).json()
    assert vd["props"].pop("DrbdCurrentGi")  # every new VD gets one (controller-api.jsonl #158)
    assert vd["props"] == {"Aux/ns/a": "1"}
    assert "delete_namespaces" in spec_schema(spec_validator, "VolumeDefinitionModify")["properties"]


async def test_resource_definition_get_one_without_volume_definitions(
    client: httpx.AsyncClient, spec_validator: SpecValidator
) -> None:
    await create_rd(client, "vol1")
    await create_vd(client, "vol1")
    params = {"with_volume_definitions": "true"}
    async with deviation(spec_validator, "resource-definition-get-one-without-volume-definitions"):
        one = await client.get("/v1/resource-definitions/vol1", params=params)
    listed = await client.get("/v1/resource-definitions", params=params)
    assert "volume_definitions" not in one.json()
    assert [vd["volume_number"] for vd in listed.json()[0]["volume_definitions"]] == [0]
    rd_list = op(spec_validator, "/v1/resource-definitions", "get")
    assert "/v1/resource-definitions/rsc1" in rd_list["description"]  # the spec advertises the single GET
    assert any(p.get("name") == "with_volume_definitions" for p in rd_list["parameters"])


async def test_props_filters_are_anded(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    await create_rd(client, "both", {"Aux/a": "1", "Aux/b": "2"})
    await create_rd(client, "only_a", {"Aux/a": "1"})
    await create_rd(client, "only_b", {"Aux/b": "2"})
    async with deviation(spec_validator, "props-filters-are-anded"):
        response = await client.get(
            "/v1/resource-definitions", params=[("props", "Aux/a=1"), ("props", "Aux/b=2")]
        )
    assert [rd["name"] for rd in response.json()] == ["both"]
    description = spec_validator.raw["components"]["parameters"]["Props"]["description"]
    assert "AND" not in description.upper().split()


def test_deviation_constants_agree_with_python_linstor() -> None:
    """The signed ret_codes above are python-linstor's constants (with masks) as Java longs."""

    def signed(value: int) -> int:
        return value - (1 << 64) if value >= 1 << 63 else value

    rsc_dfn = apiconsts.MASK_RSC_DFN
    assert RD_CREATE_EXISTS == signed(apiconsts.FAIL_EXISTS_RSC_DFN | apiconsts.MASK_CRT | rsc_dfn)
    assert RD_MODIFY_NOT_FOUND == signed(apiconsts.FAIL_NOT_FOUND_RSC_DFN | apiconsts.MASK_MOD | rsc_dfn)
    assert RD_MODIFY_INVALID_PROP == signed(apiconsts.FAIL_INVLD_PROP | apiconsts.MASK_MOD | rsc_dfn)
    assert RD_DELETE_NOT_FOUND == signed(apiconsts.WARN_NOT_FOUND | apiconsts.MASK_DEL | rsc_dfn)
    snapshot = apiconsts.MASK_SNAPSHOT
    assert SNAPSHOT_DELETE_NOT_FOUND == signed(apiconsts.WARN_NOT_FOUND | apiconsts.MASK_DEL | snapshot)
    assert signed(apiconsts.FAIL_NOT_FOUND_RSC_DFN) == RAW_RD_NOT_FOUND
    assert signed(apiconsts.FAIL_NOT_FOUND_RSC_GRP) == RAW_RG_NOT_FOUND
    assert VD_CREATED == apiconsts.MASK_VLM_DFN | apiconsts.MASK_CRT | apiconsts.CREATED
    assert signed(apiconsts.FAIL_UNKNOWN_ERROR) == UNKNOWN_ERROR
    assert signed(apiconsts.API_CALL_PARSE_ERROR) == PARSE_ERROR


async def test_node_type_is_upper_case(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    async with deviation(spec_validator, "node-type-is-upper-case"):
        nodes = await client.get("/v1/nodes")
        one = await client.get("/v1/nodes/server01")
    assert {n["type"] for n in nodes.json()} == {"SATELLITE"}
    assert one.json()["type"] == "SATELLITE"
    enum = spec_validator.raw["components"]["schemas"]["Node"]["properties"]["type"]["enum"]
    assert "Satellite" in enum
    assert "SATELLITE" not in enum


async def test_node_get_one(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    async with deviation(spec_validator, "node-get-one"):
        found = await client.get("/v1/nodes/SERVER02")
        missing = await client.get("/v1/nodes/nope")
    assert found.json()["name"] == "server02"
    assert missing.status_code == 404
    assert op(spec_validator, "/v1/nodes/{node}", "get") == {}


async def test_node_providers_beyond_spec(client: httpx.AsyncClient, spec_validator: SpecValidator) -> None:
    async with deviation(spec_validator, "node-providers-beyond-spec"):
        one = await client.get("/v1/nodes/server01")
    assert "REMOTE_SPDK" in one.json()["storage_providers"]  # controller-api.jsonl #181 lists it
    assert "REMOTE_SPDK" not in spec_schema(spec_validator, "ProviderKind")["enum"]


async def test_clone_without_name_has_null_ref(
    client: httpx.AsyncClient, spec_validator: SpecValidator
) -> None:
    await client.post("/v1/resource-groups", json={"name": "rg1"})
    await client.post(
        "/v1/resource-groups/rg1/spawn", json={"resource_definition_name": "src", "volume_sizes": [1024]}
    )
    async with deviation(spec_validator, "clone-without-name-has-null-ref"):
        response = await client.post("/v1/resource-definitions/src/clone", json={})
    assert response.status_code == 500
    # controller-api.jsonl #222: the controller's placeholder name and a null reference
    assert response.json()["clone_name"] == "__invalid_name__"
    assert response.json()["messages"][0]["obj_refs"] == {"RscDfn": None}
