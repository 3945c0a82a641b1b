"""Resource definitions, volume definitions, props rules, filters and routing (linstor-rest-api.md §1-§5)."""

from __future__ import annotations

import httpx
import pytest

from app.emulator import EmulatorState
from app.emulator.store import CONTROLLER_DEFAULTS
from tests.emulator.helpers import RD_URL, codes, make_rd
from tests.support.ret_codes import RD_CREATED, RD_DELETED, RD_MODIFIED


async def test_version_and_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/controller/version")
    assert r.status_code == 200
    assert r.json()["rest_api_version"] == "1.28.0"
    assert r.json()["version"] == "1.34.0"
    health = await client.get("/health")
    assert (health.status_code, health.content) == (200, b"")


async def test_create_without_props_puts_created_entry_first(client: httpx.AsyncClient) -> None:
    r = await make_rd(client, "vol1")
    assert r.status_code == 201
    first = r.json()[0]
    assert first["ret_code"] == RD_CREATED
    assert first["message"] == "New resource definition 'vol1' created."
    assert first["obj_refs"]["RscDfn"] == "vol1"
    assert first["obj_refs"]["UUID"] in first["details"]
    assert "+" in first["created_at"] or first["created_at"].endswith("Z")


async def test_create_with_props_sets_props_entry_first(client: httpx.AsyncClient) -> None:
    r = await make_rd(client, "vol1", {"Aux/Incus/name": "foo", "Aux/Incus/type": "containers"})
    assert r.status_code == 201
    assert r.json()[0]["message"] == "Successfully set property key(s): Aux/Incus/name,Aux/Incus/type"
    assert "obj_refs" not in r.json()[0]
    got = (await client.get(f"{RD_URL}/vol1")).json()
    assert got["props"] == {"Aux/Incus/name": "foo", "Aux/Incus/type": "containers"}


async def test_names_case_insensitive_display_case_kept_and_sorted(client: httpx.AsyncClient) -> None:
    for name in ("beta", "Alpha", "gamma_1", "ALPHA2"):
        assert (await make_rd(client, name)).status_code == 201
    dup = await make_rd(client, "BETA")
    assert dup.status_code == 500
    assert codes(dup) == [-4611686018406940171]
    assert dup.json()[0]["cause"] == "The ResourceDefinition already exists"
    assert "error_report_ids" not in dup.json()[0]
    assert (await client.get(f"{RD_URL}/ALPHA")).json()["name"] == "Alpha"
    names = [rd["name"] for rd in (await client.get(RD_URL)).json()]
    assert names == ["Alpha", "ALPHA2", "beta", "gamma_1"]


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("a", "Invalid name: Name length 1 is less than minimum length 2"),
        ("x" * 49, "Invalid name: Name length 49 is greater than maximum length 48"),
        ("12", "Invalid name: Name must contain at least one character that matches [a-zA-Z]"),
        ("-ab", "Invalid name: Cannot begin with character '-'"),
        ("ab.c", "Invalid name: Cannot contain character '.'"),
        ("all", None),
        ("PROXY", None),
    ],
)
async def test_invalid_rd_names(client: httpx.AsyncClient, name: str, cause: str | None) -> None:
    r = await make_rd(client, name)
    assert r.status_code == 500
    assert codes(r) == [-4611686018406940470]
    assert r.json()[0]["message"] == f"The specified resource name '{name}' is invalid."
    if cause:
        assert r.json()[0]["cause"] == cause
    raw = await client.get(f"{RD_URL}/{name}")
    assert raw.status_code == 500
    assert codes(raw) == [-4611686018427387702]
    listed = await client.get(RD_URL, params={"resource_definitions": name})
    assert listed.status_code == 500


