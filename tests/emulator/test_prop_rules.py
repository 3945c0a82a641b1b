"""LINBIT's property rules in the emulator: the whitelist table and the controller's recorded refusals."""

# `controller-api #n` cites line n of /work/shared/linstor/transcripts/linstor-1.33.3-controller-api.jsonl,
# `service #n` and `golinstor #n` the service-traffic and golinstor-traffic files; a test citing
# linstor-server names the v1.33.3 source that the transcripts do not cover.

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from linstor.properties import properties

from app.emulator import prop_rules, prop_table
from app.emulator.names import check_props
from app.emulator.prop_rules import Kind, PropError
from tests.emulator.helpers import RD_URL, codes, make_rd

RG_URL = "/v1/resource-groups"
ROOT = Path(__file__).resolve().parents[2]

RG_INVALID_PROP = -4611686018406154027  # FAIL_INVLD_PROP | MASK_MOD | MASK_RSC_GRP
RD_CREATE_INVALID_PROP = -4611686018406940459  # FAIL_INVLD_PROP | MASK_CRT | MASK_RSC_DFN
RD_MODIFY_INVALID_PROP = -4611686018390163243  # FAIL_INVLD_PROP | MASK_MOD | MASK_RSC_DFN
VD_MODIFY_INVALID_PROP = -4611686018390687531  # FAIL_INVLD_PROP | MASK_MOD | MASK_VLM_DFN


def fields(response: httpx.Response) -> dict[str, Any]:
    """The one RC entry of a refusal without its run-dependent values."""
    entries = response.json()
    assert len(entries) == 1
    entry = dict(entries[0])
    entry.pop("created_at")
    if "error_report_ids" in entry:
        entry["error_report_ids"] = len(entry["error_report_ids"])
    return entry


async def modify_rd(client: httpx.AsyncClient, name: str, body: dict[str, Any]) -> httpx.Response:
    """PUT /v1/resource-definitions/{name}."""
    return await client.put(f"{RD_URL}/{name}", json=body)


# -- refusals recorded from linstor-server 1.33.3 ------------------------------------------------------------


async def test_resource_group_key_not_whitelisted_controller_api_31(client: httpx.AsyncClient) -> None:
    await client.post(RG_URL, json={"name": "t8c08aa_rg1"})
    r = await client.put(f"{RG_URL}/t8c08aa_rg1", json={"override_props": {"foo": "bar"}})
    assert r.status_code == 500
    assert fields(r) == {
        "ret_code": RG_INVALID_PROP,
        "message": "Invalid property key: foo",
        "cause": "The key 'foo' is not whitelisted.",
        "details": "Resource group: t8c08aa_rg1",
        "error_report_ids": 1,
        "obj_refs": {"RscGrp": "t8c08aa_rg1"},
    }


async def test_resource_group_symbol_value_controller_api_32_33_34(client: httpx.AsyncClient) -> None:
    await client.post(RG_URL, json={"name": "t8c08aa_rg1"})
    url = f"{RG_URL}/t8c08aa_rg1"
    assert (
        await client.put(url, json={"override_props": {"DrbdOptions/Net/protocol": "C"}})
    ).status_code == 200
    bad = await client.put(url, json={"override_props": {"DrbdOptions/Net/protocol": "X"}})
    assert bad.status_code == 500
    assert fields(bad) == {
        "ret_code": RG_INVALID_PROP,
        "message": "Invalid property(DrbdOptions/Net/protocol) value: X",
        "cause": "The value 'X' is not valid for the key 'DrbdOptions/Net/protocol'",
        "details": "This value has to match (?:A|B|C).\nResource group: t8c08aa_rg1",
        "error_report_ids": 1,
        "obj_refs": {"RscGrp": "t8c08aa_rg1"},
    }
    assert (await client.get(url)).json()["props"] == {"DrbdOptions/Net/protocol": "C"}
    assert (await client.put(url, json={"delete_props": ["DrbdOptions/Net/protocol"]})).status_code == 200


