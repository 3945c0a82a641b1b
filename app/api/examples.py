"""Examples in the OpenAPI document: one or more for every request body, one for every problem answer.

Request examples are valid requests (schemathesis sends them in its examples phase); problem examples show a
stable `code` each status is answered with (app/errors.py and the README list them all).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.api.common import PROBLEM_JSON

FINGERPRINT = "d21a26af7d5a95c3aa6e923257a1cb5cd765b102796b92ab111fb29ebfb86137"
INSTANCE = "/v1/pools/linstor/volumes"

# per operation (its name before the volume type), the examples of its body
BODIES: dict[str, dict[str, dict[str, Any]]] = {
    "create_volume": {
        "create": {
            "summary": "A container volume of 10 GiB",
            "value": {"name": "c1", "type": "container", "content_type": "filesystem", "size": "10GiB"},
        },
        "copy": {
            "summary": "A copy of container c1 (a LINSTOR clone)",
            "value": {"name": "c2", "type": "container", "source": {"type": "container", "name": "c1"}},
        },
        "from_snapshot": {
            "summary": "A custom volume from a snapshot of another, in project p1",
            "value": {
                "name": "restored",
                "type": "custom",
                "project": "p1",
                "source": {"type": "custom", "name": "data", "snapshot": "snap0"},
            },
        },
    },
    "create_snapshot": {"snapshot": {"summary": "A snapshot named snap0", "value": {"name": "snap0"}}},
    "rename_snapshot": {"rename": {"summary": "Rename the snapshot to snap1", "value": {"name": "snap1"}}},
    "restore_snapshot": {
        "latest": {"summary": "Restore the latest snapshot", "value": {"delete_newer_snapshots": False}},
        "older": {
            "summary": "Restore an older snapshot, deleting the newer ones",
            "value": {"delete_newer_snapshots": True},
        },
    },
    "repair_orphans": {
        "dry_run": {"summary": "Report what would be repaired", "value": {"apply": False}},
        "apply": {"summary": "Repair", "value": {"apply": True}},
    },
}
# a rename's new name follows the rules of the volume's type (the operationId's suffix)
RENAMES = {
    "container": "c2",
    "virtual_machine": "v2",
    "image": FINGERPRINT,
    "custom": "data-2",
}
# per problem status, one code it is answered with
PROBLEMS: dict[int, tuple[str, str, str]] = {
    400: ("malformed_json", "Malformed request body", "the request body is not valid JSON: Expecting value"),
    401: ("unauthenticated", "Unauthenticated", "a bearer token is required"),
    403: ("forbidden", "Forbidden", "the token 'ci' lacks the 'write' scope"),
    404: ("pool_not_found", "Not found", "Pool (resource group) 'linstor' not found"),
    409: ("volume_exists", "Conflict", "Volume container/c1 already exists in pool 'linstor'"),
    413: ("body_too_large", "Content too large", "Request bodies may be at most 65536 bytes"),
    422: ("invalid_name", "Invalid input", "Name must not start with \"-\" character: '-c1'"),
    502: ("linstor_bad_answer", "LINSTOR error", "LINSTOR answered something the service cannot read"),
    503: ("linstor_unavailable", "LINSTOR unavailable", "LINSTOR cannot be reached: connection refused"),
    504: ("linstor_timeout", "LINSTOR timeout", "LINSTOR did not answer in time"),
}


def problem_example(status: int) -> dict[str, Any]:
    """The example of a problem answer with `status`."""
    code, title, detail = PROBLEMS[status]
    value = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    return {code: {"summary": title, "value": {**value, "instance": INSTANCE}}}


def document_examples(app: FastAPI) -> None:
    """Add the examples to `app`'s OpenAPI document (last: after the security answers are documented)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        for item in document["paths"].values():
            for operation in item.values():
                _examples(operation)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _examples(operation: dict[str, Any]) -> None:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        name, _, vtype = operation["operationId"].partition("_volume_")
        if name == "rename":
            body["examples"] = {"rename": {"summary": "A new name", "value": {"name": RENAMES[vtype]}}}
        else:
            base = next(key for key in BODIES if operation["operationId"].startswith(key))
            body["examples"] = BODIES[base]
    for status, answer in operation["responses"].items():
        content = answer.get("content", {}).get(PROBLEM_JSON)
        if content is not None:
            content["examples"] = problem_example(int(status))
