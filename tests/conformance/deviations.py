"""Known, named places where the LINSTOR controller's code answers differently from rest_v1_openapi.yaml.

Sections (§) refer to /work/shared/reference/linstor-rest-api.md. A deviation with `schemas` makes
SpecValidator validate the answer against what the code sends (a JSON pointer into the spec per HTTP status);
one without `schemas` is behavioural (the body still matches the spec's own schema, but the meaning
differs) and is only counted. Every deviation has a test of the same name in test_deviations.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import orjson
from linstor import sharedconsts as apiconsts

RC_LIST = "#/components/schemas/ApiCallRcList"
NODE_OBJECT = "#/components/schemas/Node"
RESOURCE_DEFINITION = "#/components/schemas/ResourceDefinition"
RESOURCE_GROUP = "#/components/schemas/ResourceGroup"
VOLUME_DEFINITION = "#/components/schemas/VolumeDefinition"
RESOURCE = "#/components/schemas/Resource"
CLONE_STARTED = "#/components/schemas/ResourceDefinitionCloneStarted"
OPERATION_FAILED = "#/components/responses/OperationFailed"

RD = "/v1/resource-definitions/{resource}"
RG = "/v1/resource-groups/{resource_group}"
VDS = "/v1/resource-definitions/{resource}/volume-definitions"
VD = "/v1/resource-definitions/{resource}/volume-definitions/{volume_number}"
RESOURCE_ON_NODE = "/v1/resource-definitions/{resource}/resources/{node}"
CLONE = "/v1/resource-definitions/{resource}/clone"
RDS = "/v1/resource-definitions"
NODES = "/v1/nodes"
NODE = "/v1/nodes/{node}"
RGS = "/v1/resource-groups"
SNAPSHOTS = "/v1/resource-definitions/{resource}/snapshots"
PAGED_LISTS = frozenset(
    {
        RDS,
        RGS,
        SNAPSHOTS,
        "/v1/view/snapshots",
        "/v1/view/resources",
        "/v1/resource-definitions/{resource}/resources",
    }
)

_U64 = 0xFFFFFFFFFFFFFFFF


class Exchange(Protocol):
    """What SpecValidator reads from an answer: the fields of app.emulator.ExchangeRecord."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> list[tuple[str, str]]: ...
    @property
    def request_body(self) -> bytes: ...
    @property
    def status(self) -> int: ...
    @property
    def response_body(self) -> bytes: ...
    @property
    def content_type(self) -> str: ...
    @property
    def route(self) -> str | None: ...


class _NoJson:
    """Marker for a body that is empty or not JSON."""

    def __repr__(self) -> str:
        return "NO_JSON"


NO_JSON: Any = _NoJson()


def ret_codes(body: Any) -> list[int]:
    """The ret_codes of an ApiCallRc list as unsigned 64-bit ints ([] if `body` is not such a list)."""
    if not isinstance(body, list):
        return []
    return [
        rc["ret_code"] & _U64 for rc in body if isinstance(rc, dict) and isinstance(rc.get("ret_code"), int)
    ]


def is_error(ret_code: int) -> bool:
    """ApiCallRc type test, as python-linstor's ApiCallResponse.is_error() does it."""
    return bool(ret_code & apiconsts.MASK_ERROR == apiconsts.MASK_ERROR)


def has_code(body: Any, code: int) -> bool:
    """True if an entry of the RC list `body` carries `code` in its low bits with the same type bits."""
    type_bits = code & apiconsts.MASK_ERROR
    return any(
        rc & apiconsts.MASK_BITS_CODE == code & apiconsts.MASK_BITS_CODE
        and rc & apiconsts.MASK_ERROR == type_bits
        for rc in ret_codes(body)
    )