async def test_resource_group_drbd_options_golinstor_4(client: httpx.AsyncClient) -> None:
    await client.post(RG_URL, json={"name": "gopeer1c74c7a"})
    props = {
        "DrbdOptions/Disk/rs-discard-granularity": "1048576",
        "DrbdOptions/Resource/on-no-quorum": "suspend-io",
        "DrbdOptions/auto-add-quorum-tiebreaker": "true",
    }
    r = await client.put(f"{RG_URL}/gopeer1c74c7a", json={"override_props": props, "select_filter": {}})
    assert r.status_code == 200
    # golinstor-traffic.jsonl #5: a user-set rs-discard-granularity turns the automatic one off
    stored = {**props, "DrbdOptions/auto-rs-discard-granularity": "False"}
    assert (await client.get(f"{RG_URL}/gopeer1c74c7a")).json()["props"] == stored


async def test_controller_key_not_whitelisted_controller_api_7(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/controller/properties", json={"override_props": {"t8c08aa/x": "1"}})
    assert r.status_code == 500
    # CtrlConfApiCallHandler.setProp: its own wording, no cause, no error report, no obj_refs
    assert fields(r) == {
        "ret_code": -4611686018409561899,
        "message": "The key 't8c08aa/x' is not whitelisted",
        "details": "Controller",
    }
    assert "t8c08aa/x" not in (await client.get("/v1/controller/properties")).json()


async def test_controller_value_and_aux_linstor_server_ctrl_conf(client: httpx.AsyncClient) -> None:
    # CtrlConfApiCallHandler.setProp (no transcript): an invalid value names the rule, Aux/ is free (#6)
    url = "/v1/controller/properties"
    bad = await client.post(url, json={"override_props": {"DrbdOptions/AutoEvictAllowEviction": "maybe"}})
    assert fields(bad) == {
        "ret_code": -4611686018409561899,
        "message": "The value 'maybe' is not valid.",
        "details": "This value must be either 'yes', 'no', 'true' or 'false'.\nController",
    }
    assert (await client.post(url, json={"override_props": {"Aux/t8c08aa/x": "1"}})).status_code == 201
    assert (await client.delete(f"{url}/Aux/t8c08aa/x")).status_code == 200
    gone = await client.delete(f"{url}/t8c08aa/x")
    assert gone.status_code == 500
    assert gone.json()[0]["message"] == "The key 't8c08aa/x' is not whitelisted"


@pytest.mark.parametrize(
    ("line", "key"),
    [(72, "foo/bar"), (73, "aux/x")],
)
async def test_rd_create_key_not_whitelisted_controller_api(
    client: httpx.AsyncClient, line: int, key: str
) -> None:
    r = await make_rd(client, "t8c08aa_bad1", {key: "x"})
    assert r.status_code == 500, line
    assert fields(r) == {
        "ret_code": RD_CREATE_INVALID_PROP,
        "message": f"Invalid property key: {key}",
        "cause": f"The key '{key}' is not whitelisted.",
        "details": "Resource definition: t8c08aa_bad1",
        "error_report_ids": 1,
        "obj_refs": {"RscDfn": "t8c08aa_bad1"},
    }
    assert (await client.get(f"{RD_URL}/t8c08aa_bad1")).status_code == 404  # the create rolled back


async def test_rd_create_symbol_value_controller_api_74_75(client: httpx.AsyncClient) -> None:
    ok = await make_rd(client, "t8c08aa_wl", {"DrbdOptions/Net/protocol": "C"})
    assert (ok.status_code, codes(ok)[0]) == (201, 20447233)
    assert ok.json()[0]["message"] == "Successfully set property key(s): DrbdOptions/Net/protocol"
    bad = await make_rd(client, "t8c08aa_bad3", {"DrbdOptions/Net/protocol": "X"})
    assert fields(bad) == {
        "ret_code": RD_CREATE_INVALID_PROP,
        "message": "Invalid property(DrbdOptions/Net/protocol) value: X",
        "cause": "The value 'X' is not valid for the key 'DrbdOptions/Net/protocol'",
        "details": "This value has to match (?:A|B|C).\nResource definition: t8c08aa_bad3",
        "error_report_ids": 1,
        "obj_refs": {"RscDfn": "t8c08aa_bad3"},
    }


async def test_rd_modify_refusals_controller_api_119_to_123(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_rd1")
    context = {"details": "Resource definition: t8c08aa_rd1", "obj_refs": {"RscDfn": "t8c08aa_rd1"}}
    key = await modify_rd(client, "t8c08aa_rd1", {"override_props": {"Foo/bar": "1"}})
    assert fields(key) == {
        "ret_code": RD_MODIFY_INVALID_PROP,
        "message": "Invalid property key: Foo/bar",
        "cause": "The key 'Foo/bar' is not whitelisted.",
        "error_report_ids": 1,
        **context,
    }
    assert (
        await modify_rd(client, "t8c08aa_rd1", {"override_props": {"DrbdOptions/Net/protocol": "C"}})
    ).status_code == 200
    value = await modify_rd(client, "t8c08aa_rd1", {"override_props": {"DrbdOptions/Net/protocol": "Z"}})
    assert fields(value) == {
        "ret_code": RD_MODIFY_INVALID_PROP,
        "message": "Invalid property(DrbdOptions/Net/protocol) value: Z",
        "cause": "The value 'Z' is not valid for the key 'DrbdOptions/Net/protocol'",
        "error_report_ids": 1,
        "obj_refs": context["obj_refs"],
        "details": "This value has to match (?:A|B|C).\nResource definition: t8c08aa_rd1",
    }
    delete = await modify_rd(client, "t8c08aa_rd1", {"delete_props": ["Foo/bar"]})
    assert fields(delete) == {
        "ret_code": RD_MODIFY_INVALID_PROP,
        "message": "Invalid property key",  # the delete path has no key in its message
        "cause": "The key 'Foo/bar' is not whitelisted.",
        "error_report_ids": 1,
        **context,
    }
    assert (
        await modify_rd(client, "t8c08aa_rd1", {"delete_props": ["DrbdOptions/Net/protocol"]})
    ).status_code == 200
    assert (await client.get(f"{RD_URL}/t8c08aa_rd1")).json().get("props", {}) == {}


@pytest.mark.parametrize(("line", "key"), [(128, "/Aux/t8c08aa/lead"), (129, "aux/t8c08aa/low")])
async def test_aux_prefix_is_raw_and_case_sensitive_controller_api(
    client: httpx.AsyncClient, line: int, key: str
) -> None:
    await make_rd(client, "t8c08aa_Rd2")
    r = await modify_rd(client, "t8c08aa_Rd2", {"override_props": {key: "v"}})
    assert (r.status_code, r.json()[0]["message"]) == (500, f"Invalid property key: {key}"), line
    assert r.json()[0]["cause"] == f"The key '{key}' is not whitelisted."


async def test_key_length_controller_api_130_131_132(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_Rd2")
    ok = "Aux/t8c08aa/" + "k" * 243  # 255 characters
    assert (await modify_rd(client, "t8c08aa_Rd2", {"override_props": {ok: "v"}})).status_code == 200
    for key in ("Aux/t8c08aa/" + "k" * 244, "Aux/t8c08aa/" + "k" * 288):
        r = await modify_rd(client, "t8c08aa_Rd2", {"override_props": {key: "v"}})
        assert fields(r) == {
            "ret_code": RD_MODIFY_INVALID_PROP,
            "message": f"Invalid key: {key}",
            "cause": f"The key '{key}' is invalid.\nUsed key is invalid: {key}",
            "details": "Resource definition: t8c08aa_Rd2",
            "error_report_ids": 1,
            "obj_refs": {"RscDfn": "t8c08aa_Rd2"},
        }


async def test_odd_aux_keys_are_stored_sanitized_controller_api_124_to_138(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_Rd2")
    for key in ("Aux/t8c08aa/a=b", "Aux//t8c08aa/dbl", "Aux/t8c08aa/trail/", "Aux/", "Aux/t8c08aa/../x"):
        assert (await modify_rd(client, "t8c08aa_Rd2", {"override_props": {key: "v"}})).status_code == 200
    assert (
        await modify_rd(client, "t8c08aa_Rd2", {"override_props": {"Aux/t8c08aa/empty": ""}})
    ).status_code == 200
    # #138: a bare `Aux/` is stored as `Aux`, empty segments are dropped, `..` is kept
    assert (await client.get(f"{RD_URL}/t8c08aa_Rd2")).json()["props"] == {
        "Aux": "v",
        "Aux/t8c08aa/../x": "v",
        "Aux/t8c08aa/a=b": "v",
        "Aux/t8c08aa/dbl": "v",
        "Aux/t8c08aa/empty": "",
        "Aux/t8c08aa/trail": "v",
    }


async def test_value_length_controller_api_136_137(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_Rd2")
    exact = await modify_rd(client, "t8c08aa_Rd2", {"override_props": {"Aux/t8c08aa/v4096": "v" * 4096}})
    assert exact.status_code == 200
    over = await modify_rd(client, "t8c08aa_Rd2", {"override_props": {"Aux/t8c08aa/v5000": "v" * 5000}})
    assert over.status_code == 500
    assert fields(over) == {
        "ret_code": -4611686018390162458,  # FAIL_UNKNOWN_ERROR | MASK_MOD | MASK_RSC_DFN
        "message": "Modification of resource definition 't8c08aa_Rd2' failed due to an unhandled exception "
        "of type ApiDatabaseException. com.linbit.linstor.dbdrivers.DatabaseException: DatabaseException",
        "details": "Resource definition: t8c08aa_Rd2",
        "error_report_ids": 1,
        "obj_refs": {"RscDfn": "t8c08aa_Rd2"},
    }
    props = (await client.get(f"{RD_URL}/t8c08aa_Rd2")).json()["props"]
    assert list(props) == ["Aux/t8c08aa/v4096"]


async def test_volume_definition_key_not_whitelisted_controller_api_155_165(
    client: httpx.AsyncClient,
) -> None:
    # the VD context's `details` differ from the controller's (loaders.vd_ctx); the rule's fields are checked
    await make_rd(client, "t8c08aa_vd")
    url = f"{RD_URL}/t8c08aa_vd/volume-definitions"
    create = await client.post(
        url, json={"volume_definition": {"volume_number": 6, "size_kib": 1024, "props": {"foo": "1"}}}
    )
    assert create.status_code == 500
    assert codes(create) == [-4611686018407464747]
    assert (create.json()[0]["message"], create.json()[0]["cause"]) == (
        "Invalid property key: foo",
        "The key 'foo' is not whitelisted.",
    )
    assert (
        await client.post(url, json={"volume_definition": {"volume_number": 3, "size_kib": 2048}})
    ).status_code == 200
    modify = await client.put(f"{url}/3", json={"override_props": {"foo": "1"}})
    assert (modify.status_code, codes(modify)) == (500, [VD_MODIFY_INVALID_PROP])
    assert modify.json()[0]["obj_refs"] == {"RscDfn": "t8c08aa_vd", "VlmNr": "3"}


async def test_spawn_props_refused_in_the_group_context_controller_api_189(client: httpx.AsyncClient) -> None:
    await client.post(RG_URL, json={"name": "t8c08aa_sprg"})
    body = {
        "resource_definition_name": "t8c08aa_sp4",
        "volume_sizes": [1024],
        "definitions_only": True,
        "resource_definition_props": {"foo": "x"},
    }
    r = await client.post(f"{RG_URL}/t8c08aa_sprg/spawn", json=body)
    assert r.status_code == 500
    assert fields(r) == {
        "ret_code": -4611686018406154027,
        "message": "Invalid property key: foo",
        "cause": "The key 'foo' is not whitelisted.",
        "details": "Resource group: t8c08aa_sprg",
        "error_report_ids": 1,
        "obj_refs": {"RscDfn": "t8c08aa_sp4", "RscGrp": "t8c08aa_sprg"},
    }


# -- the controller's semantic rules -------------------------------------------------------------------------


async def test_exact_size_refused_while_deployed_service_156(client: httpx.AsyncClient) -> None:
    name = "incus-volume-6a8bcff0fdb640768602e1f483693f36"
    await make_rd(client, name, {"Aux/Incus/name": "incus-volume-vm2"})
    vds = await client.post(
        f"{RD_URL}/{name}/volume-definitions", json={"volume_definition": {"size_kib": 1024}}
    )
    assert vds.status_code == 200
    placed = await client.post(f"{RD_URL}/{name}/autoplace", json={"select_filter": {"place_count": 1}})
    assert placed.status_code == 201
    body = {
        "override_props": {"Aux/Incus/name": "incus-volume-vm2b", "DrbdOptions/ExactSize": "true"},
        "delete_props": ["Aux/Incus/description"],
        "delete_namespaces": ["Aux/Incus/snapshot-name"],
        "resource_group": "DfltRscGrp",
    }
    r = await modify_rd(client, name, body)
    assert r.status_code == 500
    assert fields(r) == {
        "ret_code": RD_MODIFY_INVALID_PROP,
        "message": "The property 'DrbdOptions/ExactSize' cannot be set to True while there are currently "
        "deployed resources(1).",
        "details": f"Resource definition: {name}",
        "obj_refs": {"RscDfn": name},
    }
    props = (await client.get(f"{RD_URL}/{name}")).json()["props"]
    assert (props["Aux/Incus/name"], "DrbdOptions/ExactSize" in props) == ("incus-volume-vm2", False)
    # Boolean.parseBoolean: `yes` is no "true" for this check, though the stored value becomes `true`
    assert (
        await modify_rd(client, name, {"override_props": {"DrbdOptions/ExactSize": "yes"}})
    ).status_code == 200
    assert (await client.get(f"{RD_URL}/{name}")).json()["props"]["DrbdOptions/ExactSize"] == "true"


async def test_exact_size_allowed_without_resources_golinstor_11_13(client: httpx.AsyncClient) -> None:
    await make_rd(client, "vol1")
    set_it = await modify_rd(client, "vol1", {"override_props": {"DrbdOptions/ExactSize": "true"}})
    assert (set_it.status_code, set_it.json()[0]["message"]) == (
        200,
        "Successfully set property key(s): DrbdOptions/ExactSize",
    )
    assert (await modify_rd(client, "vol1", {"delete_props": ["DrbdOptions/ExactSize"]})).status_code == 200


async def test_resize_refused_with_exact_size_golinstor_21(client: httpx.AsyncClient) -> None:
    name = "incus-volume-3c7801b1e6ab4931a2cdf8428a05b7ae"
    await make_rd(client, name)
    url = f"{RD_URL}/{name}/volume-definitions"
    assert (await client.post(url, json={"volume_definition": {"size_kib": 1048576}})).status_code == 200
    grown = await client.put(f"{url}/0", json={"size_kib": 1572864})
    assert grown.status_code == 200  # without ExactSize a VD grows
    assert (
        await modify_rd(client, name, {"override_props": {"DrbdOptions/ExactSize": "true"}})
    ).status_code == 200
    r = await client.put(f"{url}/0", json={"size_kib": 2097152})
    assert r.status_code == 500
    assert fields(r) == {
        "ret_code": VD_MODIFY_INVALID_PROP,
        "message": "Volume definition must not be resized while the resource-definition has the property "
        "'' set!",
        "details": f"Resource definition: {name}, Volume number: 0",
        "obj_refs": {"RscDfn": name, "VlmNr": "0"},
    }
    assert (await client.get(f"{url}/0")).json()["size_kib"] == 1572864


async def test_clone_refuses_exact_size_linstor_server_rsc_dfn_clone(client: httpx.AsyncClient) -> None:
    # CtrlRscDfnApiCallHandler.cloneRscDfn checks ExactSize=true without looking at the count (no transcript)
    await make_rd(client, "src1")
    body = {"name": "copy1", "override_props": {"DrbdOptions/ExactSize": "True"}}
    r = await client.post(f"{RD_URL}/src1/clone", json=body)
    assert r.status_code == 500
    entry = r.json()["messages"][0]
    assert entry["ret_code"] == RD_CREATE_INVALID_PROP
    assert entry["message"] == (
        "The property 'DrbdOptions/ExactSize' cannot be set to True while there are currently deployed "
        "resources(0)."
    )
    assert "error_report_ids" not in entry
    assert (await client.get(f"{RD_URL}/copy1")).status_code == 404


# -- the whole table -----------------------------------------------------------------------------------------


def _java_regex(text: str) -> str:
    return text.replace("\\\\", "\\")  # the table holds the Java literal's escapes


def _expected_error(entry: dict[str, Any]) -> str:
    """getErrMsg() per Property subclass, written out from linstor-server v1.33.3."""
    kind, unit = entry["type"], entry.get("unit")
    if kind == "boolean":
        return "This value must be either 'yes' or 'no'."
    if kind == "boolean_true_false":
        return "This value must be either 'yes', 'no', 'true' or 'false'."
    if kind == "long":
        return (
            f"This value contains {unit} and has to be of type Long."
            if unit
            else "This value has to be of type Long."
        )
    if kind == "regex":
        value = _java_regex(entry["value"])
    elif kind == "symbol":
        value = "(?:" + "|".join(sorted(entry["values"])) + ")"
    elif kind == "numeric-or-symbol":
        value = f"({entry['min']} - {entry['max']}) or (?:" + "|".join(sorted(entry["values"])) + ")"
    else:
        value = f"({entry['min']} - {entry['max']})"
    return f"This value  has to match {value} {unit}." if unit else f"This value has to match {value}."


# one value each regex of the RD table accepts; a new pattern in python-linstor fails the test until added
_REGEX_SAMPLES = {
    "^[a-zA-Z0-9_][a-zA-Z0-9_-]{2,47}$": "thinpool",
    "(\\d+(?:[.]\\d+)?)\\s*([kKmMgGtT](?:i[bB]|[bB])?|[bB]|[sS]|%|)": "50 GiB",
    "^100%|[0-9]{1,2}([.][0-9]*)?%|[1-9][0-9]{2,}$": "12.5%",
    "[0-9]+": "30",
    ".*": "--type raid1",
    ".+": "spdk.example",
    "^[0-9]+([.][0-9]+)?": "1.5",
    "[1-9][0-9]*(k|K|M|G)?": "64k",
    "^|.internal|[a-zA-Z0-9_][a-zA-Z0-9_-]{2,47}$": ".internal",
    "[a-zA-Z0-9_/-]+": "vg/pool",
    "[a-zA-Z0-9_-]+": "vg0",
    "[a-fA-F0-9]{16}": "0123456789abcdef",
    "[0-9]+-[0-9]+": "1000-2000",
    "(?:[0-9]+|[0-9]+-[0-9]+|\\w*,\\w*)+": "7000-7999",
}


def _samples(entry: dict[str, Any]) -> tuple[str, str, str | None]:
    """(a valid value, its stored form, an invalid value or None when every value is valid)."""
    kind = entry["type"]
    if kind == "regex":
        return _REGEX_SAMPLES[_java_regex(entry["value"])], _REGEX_SAMPLES[_java_regex(entry["value"])], "\n"
    if kind == "symbol":
        return entry["values"][0], entry["values"][0], "not a symbol"
    if kind == "numeric-or-symbol":
        return entry["values"][0], entry["values"][0], str(int(entry["max"]) + 1)
    if kind == "range":
        high = int(entry["max"])
        return str(entry["min"]), str(entry["min"]), str(high + 1) if high < 2**63 - 1 else "1.5"
    if kind == "range-float":
        return str(entry["min_float"]), str(entry["min_float"]), "ten"
    if kind == "boolean":
        return "YES", "yes", "true"
    if kind == "boolean_true_false":
        return "Yes", "true", "maybe"
    if kind == "long":
        return "-42", "-42", "4.2"
    assert kind == "string", kind
    return "any text", "any text", None


RD_ENTRIES = properties["resource-definition"]


@pytest.mark.parametrize("entry", RD_ENTRIES, ids=[e["key"] for e in RD_ENTRIES])
async def test_every_whitelisted_rd_key(client: httpx.AsyncClient, entry: dict[str, Any]) -> None:
    key = entry["key"]
    good, stored, bad = _samples(entry)
    await make_rd(client, "vol1")
    ok = await modify_rd(client, "vol1", {"override_props": {key: good}})
    assert ok.status_code == 200, ok.text
    side = (
        {"DrbdOptions/auto-rs-discard-granularity": "False"}
        if key.endswith("/rs-discard-granularity")
        else {}
    )
    assert (await client.get(f"{RD_URL}/vol1")).json()["props"] == {key: stored, **side}
    if bad is None:
        return
    refused = await modify_rd(client, "vol1", {"override_props": {key: bad}})
    assert fields(refused) == {
        "ret_code": RD_MODIFY_INVALID_PROP,
        "message": f"Invalid property({key}) value: {bad}",
        "cause": f"The value '{bad}' is not valid for the key '{key}'",
        "details": f"{_expected_error(entry)}\nResource definition: vol1",
        "error_report_ids": 1,
        "obj_refs": {"RscDfn": "vol1"},
    }


def test_table_covers_every_rule_type() -> None:
    used = {entry["type"] for entries in properties.values() for entry in entries}
    assert used <= {
        "regex",
        "symbol",
        "range",
        "range-float",
        "numeric-or-symbol",
        "boolean",
        "boolean_true_false",
        "long",
        "string",
    }
    rules = [rule for table in prop_table.tables().values() for rule in table.values()]
    assert len(rules) == sum(len(entries) for entries in properties.values())


# -- kinds, unit level ---------------------------------------------------------------------------------------


def test_resource_group_uses_the_rd_table_linstor_server_rsc_grp() -> None:
    # CtrlRscGrpApiCallHandler.create/modify call fillProperties with LinStorObject.RSC_DFN
    assert prop_rules.rules(Kind.RESOURCE_GROUP) is prop_rules.rules(Kind.RESOURCE_DEFINITION)
    # not a union with the VD table: a VD-only key is refused on a group
    assert "OverrideVlmId" in prop_rules.rules(Kind.VOLUME_DEFINITION)
    with pytest.raises(PropError, match="Invalid property key: OverrideVlmId"):
        check_props({"OverrideVlmId": "x"}, kind=Kind.RESOURCE_GROUP)


def test_snapshot_definitions_take_only_ignored_prefixes_linstor_server_snap_dfn() -> None:
    # SNAP_DFN has no generated rules; EBS/Tags/ is ignored there as for RDs, not for resources
    new, _, _ = check_props({"Aux/a": "1", "EBS/Tags/t": "2"}, kind=Kind.SNAPSHOT)
    assert new == {"Aux/a": "1", "EBS/Tags/t": "2"}
    with pytest.raises(PropError, match="Invalid property key: DrbdOptions/Net/protocol"):
        check_props({"DrbdOptions/Net/protocol": "C"}, kind=Kind.SNAPSHOT)
    with pytest.raises(PropError, match="Invalid property key: EBS/Tags/t"):
        check_props({"EBS/Tags/t": "2"}, kind=Kind.RESOURCE)


def test_numbers_are_parsed_like_java() -> None:
    quorum = prop_rules.rules(Kind.RESOURCE_DEFINITION)["DrbdOptions/Resource/quorum"]
    # Long.parseLong takes a sign; an out-of-range number does not fall back to the symbols
    assert [quorum.valid(v) for v in ("+5", "32", "33", "majority", "Majority", " 5", "5_0")] == [
        True,
        True,
        False,
        True,
        False,
        False,
        False,
    ]
    ratio = prop_rules.rules(Kind.CONTROLLER)["MaxOversubscriptionRatio"]
    assert [ratio.valid(v) for v in ("20", " 2.5d ", "1e3", "NaN", "inf", "1001")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert ratio.error == "This value has to match (0.0 - 1000.0)."


def test_missing_python_linstor_fails_the_emulator_not_the_service() -> None:
    script = (
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'linstor' else real(name, *a)\n"
        "import app.main\n"
        "try:\n"
        "    import app.emulator\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == prop_table.MISSING_DEPENDENCY
