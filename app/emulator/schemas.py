"""Request DTO field lists: Jackson's FAIL_ON_UNKNOWN_PROPERTIES makes unknown fields a parse error (§1.3)."""

from __future__ import annotations

from typing import Any

_J = "com.linbit.linstor.api.rest.v1.serializer.JsonGenTypes$"

Schema = dict[str, Any]  # {"class": str, "fields": {name: Schema | None}, "list_of": Schema}

SELECT_FILTER: Schema = {
    "class": "AutoSelectFilter",
    "fields": dict.fromkeys(
        [
            "place_count",
            "additional_place_count",
            "node_name_list",
            "storage_pool",
            "storage_pool_list",
            "storage_pool_diskless_list",
            "not_place_with_rsc",
            "not_place_with_rsc_regex",
            "replicas_on_same",
            "replicas_on_different",
            "x_replicas_on_different_map",
            "layer_stack",
            "provider_list",
            "diskless_on_remaining",
            "diskless_type",
            "overprovision",
            "port_count",
        ]
    ),
}
_RD: Schema = {
    "class": "ResourceDefinition",
    "fields": dict.fromkeys(
        [
            "name",
            "external_name",
            "props",
            "flags",
            "layer_data",
            "uuid",
            "resource_group_name",
            "volume_definitions",
        ]
    ),
}
_VD: Schema = {
    "class": "VolumeDefinition",
    "fields": dict.fromkeys(["volume_number", "size_kib", "props", "flags", "layer_data", "uuid"]),
}
_RSC: Schema = {
    "class": "Resource",
    "fields": dict.fromkeys(
        [
            "name",
            "node_name",
            "props",
            "effective_props",
            "flags",
            "layer_object",
            "state",
            "uuid",
            "create_timestamp",
        ]
    ),
}
_PROPS_MODIFY = ["override_props", "delete_props", "delete_namespaces"]

RD_CREATE: Schema = {
    "class": "ResourceDefinitionCreate",
    "fields": {
        "drbd_port": None,
        "drbd_secret": None,
        "drbd_peer_slots": None,
        "drbd_transport_type": None,
        "resource_definition": _RD,
    },
}
RD_MODIFY: Schema = {
    "class": "ResourceDefinitionModify",
    "fields": dict.fromkeys(
        [*_PROPS_MODIFY, "drbd_port", "drbd_peer_slots", "layer_stack", "resource_group"]
    ),
}
RG_CREATE: Schema = {
    "class": "ResourceGroup",
    "fields": {
        **dict.fromkeys(["name", "description", "props", "uuid", "peer_slots"]),
        "select_filter": SELECT_FILTER,
    },
}
RG_MODIFY: Schema = {
    "class": "ResourceGroupModify",
    "fields": {
        **dict.fromkeys(["description", *_PROPS_MODIFY, "peer_slots", "snap_names", "copy_all_snaps"]),
        "select_filter": SELECT_FILTER,
    },
}
RG_SPAWN: Schema = {
    "class": "ResourceGroupSpawn",
    "fields": {
        **dict.fromkeys(
            [
                "resource_definition_name",
                "resource_definition_external_name",
                "volume_sizes",
                "partial",
                "definitions_only",
                "peer_slots",
                "volume_passphrases",
                "resource_definition_props",
            ]
        ),
        "select_filter": SELECT_FILTER,
    },
}
VD_CREATE: Schema = {
    "class": "VolumeDefinitionCreate",
    "fields": {"volume_definition": _VD, "drbd_minor_number": None, "passphrase": None},
}
VD_MODIFY: Schema = {
    "class": "VolumeDefinitionModify",
    "fields": dict.fromkeys(["size_kib", *_PROPS_MODIFY, "flags"]),
}
RSC_CREATE: Schema = {
    "class": "ResourceCreate",
    "fields": {
        "resource": _RSC,
        **dict.fromkeys(
            [
                "layer_list",
                "drbd_node_id",
                "drbd_tcp_port_count",
                "drbd_tcp_ports",
                "snap_names",
                "copy_all_snaps",
                "drbd_client",
            ]
        ),
    },
}
RSC_CREATE_LIST: Schema = {"class": "ResourceCreate", "list_of": RSC_CREATE}
AUTOPLACE: Schema = {
    "class": "AutoPlaceRequest",
    "fields": {
        **dict.fromkeys(["diskless_on_remaining", "layer_list", "snap_names", "copy_all_snaps"]),
        "select_filter": SELECT_FILTER,
    },
}
SNAPSHOT: Schema = {
    "class": "Snapshot",
    "fields": dict.fromkeys(
        [
            "name",
            "resource_name",
            "nodes",
            "props",
            "snapshot_definition_props",
            "resource_definition_props",
            "flags",
            "volume_definitions",
            "uuid",
            "snapshots",
        ]
    ),
}
SNAPSHOT_MODIFY: Schema = {"class": "SnapshotModify", "fields": dict.fromkeys(_PROPS_MODIFY)}
SNAPSHOT_RESTORE: Schema = {
    "class": "SnapshotRestore",
    "fields": dict.fromkeys(["to_resource", "nodes", "stor_pool_rename"]),
}
SNAPSHOT_ROLLBACK: Schema = {"class": "SnapshotRollback", "fields": dict.fromkeys(["zfs_rollback_strategy"])}
MULTI_SNAPSHOT: Schema = {
    "class": "CreateMultiSnapshotRequest",
    "fields": {"snapshots": {"class": "Snapshot", "list_of": SNAPSHOT}},
}
CLONE: Schema = {
    "class": "ResourceDefinitionCloneRequest",
    "fields": dict.fromkeys(
        [
            "name",
            "external_name",
            "use_zfs_clone",
            "layer_list",
            "volume_passphrases",
            "resource_group",
            *_PROPS_MODIFY,
        ]
    ),
}
CTRL_PROPS: Schema = {"class": "ControllerPropsModify", "fields": dict.fromkeys(_PROPS_MODIFY)}

_MAPS = {"props", "override_props", "resource_definition_props", "snapshot_definition_props"}
_STR_LISTS = {"delete_props", "delete_namespaces", "nodes", "node_name_list", "storage_pool_list", "flags"}


def schema_problem(value: Any, schema: Schema) -> str | None:
    """A Jackson-like message when `value` does not fit the DTO (unknown field, wrong container type)."""
    if "list_of" in schema:
        if not isinstance(value, list):
            return f"Cannot deserialize `java.util.ArrayList<{_J}{schema['class']}>` from non-array value"
        for item in value:
            problem = schema_problem(item, schema["list_of"])
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return f"Cannot construct instance of `{_J}{schema['class']}`: no delegate- or property-based Creator"
    fields: dict[str, Any] = schema["fields"]
    for key, item in value.items():
        if key not in fields:
            known = len(fields)
            return (
                f'Unrecognized field "{key}" (class {_J}{schema["class"]}), not marked as ignorable '
                f"({known} known properties)"
            )
        nested = fields[key]
        if nested is not None and item is not None:
            problem = schema_problem(item, nested)
            if problem:
                return problem
        elif key in _MAPS and item is not None:
            if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
                return (
                    f'Cannot deserialize value of type `java.util.HashMap<String,String>` for field "{key}"'
                )
        elif key in _STR_LISTS and item is not None:
            if not isinstance(item, list) or not all(isinstance(v, str) for v in item):
                return f'Cannot deserialize value of type `java.util.ArrayList<String>` for field "{key}"'
    return None
