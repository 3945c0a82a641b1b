"""The emulator answers as LINBIT's controller answered: status, ret_codes and texts of recorded exchanges.

`#n` cites line n of /work/shared/linstor/transcripts/linstor-1.33.3-controller-api.jsonl (the same file as
tests/conformance/linstor/transcripts/); each test sends the recorded request, or the same request on the
emulator's default cluster, and checks the recorded answer after removing timestamps, UUIDs and report ids.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.emulator import EmulatorState
from app.emulator.store import CONTROLLER_DEFAULTS
from tests.emulator.helpers import RD_URL, codes, deployed_rd, make_rd

RG_URL = "/v1/resource-groups"
CTRL_URL = "/v1/controller/properties"
PARSE_ERROR = -3458764513820540931
SOURCE = "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 1, column: {}]"
J = "com.linbit.linstor.api.rest.v1.serializer.JsonGenTypes$"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def entries(response: httpx.Response) -> list[dict[str, Any]]:
    """The RC list without created_at; UUIDs as <uuid>, error_report_ids as their count."""
    out = []
    for item in response.json():
        entry = {k: v for k, v in item.items() if k != "created_at"}
        if "error_report_ids" in entry:
            entry["error_report_ids"] = len(entry["error_report_ids"])
        out.append({k: _UUID.sub("<uuid>", v) if isinstance(v, str) else v for k, v in entry.items()})
        if "obj_refs" in entry:
            out[-1]["obj_refs"] = {k: _UUID.sub("<uuid>", v) for k, v in entry["obj_refs"].items()}
    return out


# -- routing and JSON parsing --------------------------------------------------------------------------------


async def test_unknown_path_and_method_carry_jersey_details_3_4(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/t8c08aa-nope")
    assert missing.status_code == 404
    assert entries(missing) == [
        {
            "ret_code": -4611686018427386906,
            "message": "Path '/v1/t8c08aa-nope' not found on server.",
            "details": "HTTP 404 Not Found",
        }
    ]
    wrong = await client.patch(RD_URL, content=b"{}")
    assert wrong.status_code == 405
    assert entries(wrong)[0]["details"] == "HTTP 405 Method Not Allowed"


async def test_unknown_field_lists_known_properties_in_jackson_order_22(client: httpx.AsyncClient) -> None:
    r = await client.post(RG_URL, content=b'{"name":"t8c08aa_rgu","bogus":1}')
    assert r.status_code == 400
    known = '"props", "peer_slots", "name", "description", "select_filter", "uuid"'
    assert entries(r) == [
        {
            "ret_code": PARSE_ERROR,
            "message": "Unable to parse input json.",
            "details": f'Unrecognized field "bogus" (class {J}ResourceGroup), not marked as ignorable '
            f"(6 known properties: {known}])\n at {SOURCE.format(32)} "
            f'(through reference chain: {J}ResourceGroup["bogus"])',
            "error_report_ids": 1,
        }
    ]


async def test_unknown_field_of_create_and_modify_dtos_79_142(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_rd1")
    create = await client.post(RD_URL, content=b'{"resource_definition":{"name":"t8c08aa_uf"},"bogus":1}')
    known = '"drbd_port", "resource_definition", "drbd_secret", "drbd_peer_slots", "drbd_transport_type"'
    assert create.status_code == 400
    assert entries(create)[0]["details"] == (
        f'Unrecognized field "bogus" (class {J}ResourceDefinitionCreate), not marked as ignorable '
        f"(5 known properties: {known}])\n at {SOURCE.format(55)} "
        f'(through reference chain: {J}ResourceDefinitionCreate["bogus"])'
    )
    modify = await client.put(f"{RD_URL}/t8c08aa_rd1", content=b'{"bogus":1}')
    known = (
        '"drbd_port", "drbd_peer_slots", "layer_stack", "delete_props", "override_props", '
        '"resource_group", "delete_namespaces"'
    )
    assert modify.status_code == 500
    assert entries(modify)[0]["details"].startswith(
        f'Unrecognized field "bogus" (class {J}ResourceDefinitionModify), not marked as ignorable '
        f"(7 known properties: {known}])\n at {SOURCE.format(11)}"
    )
    assert entries(modify)[0]["error_report_ids"] == 1


async def test_syntax_errors_are_worded_and_located_like_jackson_23_36_78(client: httpx.AsyncClient) -> None:
    await client.post(RG_URL, json={"name": "t8c08aa_rg1"})
    bad = await client.post(RG_URL, content=b"{not json")
    assert (bad.status_code, codes(bad)) == (400, [PARSE_ERROR])
    assert entries(bad)[0]["details"] == (
        "Unexpected character ('n' (code 110)): was expecting double-quote to start field name\n"
        f" at {SOURCE.format(2)}"
    )
    unclosed = await client.put(f"{RG_URL}/t8c08aa_rg1", content=b"{")
    assert unclosed.status_code == 500
    assert entries(unclosed) == [
        {
            "ret_code": PARSE_ERROR,
            "message": "Unable to parse input json.",
            "details": "Unexpected end-of-input: expected close marker for Object (start marker at "
            f"{SOURCE.format(1)})\n at {SOURCE.format(2)}",
            "error_report_ids": 1,
        }
    ]
    cut = await client.post(RD_URL, content=b'{"resource_definition": ')
    assert entries(cut)[0]["details"] == (
        f"Unexpected end-of-input within/between Object entries\n at {SOURCE.format(25)}"
    )


async def test_volume_definition_parse_error_has_no_error_report_157(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_vd")
    r = await client.post(f"{RD_URL}/t8c08aa_vd/volume-definitions", content=b"{")
    assert (r.status_code, codes(r)) == (500, [PARSE_ERROR])
    assert "error_report_ids" not in r.json()[0]
    # the same body on a PUT RD is reported (#141)
    assert "error_report_ids" in (await client.put(f"{RD_URL}/t8c08aa_vd", content=b"{")).json()[0]


async def test_null_delete_props_is_the_controllers_npe_143(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_rd1")
    r = await client.put(f"{RD_URL}/t8c08aa_rd1", content=b'{"delete_props":null}')
    assert r.status_code == 500
    assert entries(r) == [
        {
            "ret_code": -4611686018427386906,
            "message": "An unknown error occurred.",
            "details": 'Cannot invoke "java.util.Collection.size()" because "c" is null',
            "error_report_ids": 1,
        }
    ]


# -- controller properties -----------------------------------------------------------------------------------


async def test_fresh_controller_properties_5(client: httpx.AsyncClient) -> None:
    props = (await client.get(CTRL_URL)).json()
    assert list(props) == sorted(props)  # a TreeMap
    assert _UUID.fullmatch(props.pop("Cluster/LocalID"))
    assert props == CONTROLLER_DEFAULTS
    assert props["NetCom/PlainConnector/Port"] == "3376"


async def test_setting_a_controller_property_updates_every_satellite_6(
    client: httpx.AsyncClient, state: EmulatorState
) -> None:
    await deployed_rd(client, "t8c08aa_rd")
    r = await client.post(CTRL_URL, json={"override_props": {"Aux/t8c08aa/x": "1"}})
    assert r.status_code == 201
    got = entries(r)
    assert got[0] == {
        "ret_code": 17825793,
        "message": "Successfully set property 'Aux/t8c08aa/x' to value '1'",
    }
    deployed = sorted(state.rds["T8C08AA_RD"].resources.values(), key=lambda rsc: rsc.node)
    expected = []
    for node in ("server01", "server02", "server03"):
        expected += [
            {
                "ret_code": 36438019,
                "message": f"({node}) Volume number 0 of resource 't8c08aa_rd' [LVM THIN] resized",
                "obj_refs": {"RscDfn": "t8c08aa_rd", "VlmNr": "0"},
            }
            for rsc in deployed
            if rsc.node == node
        ]
        expected.append(
            {"ret_code": 4611686018461990912, "message": f"({node}) Controller properties applied"}
        )
    assert got[1:] == expected


async def test_deleting_a_controller_property_8(client: httpx.AsyncClient) -> None:
    await client.post(CTRL_URL, json={"override_props": {"Aux/t8c08aa/x": "1"}})
    r = await client.delete(f"{CTRL_URL}/Aux/t8c08aa/x")
    assert r.status_code == 200
    assert entries(r) == [{"ret_code": 51380226, "message": "Successfully deleted property 'Aux/t8c08aa/x'"}]


# -- resource groups -----------------------------------------------------------------------------------------


async def test_invalid_group_name_reported_in_operations_raw_on_get_15_27(client: httpx.AsyncClient) -> None:
    r = await client.post(RG_URL, json={"name": "1t8c08aa"})
    assert r.status_code == 500
    assert entries(r) == [
        {
            "ret_code": -4611686018406154003,
            "message": "The given resource group name '1t8c08aa' is invalid.",
            "cause": "Invalid name: Cannot begin with character '1'",
            "details": "Resource group: 1t8c08aa",
            "error_report_ids": 1,
            "obj_refs": {"RscGrp": "1t8c08aa"},
        }
    ]
    got = await client.get(f"{RG_URL}/1t8c08aa")
    assert got.status_code == 500
    assert entries(got) == [
        {"ret_code": -4611686018427387667, "message": "The given resource group name '1t8c08aa' is invalid."}
    ]


async def test_group_props_entries_carry_the_rd_mask_30_34(client: httpx.AsyncClient) -> None:
    await client.post(RG_URL, json={"name": "t8c08aa_rg1"})
    url = f"{RG_URL}/t8c08aa_rg1"
    set_ = await client.put(url, json={"override_props": {"DrbdOptions/Net/protocol": "C"}})
    assert codes(set_) == [20447233, 21233667]
    assert entries(set_)[0] == {
        "ret_code": 20447233,
        "message": "Successfully set property key(s): DrbdOptions/Net/protocol",
        "obj_refs": {"RscGrp": "t8c08aa_rg1"},
    }
    deleted = await client.put(url, json={"delete_props": ["DrbdOptions/Net/protocol"]})
    assert codes(deleted) == [54001666, 21233667]


# -- resource definitions ------------------------------------------------------------------------------------


async def test_invalid_rd_names_are_reported_64_66(client: httpx.AsyncClient) -> None:
    r = await make_rd(client, "9t8c08aa")
    assert r.status_code == 500
    assert entries(r) == [
        {
            "ret_code": -4611686018406940470,
            "message": "The specified resource name '9t8c08aa' is invalid.",
            "cause": "Invalid name: Cannot begin with character '9'",
            "details": "Resource definition: 9t8c08aa",
            "error_report_ids": 1,
            "obj_refs": {"RscDfn": "9t8c08aa"},
        }
    ]
    reserved = entries(await make_rd(client, "all"))[0]
    assert (
        reserved["cause"]
        == "The specified name 'all' cannot be used because it matches a keyword reserved for DRBD."
    )
    assert "error_report_ids" in entries(await client.put(f"{RD_URL}/9t8c08aa", json={}))[0]  # #140
    assert "error_report_ids" in entries(await client.delete(f"{RD_URL}/9t8c08aa"))[0]  # #147


async def test_missing_external_name_71(client: httpx.AsyncClient) -> None:
    r = await make_rd(client, "")
    assert r.status_code == 500
    entry = entries(r)[0]
    assert entry["ret_code"] == -4611686018406940066
    assert entry["cause"] == (
        "Name generation was selected by specifying a zero-length resource name,\n"
        "but the external name field required for name generation is not present\n"
        "in the API call data"
    )
    assert entry["correction"].startswith("For name generation from an external name\n- Specify a non-zero")
    assert entry["details"] == "Resource definition: "
    assert entry["error_report_ids"] == 1


async def test_external_name_translated_byte_by_byte_80(client: httpx.AsyncClient) -> None:
    r = await make_rd(client, "", external_name="t8c08aa-ext/ä")
    assert r.status_code == 201
    assert entries(r)[0]["message"] == "New resource definition 't8c08aa-ext_Jo' created."
    uuid_named = await make_rd(client, "", external_name="0f3c9a2e-1b2c-4d5e-8f90-a1b2c3d4e5f6")
    assert entries(uuid_named)[0]["obj_refs"]["RscDfn"] == "LS_0F3C9A2E-1B2C-4D5E-8F90-A1B2C3D4E5F6"


async def test_set_message_lists_keys_as_sent_126_127_133(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_Rd2")
    for key in ("Aux//t8c08aa/dbl", "Aux/t8c08aa/trail/", "Aux/"):
        r = await client.put(f"{RD_URL}/t8c08aa_Rd2", json={"override_props": {key: "v"}})
        assert (r.status_code, codes(r)) == (200, [20447233, 37224451])
        assert entries(r)[0]["message"] == f"Successfully set property key(s): {key}"
    props = (await client.get(f"{RD_URL}/t8c08aa_Rd2")).json()["props"]
    assert list(props) == ["Aux", "Aux/t8c08aa/dbl", "Aux/t8c08aa/trail"]  # stored sanitized (#138)


async def test_modify_of_missing_rd_or_group_is_not_reported_139_144(client: httpx.AsyncClient) -> None:
    missing = await client.put(f"{RD_URL}/t8c08aa_nope", json={"override_props": {"Aux/t8c08aa/a": "1"}})
    assert missing.status_code == 404
    assert list(missing.json()[0]) == [
        "ret_code",
        "message",
        "cause",
        "details",
        "correction",
        "obj_refs",
        "created_at",
    ]
    await make_rd(client, "t8c08aa_rd1")
    r = await client.put(f"{RD_URL}/t8c08aa_rd1", json={"resource_group": "t8c08aa_nope"})
    assert r.status_code == 404
    assert entries(r) == [
        {
            "ret_code": -4611686018390163139,
            "message": "Resource group 't8c08aa_nope' not found.",
            "cause": "The specified resource group 't8c08aa_nope' could not be found in the database",
            "details": "Resource definition: t8c08aa_rd1",
            "correction": "Create a resource group with the name 't8c08aa_nope' first.",
            "obj_refs": {"RscDfn": "t8c08aa_rd1"},
        }
    ]


async def test_deleting_an_absent_rd_warns_without_report_146(client: httpx.AsyncClient) -> None:
    r = await client.delete(f"{RD_URL}/t8c08aa_a0")
    assert r.status_code == 200
    assert entries(r) == [
        {
            "ret_code": -9223372036800771144,
            "message": "Resource definition: t8c08aa_a0 not found.",
            "details": "Resource definition: t8c08aa_a0",
            "obj_refs": {"RscDfn": "t8c08aa_a0"},
        }
    ]


# -- volume definitions --------------------------------------------------------------------------------------

VD_URL = f"{RD_URL}/t8c08aa_vd/volume-definitions"
VD_CREATES = "Volume definitions for resource definition 't8c08aa_vd'"
VD_CREATE_DETAILS = "Resource definition: t8c08aa_vd, Volume number: {}\n" + VD_CREATES


async def test_volume_definition_create_and_its_refusals_151_156(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_vd")
    body = {"volume_definition": {"volume_number": 3, "size_kib": 2048, "props": {"Aux/x": "1"}}}
    created = await client.post(VD_URL, json=body)
    assert created.status_code == 200
    assert entries(created) == [
        {
            "ret_code": 19922945,
            "message": "Successfully set property key(s): Aux/x",
            "obj_refs": {"RscDfn": "t8c08aa_vd"},
        },
        {
            "ret_code": 19922945,
            "message": "New volume definition with number '3' of resource definition 't8c08aa_vd' created.",
            "obj_refs": {"RscDfn": "t8c08aa_vd", "VlmNr": "3"},
        },
    ]
    dup = await client.post(VD_URL, json={"volume_definition": {"volume_number": 3, "size_kib": 2048}})
    assert entries(dup) == [
        {
            "ret_code": -4611686018407464457,
            "message": "A volume definition with the number 3 already exists in resource definition "
            "'t8c08aa_vd'.",
            "cause": "The VolumeDefinition already exists",
            "details": VD_CREATE_DETAILS.format(3),
            "obj_refs": {"RscDfn": "t8c08aa_vd", "VlmNr": "3"},
        }
    ]
    empty = entries(
        await client.post(VD_URL, json={"volume_definition": {"volume_number": 5, "size_kib": 0}})
    )
    assert empty[0]["message"] == (
        "The volume definition with number '5' of resource definition 't8c08aa_vd' has an invalid size of "
        "'0'. Valid sizes range from 4 to 1099511627776."
    )
    assert empty[0]["cause"] == "Volume size value 0 is out of range [1 - 9223372036854775807] for non-DRBD"
    assert "error_report_ids" not in empty[0]
    big = await client.post(VD_URL, json={"volume_definition": {"volume_number": 70000, "size_kib": 1024}})
    assert entries(big) == [
        {
            "ret_code": -4611686018407464755,
            "message": "The specified volume number '70000' is invalid. Volume numbers have to be in range "
            "of 0 - 65534.",
            "cause": "Volume number 70000 is out of range [0 - 65534]",
            "details": VD_CREATES,
            "error_report_ids": 1,
            "obj_refs": {"RscDfn": "t8c08aa_vd"},
        }
    ]
    bad_prop = {"volume_definition": {"volume_number": 6, "size_kib": 1024, "props": {"foo": "1"}}}
    refused = entries(await client.post(VD_URL, json=bad_prop))[0]
    assert (refused["details"], refused["error_report_ids"]) == (VD_CREATE_DETAILS.format(6), 1)
    no_rd = await client.post(f"{RD_URL}/t8c08aa_nope/volume-definitions", json={"volume_definition": {}})
    assert no_rd.status_code == 404
    assert entries(no_rd)[0]["details"] == "Volume definitions for resource definition 't8c08aa_nope'"
    assert "error_report_ids" not in entries(no_rd)[0]


async def test_volume_definition_modify_164_168(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_vd")
    await client.post(
        VD_URL, json={"volume_definition": {"volume_number": 3, "size_kib": 2048, "props": {"Aux/x": "1"}}}
    )
    refs = {"RscDfn": "t8c08aa_vd", "VlmNr": "3"}
    desc = "Volume definition with number '3' of resource definition 't8c08aa_vd'"
    modified = {
        "ret_code": 36700163,
        "message": f"{desc} modified.",
        "details": f"{desc} UUID is: <uuid>",
        "obj_refs": {"UUID": "<uuid>", **refs},
    }
    body = {"size_kib": 4096, "override_props": {"Aux/y": "2"}, "delete_props": ["Aux/x"]}
    r = await client.put(f"{VD_URL}/3", json=body)
    assert r.status_code == 200
    assert entries(r) == [
        {"ret_code": 19922945, "message": "Successfully set property key(s): Aux/y", "obj_refs": refs},
        {"ret_code": 53477378, "message": "Successfully deleted property key(s): Aux/x", "obj_refs": refs},
        modified,
    ]
    refused = entries(await client.put(f"{VD_URL}/3", json={"override_props": {"foo": "1"}}))[0]
    assert (refused["ret_code"], refused["details"]) == (
        -4611686018390687531,
        "Resource definition: t8c08aa_vd, Volume number: 3",
    )
    assert entries(await client.put(f"{VD_URL}/3", json={"delete_namespaces": ["Aux"]})) == [modified]
    missing = await client.put(f"{VD_URL}/9", json={"size_kib": 4096})
    assert missing.status_code == 404
    assert entries(missing) == [
        {
            "ret_code": -4611686018390687441,
            "message": "Volume definition 't8c08aa_vd' with volume number '9' not found.",
            "cause": "The specified volume definition 't8c08aa_vd' with volume number '9' could not be found "
            "in the database",
            "details": "Resource definition: t8c08aa_vd, Volume number: 9",
            "correction": "Create a volume definition with the name 't8c08aa_vd' first.",
            "obj_refs": {"RscDfn": "t8c08aa_vd", "VlmNr": "9"},
        }
    ]


async def test_volume_definition_delete_169_170(client: httpx.AsyncClient) -> None:
    await make_rd(client, "t8c08aa_vd")
    await client.post(VD_URL, json={"volume_definition": {"volume_number": 3, "size_kib": 2048}})
    refs = {"RscDfn": "t8c08aa_vd", "VlmNr": "3"}
    desc = "Volume definition with number '3' of resource definition 't8c08aa_vd'"
    r = await client.delete(f"{VD_URL}/3")
    assert entries(r) == [
        {
            "ret_code": 53477378,
            "message": f"{desc} marked for deletion.",
            "details": f"{desc} UUID is: <uuid>",
            "obj_refs": refs,
        },
        {
            "ret_code": 53477378,
            "message": f"{desc} deleted.",
            "details": f"{desc} UUID was: <uuid>",
            "obj_refs": refs,
        },
    ]
    again = await client.delete(f"{VD_URL}/3")
    assert again.status_code == 200
    assert entries(again) == [
        {
            "ret_code": -9223372036801295432,
            "message": "Resource definition: t8c08aa_vd, Volume number: 3 not found.",
            "details": "Resource definition: t8c08aa_vd, Volume number: 3",
            "obj_refs": refs,
        }
    ]
