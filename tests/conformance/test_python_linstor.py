"""python-linstor 1.29.1 (LINBIT's client) drives the emulator over HTTP and gets a controller's answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import linstor
import pytest
from linstor import sharedconsts as apiconsts

from tests.conftest import Emulator


@pytest.fixture
def lin(emulator: Emulator) -> Iterator[Any]:
    """A connected python-linstor client (linstor:// is its plain-HTTP scheme)."""
    client = linstor.Linstor(emulator.url.replace("http://", "linstor://"), timeout=30)
    client.connect()
    yield client
    client.disconnect()


def ok(responses: list[Any]) -> list[Any]:
    """Assert python-linstor parsed a non-empty reply without errors; returns it."""
    assert responses, "no ApiCallResponse"
    assert all(isinstance(r, linstor.ApiCallResponse) for r in responses), responses
    assert not any(r.is_error() for r in responses), [r.message for r in responses]
    return responses


def code_of(response: Any) -> int:
    """The code bits of an ApiCallResponse's ret_code."""
    code: int = response.ret_code & apiconsts.MASK_BITS_CODE
    return code


def test_connect_reads_the_controller_version(lin: Any) -> None:
    version = lin.controller_version()
    assert version.rest_api_version == "1.28.0"
    assert version.version.startswith("1.34")
    assert version.build_time
    assert lin.connected
    # Unlocked by 1.28.0; the REST 1.29.x features of python-linstor 1.29.1 are not.
    assert not lin.api_version_smaller("1.26.0")
    assert lin.api_version_smaller("1.29.0")


def test_http_scheme_is_plain_http_too(emulator: Emulator) -> None:
    client = linstor.Linstor(emulator.url, timeout=30)
    client.connect()
    try:
        assert client.controller_version().rest_api_version == "1.28.0"
    finally:
        client.disconnect()


def test_resource_group_create_list_and_spawn(lin: Any) -> None:
    ok(lin.resource_group_create("rg1", place_count=2, storage_pool="thinpool", property_dict={"Aux/x": "1"}))
    # The controller ignores props on RG create (deviation resource-group-create-ignores-props).
    listed = lin.resource_group_list_raise(filter_by_resource_groups=["RG1"]).resource_groups
    assert [rg.name for rg in listed] == ["rg1"]
    assert listed[0].properties == {}
    assert listed[0].select_filter.place_count == 2
    assert listed[0].select_filter.storage_pool_list == ["thinpool"]

    ok(lin.resource_group_modify("rg1", property_dict={"Aux/x": "1", "Aux/y": "2"}))
    by_props = lin.resource_group_list_raise(filter_by_props=["Aux/x=1", "Aux/y"]).resource_groups
    assert [rg.name for rg in by_props] == ["rg1"]
    assert by_props[0].properties == {"Aux/x": "1", "Aux/y": "2"}
    assert lin.resource_group_list_raise(filter_by_props=["Aux/x=1", "Aux/y=3"]).resource_groups == []

    spawned = ok(lin.resource_group_spawn("rg1", "spawned", ["1G"], definitions_only=True))
    assert any(r.ret_code & apiconsts.MASK_INFO for r in spawned)  # INFO_NO_RSC_SPAWNED, nothing placed
    rds = lin.resource_dfn_list_raise(filter_by_resource_definitions=["spawned"]).resource_definitions
    assert [(rd.name, rd.resource_group_name) for rd in rds] == [("spawned", "rg1")]
    assert [(vd.number, vd.size) for vd in rds[0].volume_definitions] == [(0, 1 << 20)]


def test_spawn_places_with_the_groups_filter(lin: Any) -> None:
    ok(lin.resource_group_create("rg1", place_count=2, storage_pool="thinpool"))
    ok(lin.resource_group_spawn("rg1", "placed", ["64M"]))
    resources = lin.resource_list(filter_by_resources=["placed"])[0].resources
    assert len(resources) == 2
    assert {r.name for r in resources} == {"placed"}


def test_resource_definition_create_modify_list_delete(lin: Any) -> None:
    created = ok(lin.resource_dfn_create("vol1"))
    # python-linstor's high-level Resource reads rs[0].object_refs['RscDfn'].
    assert created[0].object_refs["RscDfn"] == "vol1"
    assert created[0].is_success()

    props = {"Aux/Incus/name": "foo", "Aux/Incus/type": "containers", "Aux/old": "x"}
    ok(lin.resource_dfn_modify("vol1", props))
    ok(lin.resource_dfn_modify("vol1", {}, delete_props=["Aux/old", "Aux/never-set"]))
    ok(lin.resource_dfn_create("vol2"))
    ok(lin.resource_dfn_modify("vol2", {"Aux/Incus/name": "foo", "Aux/Incus/type": "virtual-machines"}))

    filters = ["Aux/Incus/name=foo", "Aux/Incus/type=containers"]
    found = lin.resource_dfn_list_raise(filter_by_props=filters).resource_definitions
    assert [rd.name for rd in found] == ["vol1"]  # filters are ANDed
    assert found[0].properties == {"Aux/Incus/name": "foo", "Aux/Incus/type": "containers"}
    both = lin.resource_dfn_list_raise(filter_by_props=["Aux/Incus/name=foo"]).resource_definitions
    assert [rd.name for rd in both] == ["vol1", "vol2"]

    deleted = ok(lin.resource_dfn_delete("vol1"))
    assert any(code_of(r) == apiconsts.DELETED for r in deleted)
    names = [rd.name for rd in lin.resource_dfn_list_raise().resource_definitions]
    assert names == ["vol2"]


def test_volume_definition_create(lin: Any) -> None:
    ok(lin.resource_dfn_create("vol1"))
    created = ok(lin.volume_dfn_create("vol1", 1 << 20))
    assert created[0].ret_code == apiconsts.MASK_VLM_DFN | apiconsts.MASK_CRT | apiconsts.CREATED
    rd = lin.resource_dfn_list_raise(filter_by_resource_definitions=["vol1"]).resource_definitions[0]
    assert [(vd.number, vd.size) for vd in rd.volume_definitions] == [(0, 1 << 20)]


def test_auto_place_then_snapshot_create_list_delete(lin: Any) -> None:
    ok(lin.resource_dfn_create("vol1"))
    ok(lin.resource_dfn_modify("vol1", {"Aux/Incus/name": "foo"}))
    ok(lin.volume_dfn_create("vol1", 1 << 20))
    ok(lin.resource_auto_place("vol1", 2))
    nodes = sorted(r.node_name for r in lin.resource_list(filter_by_resources=["vol1"])[0].resources)
    assert len(nodes) == 2

    created = ok(lin.snapshot_create(None, "vol1", "snap1"))
    assert created[0].object_refs.get("Snapshot") == "snap1"
    snapshots = lin.snapshot_dfn_list(filter_by_resources=["vol1"])[0].snapshots
    assert [(s.name, s.resource_name) for s in snapshots] == [("snap1", "vol1")]
    assert sorted(snapshots[0].nodes) == nodes
    assert "SUCCESSFUL" in snapshots[0].flags
    assert snapshots[0].properties.get("Aux/Incus/name") == "foo"  # the RD's props at snapshot time
    assert [(v.number, v.size) for v in snapshots[0].snapshot_volume_definitions] == [(0, 1 << 20)]

    ok(lin.snapshot_delete("vol1", "snap1"))
    assert lin.snapshot_dfn_list(filter_by_resources=["vol1"])[0].snapshots == []


def test_create_twice_is_fail_exists(lin: Any) -> None:
    ok(lin.resource_dfn_create("vol1"))
    again = lin.resource_dfn_create("VOL1")
    assert len(again) == 1
    assert again[0].is_error()
    assert again[0].is_error(apiconsts.FAIL_EXISTS_RSC_DFN)
    assert code_of(again[0]) == apiconsts.FAIL_EXISTS_RSC_DFN & apiconsts.MASK_BITS_CODE
    assert again[0].object_refs == {"RscDfn": "VOL1"}


def test_delete_of_missing_rd_is_a_warning(lin: Any) -> None:
    replies = lin.resource_dfn_delete("nope")
    assert len(replies) == 1
    assert replies[0].is_warning()
    assert not replies[0].is_error()
    assert code_of(replies[0]) == apiconsts.WARN_NOT_FOUND & apiconsts.MASK_BITS_CODE


def test_delete_of_missing_snapshot_is_a_warning(lin: Any) -> None:
    ok(lin.resource_dfn_create("vol1"))
    replies = lin.snapshot_delete("vol1", "nope")
    assert [r.is_warning() and not r.is_error() for r in replies] == [True]


def test_modify_of_missing_rd_is_not_found(lin: Any) -> None:
    replies = lin.resource_dfn_modify("nope", {"Aux/a": "1"})
    assert replies[0].is_error(apiconsts.FAIL_NOT_FOUND_RSC_DFN)
    assert replies[0].message == "Resource definition 'nope' not found."


def test_non_aux_property_is_rejected(lin: Any) -> None:
    ok(lin.resource_dfn_create("vol1"))
    replies = lin.resource_dfn_modify("vol1", {"NoSuchNamespace/key": "1"})
    assert replies[0].is_error(apiconsts.FAIL_INVLD_PROP)
    assert lin.resource_dfn_list_raise().resource_definitions[0].properties == {}


def test_invalid_name_in_list_filter_raises(lin: Any) -> None:
    with pytest.raises(linstor.LinstorApiCallError) as raised:
        lin.resource_dfn_list_raise(filter_by_resource_definitions=["-bad"])
    assert raised.value.main_error.is_error(apiconsts.FAIL_INVLD_RSC_NAME)


def test_snapshot_needs_a_deployed_resource(lin: Any) -> None:
    ok(lin.resource_dfn_create("vol1"))
    ok(lin.volume_dfn_create("vol1", 1 << 20))
    replies = lin.snapshot_create(None, "vol1", "snap1")
    assert replies[0].is_error(apiconsts.FAIL_NOT_CONNECTED)
    assert lin.snapshot_dfn_list(filter_by_resources=["vol1"])[0].snapshots == []
