"""The input rules in the OpenAPI document: what a request may hold, stated from the patterns the checks use.

Each rule has one definition, a regular expression of app/naming.py (or app/api/idempotency.py) that the
check runs; this module only states it, as a component schema every parameter and body field refers to.
What a name may be depends on the volume's type, a path segment, and OpenAPI cannot make one parameter's
schema depend on another: so each path with `{type}/{name}` is documented once per type
(`…/volumes/container/{name}`, …), with that type's name rule; at run time the one route serves them all.
The operationIds of those copies are the route's name and the type (`get_volume_container`).

What JSON Schema cannot state is said in words: a description's length in UTF-16 code units, the number a
size string with a unit stands for, and the rules that depend on stored state (a copy's content type).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from app.api.idempotency import KEY_RE, MAX_KEY_LENGTH
from app.errors import MalformedBody
from app.identity import VolumeType
from app.naming import (
    ALLOWED_CONTENT,
    DEFAULT_PROJECT,
    DESCRIPTION_RE,
    FINGERPRINT_RE,
    HOSTNAME_RE,
    LINSTOR_NAME_RE,
    MAX_PLAIN_NAME,
    MAX_PROJECT,
    MAX_PROP_VALUE,
    PLAIN_NAME_RE,
    PROJECT_RE,
    SNAPSHOT_NAME_RE,
    SURROGATES,
    Rule,
)

SCHEMAS = "#/components/schemas/"
# the component holding the name rule of each volume type
NAME_OF_TYPE = {
    VolumeType.CONTAINER: "InstanceName",
    VolumeType.VIRTUAL_MACHINE: "InstanceName",
    VolumeType.IMAGE: "ImageFingerprint",
    VolumeType.CUSTOM: "CustomVolumeName",
}
# the component of each parameter, by name, wherever it appears
PARAMETERS = {
    "pool": "PoolName",
    "project": "ProjectName",
    "snapshot": "SnapshotName",
    "linstor_name": "LinstorName",
    "Idempotency-Key": "IdempotencyKey",
}


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": SCHEMAS + name}


def _string(rule: Rule, description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": rule.low,
        "maxLength": rule.high,
        # lone surrogates cannot be named in most regex dialects (SURROGATES); the check refuses them anyway
        "pattern": rule.pattern.replace(SURROGATES, ""),
        "description": description,
    }


def input_schemas() -> dict[str, dict[str, Any]]:
    """The rules, one component each."""
    return {
        "PoolName": _string(LINSTOR_NAME_RE, "A LINSTOR resource group name."),
        "LinstorName": _string(LINSTOR_NAME_RE, "A LINSTOR resource definition or snapshot name."),
        "ProjectName": _string(
            PROJECT_RE,
            "Incus's project rules (no slashes, spaces, underscores or quotes; not `*`, `.` or `..`), no "
            f"control characters, at most {MAX_PROJECT} characters.",
        ),
        "InstanceName": _string(
            HOSTNAME_RE,
            "A container or virtual machine: a host name (Incus's validate.IsHostname): letters, digits and "
            "`-`, not first or last, not only digits, at most 63.",
        ),
        "ImageFingerprint": _string(FINGERPRINT_RE, "An image: its SHA-256 fingerprint."),
        "CustomVolumeName": _string(
            PLAIN_NAME_RE,
            "A custom volume: no whitespace, control or format characters (Unicode 14's Zs, Zl, Zp, Cc, Cf), "
            f"`/` or `\\`; not `.` or `..`; at most {MAX_PLAIN_NAME}.",
        ),
        "SnapshotName": _string(
            SNAPSHOT_NAME_RE,
            "Printable ASCII without spaces, `/`, `\\`, `*`, `=` or `,`; not `.` or `..`: it becomes part of "
            "a LINSTOR property key.",
        ),
        "Description": _string(
            DESCRIPTION_RE,
            f"One line (no control characters) of at most {MAX_PROP_VALUE} UTF-16 code units (an emoji "
            "counts twice), as LINSTOR counts a property value.",
        ),
        "IdempotencyKey": _string(
            KEY_RE,
            f'1 to {MAX_KEY_LENGTH} printable ASCII characters, bare or as an RFC 8941 string ("…").',
        ),
    }


def document_inputs(app: FastAPI) -> None:
    """State the input rules in `app`'s OpenAPI document (after the routers are included)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "PoolName" not in schemas:  # the document is built once and kept: state the rules once
            schemas.update(input_schemas())
            _bodies(schemas)
            for operation in _operations(document):
                _parameters(operation)
                _no_body_no_400(operation)
            document["paths"] = _paths_per_type(document["paths"])
            _links(document["paths"])
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in document["paths"].values() for op in item.values()]


def _parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        component = PARAMETERS.get(parameter["name"])
        if component is not None:
            described = {k: v for k, v in parameter["schema"].items() if k in ("default", "description")}
            parameter["schema"] = {**ref(component), **described}


def _no_body_no_400(operation: dict[str, Any]) -> None:
    """400 only where a body is read: an operation without one never answers it."""
    responses = operation["responses"]
    status = str(MalformedBody.status)
    if "requestBody" not in operation:
        responses.pop(status, None)


def _paths_per_type(paths: dict[str, Any]) -> dict[str, Any]:
    """Each `{type}/{name}` path once per volume type, with that type's name rule (see the module)."""
    out: dict[str, Any] = {}
    for path, item in paths.items():
        if "/{type}/{name}" not in path:
            out[path] = item
            continue
        for vtype in VolumeType:
            concrete = copy.deepcopy(item)
            for operation in concrete.values():
                _one_type(operation, vtype)
            out[path.replace("{type}", vtype.value)] = concrete
    return out