@dataclass(frozen=True)
class Observed:
    """One answer as SpecValidator sees it: the record, its spec route and the spec's documented responses."""

    record: Exchange
    route: str | None
    responses: Mapping[str, Any] | None  # None: the spec has no such operation
    body: Any  # parsed JSON or NO_JSON

    def on(self, method: str, route: str) -> bool:
        """True for this method on this spec route."""
        return self.record.method == method and self.route == route

    def documents(self, status: int) -> bool:
        """True if the spec documents `status` (or a default) for this operation."""
        return self.responses is not None and (str(status) in self.responses or "default" in self.responses)

    def response_ref(self, status: int) -> str | None:
        """The `$ref` of the spec's response object for `status`, if it is a reference."""
        if self.responses is None:
            return None
        ref = self.responses.get(str(status), {}).get("$ref")
        return ref if isinstance(ref, str) else None

    @cached_property
    def query(self) -> dict[str, list[str]]:
        """Query parameters by name."""
        out: dict[str, list[str]] = {}
        for key, value in self.record.query:
            out.setdefault(key, []).append(value)
        return out

    @cached_property
    def request_json(self) -> Any:
        """The request body as JSON, or NO_JSON."""
        try:
            return orjson.loads(self.record.request_body) if self.record.request_body else NO_JSON
        except orjson.JSONDecodeError:
            return NO_JSON

    def query_int(self, name: str) -> int:
        """An integer query parameter (0 when absent or not a number), like JAX-RS's @DefaultValue("0")."""
        try:
            return int(self.query.get(name, ["0"])[-1])
        except ValueError:
            return 0


@dataclass(frozen=True)
class Deviation:
    """A named difference between the controller's code and the spec."""

    name: str
    section: str  # where linstor-rest-api.md documents it
    summary: str
    matches: Callable[[Observed], bool] = field(repr=False)
    schemas: Mapping[int, str] = field(default_factory=dict)  # status -> JSON pointer of what the code sends
    # rewrites what the code sends into what the spec documents before validation (value-level deviations)
    normalize: Callable[[Any], Any] | None = field(default=None, repr=False)


def path_not_found(o: Observed) -> bool:
    """True for LinstorMapper's "no such path" answer (GrizzlyHttpService.java:663-691)."""
    body = o.body
    return (
        o.record.status == 404
        and isinstance(body, list)
        and len(body) == 1
        and isinstance(body[0], dict)
        and body[0].get("message") == f"Path '{o.record.path}' not found on server."
    )


def _single_get(route: str) -> Callable[[Observed], bool]:
    # A "no such path" 404 means the route is not served at all: that is not this deviation.
    return lambda o: o.on("GET", route) and o.record.status in (200, 404, 500) and not path_not_found(o)


def _error_for_undocumented(status: int) -> Callable[[Observed], bool]:
    return lambda o: (
        o.record.status == status
        and o.responses is not None
        and str(status) not in o.responses
        and not path_not_found(o)  # the controller serves every operation of the spec
    )


def _unknown_path(o: Observed) -> bool:
    return o.responses is None and path_not_found(o)


def _method_not_allowed(o: Observed) -> bool:
    return o.record.status == 405 and o.route is not None and o.responses is None


def _delete_missing(o: Observed) -> bool:
    return (
        o.record.method == "DELETE" and o.record.status == 200 and has_code(o.body, apiconsts.WARN_NOT_FOUND)
    )


def _parse_error_500(o: Observed) -> bool:
    return o.record.status == 500 and o.documents(400) and has_code(o.body, apiconsts.API_CALL_PARSE_ERROR)


def _sent_field(route: str, name: str) -> Callable[[Observed], bool]:
    def matches(o: Observed) -> bool:
        body = o.request_json
        return (
            o.on("POST", route) and o.record.status < 300 and isinstance(body, dict) and bool(body.get(name))
        )

    return matches


def _limit_over_max(o: Observed) -> bool:
    return (
        o.record.method == "GET"
        and o.route in PAGED_LISTS
        and o.record.status == 200
        and o.query_int("limit") > 50
    )


def _offset_without_limit(o: Observed) -> bool:
    return (
        o.record.method == "GET"
        and o.route in PAGED_LISTS | {VDS}
        and o.record.status == 200
        and o.query_int("offset") > 0
        and o.query_int("limit") <= 0
    )


def _vd_list_paged(o: Observed) -> bool:
    return o.on("GET", VDS) and o.record.status == 200 and o.query_int("limit") > 0


def _vd_modify_namespaces(o: Observed) -> bool:
    body = o.request_json
    return o.on("PUT", VD) and isinstance(body, dict) and bool(body.get("delete_namespaces"))


def _rd_one_with_vds(o: Observed) -> bool:
    flags = [v.lower() for v in o.query.get("with_volume_definitions", [])]
    return o.on("GET", RD) and o.record.status == 200 and "true" in flags


def _props_filters(o: Observed) -> bool:
    return o.record.method == "GET" and o.route in (RDS, RGS) and len(o.query.get("props", [])) > 1


