"""LINBIT's python-linstor 1.29.1 drives the emulator over real HTTP (linstor-rest-api.md §8)."""

from __future__ import annotations

from typing import Any

import linstor

from app.emulator import EmulatorState, create_emulator_app
from tests.support.server import serve


def _ok(replies: list[Any]) -> None:
    assert replies, "no reply"
    assert all(not r.is_error() for r in replies), [str(r) for r in replies]


def test_python_linstor_workflow() -> None:
    state = EmulatorState()
    with serve(create_emulator_app(state=state)) as url:
        lin = linstor.Linstor(url.replace("http://", "linstor://"), timeout=10)
        lin.connect()
        try:
            _ok(
                lin.resource_group_create(
                    "rg1", place_count=2, storage_pool="thinpool", property_dict={"Aux/x": "1"}
                )
            )
            groups = lin.resource_group_list_raise(filter_by_resource_groups=["rg1"])
            assert [g.name for g in groups.resource_groups] == ["rg1"]
            _ok(lin.resource_group_spawn("rg1", "spawned", ["1G"], definitions_only=True))

            _ok(lin.resource_dfn_create("vol1", resource_group="rg1"))
            _ok(lin.resource_dfn_modify("vol1", {"Aux/Incus/name": "foo", "Aux/Incus/type": "containers"}))
            _ok(lin.volume_dfn_create("vol1", 1048576))
            _ok(lin.resource_auto_place("vol1", 2))
            rds = lin.resource_dfn_list_raise(
                filter_by_props=["Aux/Incus/name=foo", "Aux/Incus/type=containers"]
            )
            assert [rd.name for rd in rds.resource_definitions] == ["vol1"]
            assert rds.resource_definitions[0].properties["Aux/Incus/name"] == "foo"
            assert (
                lin.resource_dfn_list_raise(filter_by_props=["Aux/Incus/name=bar"]).resource_definitions == []
            )

            resources = lin.resource_list_raise(filter_by_resources=["vol1"])
            assert sorted(r.node_name for r in resources.resources) == ["server01", "server02"]

            _ok(lin.snapshot_create(None, "vol1", "snap1"))
            snaps = lin.snapshot_dfn_list_raise(filter_by_resources=["vol1"])
            assert [s.name for s in snaps.snapshots] == ["snap1"]
            # service-traffic.jsonl #58: RD props at snapshot time plus the controller's own
            assert snaps.snapshots[0].properties == {
                "Aux/Incus/name": "foo",
                "Aux/Incus/type": "containers",
                "BackupShipping/BackupNodeIdsToReset": "",
                "DrbdOptions/Resource/quorum": "off",
                "SequenceNumber": "1",
            }
            refused = lin.resource_dfn_delete("vol1")
            assert refused[0].is_error()
            _ok(lin.snapshot_delete("vol1", "snap1"))
            _ok(lin.resource_dfn_delete("vol1"))
            assert lin.resource_dfn_delete("vol1")[0].is_warning()
        finally:
            lin.disconnect()