async def test_prop_key_rules(client: httpx.AsyncClient) -> None:
    bad = await make_rd(client, "vol1", {"Foo/bar": "x"})
    assert bad.status_code == 500
    entry = bad.json()[0]
    assert entry["ret_code"] == -4611686018406940459
    assert entry["message"] == "Invalid property key: Foo/bar"
    assert entry["cause"] == "The key 'Foo/bar' is not whitelisted."
    assert entry["error_report_ids"]
    assert (await client.get(f"{RD_URL}/vol1")).status_code == 404  # the create was rolled back
    for key in ("/Aux/x", "aux/x", "Aux/" + "k" * 252):
        assert (await make_rd(client, "vol1", {key: "v"})).status_code == 500, key
    bad_value = await make_rd(client, "vol1", {"DrbdOptions/Net/allow-two-primaries": "maybe"})
    assert (
        bad_value.json()[0]["message"] == "Invalid property(DrbdOptions/Net/allow-two-primaries) value: maybe"
    )
    ok = await make_rd(
        client,
        "vol1",
        {"Aux//x/": "1", "DrbdOptions/Net/allow-two-primaries": "yes", "StorPoolName": "thinpool"},
    )
    assert ok.status_code == 201
    props = (await client.get(f"{RD_URL}/vol1")).json()["props"]
    assert props == {"Aux/x": "1", "DrbdOptions/Net/allow-two-primaries": "yes", "StorPoolName": "thinpool"}


async def test_modify_order_and_entries(client: httpx.AsyncClient) -> None:
    await make_rd(client, "vol1", {"Aux/a": "1", "Aux/ns/x": "1", "Aux/ns/y": "2", "Aux/keep": "k"})
    body = {
        "override_props": {"Aux/a": "2", "Aux/b": "3"},
        "delete_props": ["Aux/b", "Aux/missing"],
        "delete_namespaces": ["Aux/ns"],
    }
    r = await client.put(f"{RD_URL}/VOL1", json=body)
    assert r.status_code == 200
    assert codes(r) == [RD_CREATED, RD_DELETED, RD_MODIFIED]
    assert r.json()[2]["message"] == "Resource definition 'vol1' modified."
    assert all(e["obj_refs"]["RscDfn"] == "VOL1" for e in r.json())
    assert (await client.get(f"{RD_URL}/vol1")).json()["props"] == {"Aux/a": "2", "Aux/keep": "k"}
    bad = await client.put(f"{RD_URL}/vol1", json={"override_props": {"Foo": "x"}})
    assert codes(bad) == [-4611686018390163243]
    missing = await client.put(f"{RD_URL}/nope", json={})
    assert missing.status_code == 404
    entry = missing.json()[0]
    assert entry["ret_code"] == -4611686018390163155
    assert entry["correction"] == "Create a resource definition with the name 'nope' first."
    assert (await client.put(f"{RD_URL}/vol1", json={"delete_props": None})).status_code == 500


async def test_modify_switches_resource_group(client: httpx.AsyncClient) -> None:
    await client.post("/v1/resource-groups", json={"name": "rg1"})
    await make_rd(client, "vol1")
    assert (await client.put(f"{RD_URL}/vol1", json={"resource_group": "RG1"})).status_code == 200
    assert (await client.get(f"{RD_URL}/vol1")).json()["resource_group_name"] == "rg1"
    assert (await client.put(f"{RD_URL}/vol1", json={"resource_group": "nope"})).status_code == 404
    missing_rg = await make_rd(client, "vol2", resource_group_name="rgX")
    assert missing_rg.status_code == 404
    assert codes(missing_rg) == [-4611686018406940355]


async def test_delete_is_idempotent(client: httpx.AsyncClient) -> None:
    await make_rd(client, "vol1")
    r = await client.delete(f"{RD_URL}/vol1")
    assert (r.status_code, codes(r)) == (200, [RD_DELETED])
    again = await client.delete(f"{RD_URL}/vol1")
    assert again.status_code == 200
    assert codes(again) == [-9223372036800771144]
    assert again.json()[0]["message"] == "Resource definition: vol1 not found."


