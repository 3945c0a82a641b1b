"""Request DTO field lists: Jackson's FAIL_ON_UNKNOWN_PROPERTIES makes unknown fields a parse error (§1.3)."""

from __future__ import annotations

from typing import Any

from app.emulator.shapes import FILTER_FIELDS

JSON_TYPES = "com.linbit.linstor.api.rest.v1.serializer.JsonGenTypes$"

# {"class": str, "fields": {name: Schema | None}, "list_of": Schema}; fields in the SPEC's order, which is
# the declaration order of JsonGenTypes and decides Jackson's "known properties" list (jackson.py)
Schema = dict[str, Any]

SELECT_FILTER: Schema = {
    "class": "AutoSelectFilter",
    "fields": dict.fromkeys(FILTER_FIELDS),
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
        **dict.fromkeys(["name", "description", "props"]),
        "select_filter": SELECT_FILTER,
        **dict.fromkeys(["uuid", "peer_slots"]),
    },
}
RG_MODIFY: Schema = {
    "class": "ResourceGroupModify",
    "fields": {
        **dict.fromkeys(["description", *_PROPS_MODIFY]),
        "select_filter": SELECT_FILTER,
        **dict.fromkeys(["peer_slots", "snap_names", "copy_all_snaps"]),
    },
}
RG_SPAWN: Schema = {
    "class": "ResourceGroupSpawn",
    "fields": {
        **dict.fromkeys(["resource_definition_name", "resource_definition_external_name", "volume_sizes"]),
        "select_filter": SELECT_FILTER,
        **dict.fromkeys(
            [
                "partial",
                "definitions_only",
                "peer_slots",
                "volume_passphrases",
                "resource_definition_props",
            ]
        ),
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
        "diskless_on_remaining": None,
        "select_filter": SELECT_FILTER,
        **dict.fromkeys(["layer_list", "snap_names", "copy_all_snaps"]),
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
_NET_INTERFACE: Schema = {
    "class": "NetInterface",
    "fields": dict.fromkeys(
        ["name", "address", "satellite_port", "satellite_encryption_type", "is_active", "uuid"]
    ),
}
NODE_CREATE: Schema = {
    "class": "Node",
    "fields": {
        **dict.fromkeys(
            [
                "name",
                "type",
                "flags",
                "props",
            ]
        ),
        "net_interfaces": {"class": "NetInterface", "list_of": _NET_INTERFACE},
        **dict.fromkeys(
            [
                "connection_status",
                "uuid",
                "storage_providers",
                "resource_layers",
                "unsupported_providers",
                "unsupported_layers",
                "eviction_timestamp",
                "platform",
                "os_variant",
            ]
        ),
    },
}
STORAGE_POOL: Schema = {
    "class": "StoragePool",
    "fields": dict.fromkeys(
        [
            "storage_pool_name",
            "node_name",
            "provider_kind",
            "props",
            "static_traits",
            "free_capacity",
            "total_capacity",
            "free_space_mgr_name",
            "uuid",
            "reports",
            "supports_snapshots",
            "shared_space",
            "external_locking",
        ]
    ),
}
MAKE_AVAILABLE: Schema = {
    "class": "ResourceMakeAvailable",
    "fields": dict.fromkeys(["layer_list", "diskful", "drbd_tcp_ports", "snap_names", "copy_all_snaps"]),
}

_MAPS = {"props", "override_props", "resource_definition_props", "snapshot_definition_props"}
_STR_LISTS = {"delete_props", "delete_namespaces", "nodes", "node_name_list", "storage_pool_list", "flags"}


def schema_problem(value: Any, schema: Schema) -> str | None:
    """A Jackson-like message when `value` does not fit the DTO (unknown field, wrong container type)."""
    if "list_of" in schema:
        if not isinstance(value, list):
            array = f"java.util.ArrayList<{JSON_TYPES}{schema['class']}>"
            return f"Cannot deserialize `{array}` from non-array value"
        for item in value:
            problem = schema_problem(item, schema["list_of"])
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        creator = "no delegate- or property-based Creator"
        return f"Cannot construct instance of `{JSON_TYPES}{schema['class']}`: {creator}"
    fields: dict[str, Any] = schema["fields"]
    for key, item in value.items():
        if key not in fields:
            # only a signal: jackson.read words it, with the known properties and the location
            return f'Unrecognized field "{key}"'
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