def _node_type_title_case(body: Any) -> Any:
    """Node.type as the spec spells it (`Satellite`), from the controller's enum name (`SATELLITE`)."""
    nodes = body if isinstance(body, list) else [body]
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("type"), str):
            node["type"] = node["type"].title()
    return body


# DeviceProviderKinds the controller reports that the spec's ProviderKind enum does not list
_PROVIDERS_BEYOND_SPEC = frozenset({"REMOTE_SPDK", "STORAGE_SPACES", "STORAGE_SPACES_THIN"})


def _node_providers_in_spec(body: Any) -> Any:
    """Node.storage_providers without the kinds the spec's ProviderKind enum lacks (REMOTE_SPDK)."""
    nodes = body if isinstance(body, list) else [body]
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("storage_providers"), list):
            providers = node["storage_providers"]
            node["storage_providers"] = [p for p in providers if p not in _PROVIDERS_BEYOND_SPEC]
    return body


def _null_refs_dropped(body: Any) -> Any:
    """The clone answer's messages without the null obj_refs values the spec cannot express."""
    for item in body.get("messages") or [] if isinstance(body, dict) else []:
        refs = item.get("obj_refs") if isinstance(item, dict) else None
        if isinstance(refs, dict):
            item["obj_refs"] = {k: v for k, v in refs.items() if v is not None}
    return body


def _clone_without_name(o: Observed) -> bool:
    body = o.body
    return (
        o.on("POST", CLONE)
        and o.record.status == 500
        and isinstance(body, dict)
        and any(
            isinstance(m, dict) and None in (m.get("obj_refs") or {}).values()
            for m in body.get("messages") or []
        )
    )