def _one_type(operation: dict[str, Any], vtype: VolumeType) -> None:
    operation["operationId"] += "_" + vtype.value.replace("-", "_")
    parameters = [p for p in operation["parameters"] if p["name"] != "type"]
    for parameter in parameters:
        if parameter["name"] == "name":
            parameter["schema"] = ref(NAME_OF_TYPE[vtype])
        if parameter["name"] == "project" and vtype is VolumeType.IMAGE:
            parameter["schema"] = {"const": DEFAULT_PROJECT, "default": DEFAULT_PROJECT}
            parameter["description"] = "Image volumes always belong to project 'default' (as in Incus)."
    operation["parameters"] = parameters
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body.get("schema") == ref("VolumeRename"):  # the new name follows the rules of the volume's type
        body["schema"] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {"name": ref(NAME_OF_TYPE[vtype])},
        }


def _bodies(schemas: dict[str, Any]) -> None:
    """Body fields refer to the rules; a create's name, content type and source depend on its type."""
    for model in ("SnapshotCreate", "SnapshotRename"):
        schemas[model]["properties"]["name"] = ref("SnapshotName")
    create, source = schemas["VolumeCreate"], schemas["VolumeSource"]
    create["properties"]["project"] = {**ref("ProjectName"), "default": DEFAULT_PROJECT}
    create["properties"]["description"] = {"anyOf": [ref("Description"), {"type": "null"}]}
    for field in ("project", "pool", "snapshot"):
        component = "PoolName" if field == "pool" else PARAMETERS[field]
        source["properties"][field] = {"anyOf": [ref(component), {"type": "null"}], **_words(source, field)}
    source["oneOf"] = [_source_of_type(vtype) for vtype in VolumeType]
    create["allOf"] = [
        {"oneOf": [_create_of_type(vtype) for vtype in VolumeType]},
        # a size makes a new volume, a source a copy (which has its source's size): one of the two
        {
            "oneOf": [
                {"required": ["size"], "properties": {"size": {"not": {"type": "null"}}, "source": NULL}},
                {"required": ["source"], "properties": {"source": {"not": {"type": "null"}}, "size": NULL}},
            ]
        },
        # an image source lives in project 'default'; without a project of its own it takes the new volume's
        {
            "anyOf": [
                {"properties": {"source": {"not": IMAGE_SOURCE}}},
                {
                    "properties": {
                        "source": {"required": ["project"], "properties": {"project": {"not": NULL}}}
                    }
                },
                {"properties": {"project": {"const": DEFAULT_PROJECT}}},
            ]
        },
    ]


NULL = {"type": "null"}
IMAGE_SOURCE = {"type": "object", "required": ["type"], "properties": {"type": {"const": "image"}}}


def _words(schema: dict[str, Any], field: str) -> dict[str, Any]:
    description = schema["properties"][field].get("description")
    return {"description": description} if description else {}


def _source_of_type(vtype: VolumeType) -> dict[str, Any]:
    properties: dict[str, Any] = {"type": {"const": vtype.value}, "name": ref(NAME_OF_TYPE[vtype])}
    if vtype is VolumeType.IMAGE:
        properties["project"] = {"anyOf": [{"const": DEFAULT_PROJECT}, NULL]}
    return {"properties": properties}


def _create_of_type(vtype: VolumeType) -> dict[str, Any]:
    allowed = sorted(c.value for c in ALLOWED_CONTENT[vtype])
    # copies keep their type, except that instances are made from images (app/builds.py, copy_type)
    sources = sorted({vtype.value, VolumeType.IMAGE.value})
    properties: dict[str, Any] = {
        "type": {"const": vtype.value},
        "name": ref(NAME_OF_TYPE[vtype]),
        "content_type": {"anyOf": [{"enum": allowed}, NULL]},
        "source": {"anyOf": [NULL, {"properties": {"type": {"enum": sources}}}]},
    }
    if vtype is VolumeType.IMAGE:
        properties["project"] = {"const": DEFAULT_PROJECT}
    return {"properties": properties}


def _links(paths: dict[str, Any]) -> None:
    """OpenAPI links from what an operation answers to the operations on what it made or renamed, within one
    volume type (clients and schemathesis's stateful phase follow them). A create's links come from its
    Location header, the one place that names the type."""
    by_id = {op["operationId"]: op for item in paths.values() for op in item.values()}
    volume = {
        "pool": "$request.path.pool",
        "name": "$response.body#/name",
        "project": "$response.body#/project",
    }
    snapshot = {
        "pool": "$request.path.pool",
        "name": "$request.path.name",
        "project": "$request.query.project",
        "snapshot": "$response.body#/name",
    }
    sources = [
        ("rename_volume", "200", volume, ("get_volume", "delete_volume", "create_snapshot")),
        ("create_snapshot", "201", snapshot, ("get_snapshot", "rename_snapshot", "restore_snapshot")),
        ("rename_snapshot", "200", snapshot, ("get_snapshot", "delete_snapshot")),
    ]
    for vtype in VolumeType:
        suffix = "_" + vtype.value.replace("-", "_")
        for source, status, parameters, targets in sources:
            links = by_id[source + suffix]["responses"][status].setdefault("links", {})
            for target in targets:
                links[target] = {"operationId": target + suffix, "parameters": dict(parameters)}