async def test_get_one_not_found_and_empty_fields_omitted(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{RD_URL}/nope")
    assert r.status_code == 404
    assert r.json() == [
        {
            "ret_code": -4611686018427387603,
            "message": "Resource definition 'nope' not found.",
            "created_at": r.json()[0]["created_at"],
        }
    ]
    await make_rd(client, "vol1")
    rd = (await client.get(f"{RD_URL}/vol1")).json()
    assert "props" not in rd
    assert "flags" not in rd
    assert "external_name" not in rd
    assert (
        "volume_definitions"
        not in (await client.get(RD_URL, params={"with_volume_definitions": "true"})).json()[0]
    )


async def test_props_filter_semantics(client: httpx.AsyncClient) -> None:
    await make_rd(client, "a1", {"Aux/name": "x", "Aux/type": "vm"})
    await make_rd(client, "a2", {"Aux/name": "y", "Aux/type": "vm"})
    await make_rd(client, "a3", {"Aux/name": "x=1", "Aux/type": "ct"})
    await make_rd(client, "a4", {"Aux/name": ""})

    async def names(*filters: str, **extra: str) -> list[str]:
        params: list[tuple[str, str | int | float | bool | None]] = [("props", f) for f in filters]
        params += list(extra.items())
        r = await client.get(RD_URL, params=params)
        assert r.status_code == 200
        return [rd["name"] for rd in r.json()]

    assert await names("Aux/type=vm") == ["a1", "a2"]
    assert await names("Aux/type=vm", "Aux/name=x") == ["a1"]  # AND
    assert await names("Aux/name=x=1") == ["a3"]  # split at the first '='
    assert await names("Aux/type") == ["a1", "a2", "a3"]  # key alone = exists
    assert await names("Aux/name=") == ["a4"]
    assert await names("Aux/name=X") == []  # case-sensitive value
    assert await names("/Aux//name=y") == ["a2"]  # sanitized key
    assert await names("Aux/type=vm", resource_definitions="A2") == ["a2"]
    assert await names("Aux/type=vm", limit="1", offset="1") == ["a2"]
    assert await names(offset="2") == ["a1", "a2", "a3", "a4"]  # offset alone ignored
    assert await names(limit="2") == ["a1", "a2"]


async def test_with_volume_definitions(client: httpx.AsyncClient) -> None:
    await make_rd(client, "vol1")
    await client.post(f"{RD_URL}/vol1/volume-definitions", json={"volume_definition": {"size_kib": 2048}})
    rds = (await client.get(RD_URL, params={"with_volume_definitions": "true"})).json()
    assert rds[0]["volume_definitions"][0]["size_kib"] == 2048
    assert (
        "volume_definitions"
        not in (await client.get(f"{RD_URL}/vol1", params={"with_volume_definitions": "true"})).json()
    )


async def test_volume_definitions(client: httpx.AsyncClient) -> None:
    await make_rd(client, "vol1")
    url = f"{RD_URL}/vol1/volume-definitions"
    created = await client.post(
        url, json={"volume_definition": {"size_kib": 1024, "props": {"StorPoolName": "thinpool"}}}
    )
    assert created.status_code == 200  # not the SPEC's 201
    assert codes(created) == [19922945, 19922945]  # the props entry first (controller-api.jsonl #151)
    assert (
        created.json()[1]["message"]
        == "New volume definition with number '0' of resource definition 'vol1' created."
    )
    dup = await client.post(url, json={"volume_definition": {"size_kib": 1024, "volume_number": 0}})
    assert dup.status_code == 500
    assert (await client.post(url, json={"volume_definition": {"size_kib": 0}})).status_code == 500
    assert (
        await client.post(f"{RD_URL}/nope/volume-definitions", json={"volume_definition": {"size_kib": 1}})
    ).status_code == 404
    assert [vd["volume_number"] for vd in (await client.get(url)).json()] == [0]
    props = (await client.get(f"{url}/0")).json()["props"]
    assert props.pop("DrbdCurrentGi")  # every new VD gets one (controller-api.jsonl #158)
    assert props == {"StorPoolName": "thinpool"}
    assert (await client.get(f"{url}/7")).status_code == 404
    assert (await client.get(f"{RD_URL}/nope/volume-definitions")).status_code == 404
    modified = await client.put(f"{url}/0", json={"size_kib": 4096, "override_props": {"Aux/x": "1"}})
    assert modified.status_code == 200
    assert (await client.get(f"{url}/0")).json()["size_kib"] == 4096
    assert (await client.delete(f"{url}/0")).status_code == 200
    missing = await client.delete(f"{url}/0")
    assert missing.status_code == 200
    assert missing.json()[0]["ret_code"] < 0


async def test_routing_errors_and_json_parse_errors(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()[0]["message"] == "Path '/v1/nope' not found on server."
    assert r.headers["content-type"] == "application/json"
    wrong = await client.patch(RD_URL)
    assert wrong.status_code == 405
    assert wrong.json()[0]["message"] == "Method 'PATCH' not allowed on path '/v1/resource-definitions'."
    parse = await client.post(RD_URL, content=b"{not json")
    assert parse.status_code == 400
    assert parse.json()[0]["ret_code"] == -3458764513820540931
    assert parse.json()[0]["message"] == "Unable to parse input json."
    unknown = await client.post(RD_URL, json={"resource_definition": {"name": "x1", "bogus": 1}})
    assert unknown.status_code == 400
    assert "bogus" in unknown.json()[0]["details"]
    assert (await client.post("/v1/resource-groups", json={"name": "rg1", "nope": 1})).status_code == 400
    assert (await client.put(f"{RD_URL}/x1", content=b"[")).status_code == 500
    await make_rd(client, "vol1")
    assert (await client.post(f"{RD_URL}/vol1/snapshots", json={"name": "s1", "foo": 1})).status_code == 500
    assert (await client.post(f"{RD_URL}/vol1/clone", content=b"{")).status_code == 500


async def test_controller_properties(client: httpx.AsyncClient) -> None:
    fresh = (await client.get("/v1/controller/properties")).json()
    assert fresh.pop("Cluster/LocalID")
    assert fresh == CONTROLLER_DEFAULTS  # a fresh controller's own props (controller-api.jsonl #5)
    r = await client.post("/v1/controller/properties", json={"override_props": {"Aux/site/id": "a"}})
    assert r.status_code == 201
    assert (await client.get("/v1/controller/properties")).json()["Aux/site/id"] == "a"
    assert (await client.delete("/v1/controller/properties/Aux/site/id")).status_code == 200
    assert "Aux/site/id" not in (await client.get("/v1/controller/properties")).json()
    assert (
        await client.post("/v1/controller/properties", json={"override_props": {"Bad": "x"}})
    ).status_code == 500


async def test_nodes_and_pools(client: httpx.AsyncClient, state: EmulatorState) -> None:
    nodes = (await client.get("/v1/nodes")).json()
    assert [(n["name"], n["type"], n["connection_status"]) for n in nodes] == [
        ("server01", "SATELLITE", "ONLINE"),
        ("server02", "SATELLITE", "ONLINE"),
        ("server03", "SATELLITE", "ONLINE"),
    ]
    state.set_node_online("server02", False)
    assert (await client.get("/v1/nodes/SERVER02")).json()["connection_status"] == "OFFLINE"
    assert (await client.get("/v1/nodes/nope")).status_code == 404
    pools = (await client.get("/v1/view/storage-pools")).json()
    assert {(p["node_name"], p["storage_pool_name"], p["provider_kind"]) for p in pools} == {
        (n, "thinpool", "LVM_THIN") for n in ("server01", "server02", "server03")
    }
    assert pools[0]["free_capacity"] == 1 << 30
    assert len((await client.get("/v1/nodes/server01/storage-pools")).json()) == 1
    assert (await client.get("/v1/nodes/nope/storage-pools")).status_code == 404