# Order matters: the first deviation that has a schema for the answer's status decides how it is validated.
DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "node-type-is-upper-case",
        "§2 (not in the reference: LINBIT's linstor-gui test fixtures show it)",
        "Node.type is the Java enum name (SATELLITE); the spec's enum says Controller/Satellite/...",
        lambda o: o.record.method == "GET" and o.route in (NODES, NODE) and o.record.status == 200,
        normalize=_node_type_title_case,
    ),
    Deviation(
        "node-providers-beyond-spec",
        "§2 (not in the reference: controller-api.jsonl #173 and #181 list REMOTE_SPDK)",
        "Node.storage_providers lists REMOTE_SPDK, a DeviceProviderKind the spec's ProviderKind enum lacks",
        lambda o: o.record.method == "GET" and o.route in (NODES, NODE) and o.record.status == 200,
        normalize=_node_providers_in_spec,
    ),
    Deviation(
        "node-get-one",
        "§1.5 (like the other single-object GETs)",
        "GET /v1/nodes/{node} exists (object; 404 RC list) but the spec has only PUT/DELETE",
        _single_get(NODE),
        {200: NODE_OBJECT, 404: RC_LIST, 500: RC_LIST},
    ),
    Deviation(
        "volume-definition-create-200",
        "§2.5, §2.9, §11",
        "POST …/volume-definitions answers 200 (mapToMonoResponse's default), the spec says 201",
        lambda o: o.on("POST", VDS) and o.record.status == 200,
        {200: RC_LIST},
    ),
    Deviation(
        "resource-definition-get-one",
        "§2.4, §1.5, §11",
        "GET /v1/resource-definitions/{rd} exists (object; 404/500 RC list) but the spec has only PUT/DELETE",
        _single_get(RD),
        {200: RESOURCE_DEFINITION, 404: RC_LIST, 500: RC_LIST},
    ),
    Deviation(
        "resource-group-get-one",
        "§2.3, §1.5, §11",
        "GET /v1/resource-groups/{rg} exists (object; 404/500 RC list) but the spec has only PUT/DELETE",
        _single_get(RG),
        {200: RESOURCE_GROUP, 404: RC_LIST, 500: RC_LIST},
    ),
    Deviation(
        "volume-definition-get-one",
        "§2.5, §1.5, §11",
        "GET …/volume-definitions/{nr} exists (object; 404 RC list) but the spec has only PUT/DELETE",
        _single_get(VD),
        {200: VOLUME_DEFINITION, 404: RC_LIST, 500: RC_LIST},
    ),
    Deviation(
        "resource-get-one",
        "§2.6, §1.5, §11",
        "GET …/resources/{node} exists (object; 404 RC list) but the spec has only POST/PUT/DELETE",
        _single_get(RESOURCE_ON_NODE),
        {200: RESOURCE, 404: RC_LIST, 500: RC_LIST},
    ),
    Deviation(
        "clone-failure-is-clone-started",
        "§2.8, §2.9",
        "a failed clone answers 500 with a CloneStarted object (errors in messages), not an ApiCallRc",
        lambda o: o.on("POST", CLONE) and o.record.status == 500,
        {500: CLONE_STARTED},
    ),
    Deviation(
        "clone-without-name-has-null-ref",
        "§2.8 (not in the reference: controller-api.jsonl #222)",
        'a clone request without a name answers with obj_refs {"RscDfn": null}; the spec\'s obj_refs values '
        "are non-null strings",
        _clone_without_name,
        normalize=_null_refs_dropped,
    ),
    Deviation(
        "operation-failed-is-rc-list",
        "§1.7, §3.1, §2.9",
        "500 answers are ApiCallRc lists; the spec's OperationFailed response documents a single ApiCallRc",
        lambda o: o.record.status == 500 and o.response_ref(500) == OPERATION_FAILED,
        {500: RC_LIST},
    ),
    Deviation(
        "not-found-is-404",
        "§1.5, §1.7, §2.9",
        "a missing object answers 404 with an RC list on operations whose spec documents no 404",
        _error_for_undocumented(404),
        {404: RC_LIST},
    ),
    Deviation(
        "business-error-is-500",
        "§1.7, §1.8, §2.9",
        "conflicts, invalid names/props and JSON errors answer 500 RC lists where the spec documents no 500",
        _error_for_undocumented(500),
        {500: RC_LIST},
    ),
    Deviation(
        "unknown-path-404",
        "§1.1",
        'a path the controller does not serve answers 404 [{"message": "Path \'…\' not found on server."}]',
        _unknown_path,
        {404: RC_LIST},
    ),
    Deviation(
        "method-not-allowed-405",
        "§1.1",
        "a known path with a method it does not serve answers 405 with an RC list",
        _method_not_allowed,
        {405: RC_LIST},
    ),
    # Behavioural deviations: the body matches the spec's schema, its meaning does not.
    Deviation(
        "delete-missing-warns-200",
        "§2.3, §2.4, §2.7, §2.9",
        "deleting a missing RD/RG/snapshot answers 200 with a WARN_NOT_FOUND entry (idempotent delete)",
        _delete_missing,
    ),
    Deviation(
        "json-parse-error-is-500",
        "§3.5",
        "a malformed body answers 500 API_CALL_PARSE_ERROR on endpoints whose spec promises 400 InvalidInput",
        _parse_error_500,
    ),
    Deviation(
        "resource-group-create-ignores-props",
        "§2.3, §11",
        "POST /v1/resource-groups ignores `props` although ResourceGroup documents them",
        _sent_field(RGS, "props"),
    ),
    Deviation(
        "snapshot-create-ignores-props",
        "§2.7, §11",
        "POST …/snapshots ignores `props` (only name, nodes, snapshot_definition_props are used)",
        _sent_field(SNAPSHOTS, "props"),
    ),
    Deviation(
        "limit-max-not-enforced",
        "§5.2, §11",
        "`limit` above the spec's maximum of 50 is honoured",
        _limit_over_max,
    ),
    Deviation(
        "offset-needs-limit",
        "§5.2, §11",
        "`offset` without a positive `limit` is ignored",
        _offset_without_limit,
    ),
    Deviation(
        "volume-definition-list-ignores-paging",
        "§2.5, §5.2, §11",
        "GET …/volume-definitions ignores offset/limit although the spec documents them",
        _vd_list_paged,
    ),
    Deviation(
        "volume-definition-modify-ignores-delete-namespaces",
        "§2.5, §11",
        "PUT …/volume-definitions/{nr} ignores delete_namespaces",
        _vd_modify_namespaces,
    ),
    Deviation(
        "resource-definition-get-one-without-volume-definitions",
        "§2.4, §11",
        "with_volume_definitions=true has no effect on the single-RD GET",
        _rd_one_with_vds,
    ),
    Deviation(
        "props-filters-are-anded",
        "§5.1, §9, §11",
        "repeated `props` filters are ANDed; this spec's Props parameter does not say how they combine",
        _props_filters,
    ),
)

BY_NAME: Mapping[str, Deviation] = {d.name: d for d in DEVIATIONS}
