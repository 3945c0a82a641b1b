"""The spec validator itself, fed with hand-made answers (no emulator needed)."""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conformance.deviations import DEVIATIONS
from tests.conformance.spec import SpecValidator
from tests.support.ret_codes import RAW_RD_NOT_FOUND, RD_CREATE_EXISTS, RD_CREATED

UUID = "5f0c3c49-8d0e-4a43-9b58-0e7b8c1f2d11"
CREATED_AT = "2026-06-02T10:00:00.123456789+02:00"


@dataclass(frozen=True)
class Record:
    """An ExchangeRecord look-alike (same fields as app.emulator.ExchangeRecord)."""

    method: str
    path: str
    status: int
    response_body: bytes
    route: str | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    request_body: bytes = b""
    content_type: str = "application/json"


def answer(method: str, path: str, status: int, body: Any, **kwargs: Any) -> Record:
    """A record whose response body is `body` as JSON."""
    return Record(method, path, status, orjson.dumps(body), **kwargs)


def rc(ret_code: int, message: str, **extra: Any) -> dict[str, Any]:
    """One ApiCallRc entry."""
    return {"ret_code": ret_code, "message": message, "created_at": CREATED_AT, **extra}


RD_OBJECT = {
    "name": "vol1",
    "props": {"Aux/Incus/name": "foo"},
    "layer_data": [
        {"type": "DRBD", "data": {"peer_slots": 7, "al_stripes": 1, "al_stripe_size_kib": 32, "down": False}},
        {"type": "STORAGE"},
    ],
    "uuid": UUID,
    "resource_group_name": "DfltRscGrp",
}


@pytest.fixture(scope="module")
def validator() -> SpecValidator:
    """A private validator (the session one collects the emulator's answers)."""
    return SpecValidator.load()


def test_good_list_answer_passes(validator: SpecValidator) -> None:
    record = answer("GET", "/v1/resource-definitions", 200, [RD_OBJECT], route="/v1/resource-definitions")
    assert validator.check(record) == []


def test_good_rc_list_passes(validator: SpecValidator) -> None:
    body = [
        rc(RD_CREATED, "New resource definition 'vol1' created.", obj_refs={"RscDfn": "vol1", "UUID": UUID})
    ]
    assert validator.check(answer("POST", "/v1/resource-definitions", 201, body)) == []


def test_route_is_found_without_record_route(validator: SpecValidator) -> None:
    assert validator.match("/v1/resource-definitions/vol1/snapshots/snap1") == (
        "/v1/resource-definitions/{resource}/snapshots/{snapshot}"
    )
    # JAX-RS prefers literal segments over parameters.
    assert validator.match("/v1/resource-definitions/properties/info") == (
        "/v1/resource-definitions/properties/info"
    )
    # `{key : .*}` takes the rest of the path (controller property keys contain '/').
    assert validator.match("/v1/controller/properties/Aux/x/y") == "/v1/controller/properties/{key}"


def test_wrong_type_fails(validator: SpecValidator) -> None:
    body = [{**RD_OBJECT, "props": {"Aux/Incus/name": 1}}]
    failures = validator.check(answer("GET", "/v1/resource-definitions", 200, body))
    assert len(failures) == 1
    assert "0/props/Aux/Incus/name" in failures[0]
    assert "not of type 'string'" in failures[0]


def test_missing_required_field_fails(validator: SpecValidator) -> None:
    body = [{"ret_code": RD_CREATED}]
    failures = validator.check(answer("POST", "/v1/resource-definitions", 201, body))
    assert failures
    assert "'message' is a required property" in failures[0]


def test_undocumented_field_inside_one_of_is_named(validator: SpecValidator) -> None:
    layer = {"type": "DRBD", "data": {"peer_slots": 7, "al_size": 32}}
    body = [{**RD_OBJECT, "layer_data": [layer]}]
    failures = validator.check(answer("GET", "/v1/resource-definitions", 200, body))
    assert failures
    assert "0/layer_data/0/data: " in failures[0]
    assert "'al_size' was unexpected" in failures[0]


def test_undocumented_field_fails(validator: SpecValidator) -> None:
    # A misspelt field would otherwise pass: the controller's DTOs are generated from the spec.
    body = [{**RD_OBJECT, "volume_definition": []}]
    failures = validator.check(answer("GET", "/v1/resource-definitions", 200, body))
    assert failures
    assert "'volume_definition' was unexpected" in failures[0]


def test_int64_overflow_fails(validator: SpecValidator) -> None:
    body = [rc(0xC0000000013801F5, "unsigned instead of a Java long")]
    assert validator.check(answer("POST", "/v1/resource-definitions", 500, body))


def test_bad_timestamp_fails(validator: SpecValidator) -> None:
    body = [{"ret_code": RD_CREATED, "message": "m", "created_at": "yesterday"}]
    assert validator.check(answer("POST", "/v1/resource-definitions", 201, body))


def test_undocumented_status_fails(validator: SpecValidator) -> None:
    failures = validator.check(answer("POST", "/v1/resource-definitions", 202, []))
    assert failures == [
        "POST /v1/resource-definitions -> 202: status 202 not in the spec (documents 201, 400, 500)"
        " and no deviation names it"
    ]


def test_unknown_route_fails(validator: SpecValidator) -> None:
    failures = validator.check(answer("GET", "/v1/no-such-thing", 200, []))
    assert failures
    assert "path is not in the spec" in failures[0]


def test_unknown_route_template_fails(validator: SpecValidator) -> None:
    record = answer("GET", "/v1/volumes", 200, [], route="/v1/volumes")
    assert validator.check(record) == [
        "GET /v1/volumes -> 200: route '/v1/volumes' is not a path of the spec"
    ]


def test_route_less_specific_than_spec_fails(validator: SpecValidator) -> None:
    record = answer(
        "GET",
        "/v1/resource-definitions/properties/info",
        200,
        RD_OBJECT,
        route="/v1/resource-definitions/{resource}",
    )
    failures = validator.check(record)
    assert failures
    assert "best match is '/v1/resource-definitions/properties/info'" in failures[0]


def test_undocumented_method_fails(validator: SpecValidator) -> None:
    failures = validator.check(answer("PATCH", "/v1/resource-definitions/vol1", 200, []))
    assert failures == [
        "PATCH /v1/resource-definitions/vol1 -> 200: the spec has no PATCH on"
        " /v1/resource-definitions/{resource} (and no deviation)"
    ]


def test_wrong_content_type_fails(validator: SpecValidator) -> None:
    record = answer("GET", "/v1/resource-definitions", 200, [], content_type="text/plain")
    assert validator.check(record) == [
        "GET /v1/resource-definitions -> 200: Content-Type 'text/plain', not application/json"
    ]


def test_non_json_body_fails(validator: SpecValidator) -> None:
    record = Record("GET", "/v1/resource-definitions", 200, b"<html>")
    failures = validator.check(record)
    assert failures
    assert "body is not JSON" in failures[0]


def test_operation_failed_is_validated_as_rc_list(validator: SpecValidator) -> None:
    entry = rc(RD_CREATE_EXISTS, "A resource definition with the name 'vol1' already exists")
    assert validator.check(answer("POST", "/v1/resource-definitions", 500, [entry])) == []
    # The spec's OperationFailed is a single ApiCallRc, which is not what the code sends.
    failures = validator.check(answer("POST", "/v1/resource-definitions", 500, entry))
    assert failures
    assert "deviation operation-failed-is-rc-list" in failures[0]


def test_undocumented_single_get_is_validated_as_object(validator: SpecValidator) -> None:
    path = "/v1/resource-definitions/vol1"
    assert validator.check(answer("GET", path, 200, RD_OBJECT)) == []
    assert validator.check(answer("GET", path, 200, [RD_OBJECT]))
    not_found = [rc(RAW_RD_NOT_FOUND, "Resource definition 'vol1' not found.")]
    assert validator.check(answer("GET", path, 404, not_found)) == []


def test_volume_definition_create_200_is_validated(validator: SpecValidator) -> None:
    path = "/v1/resource-definitions/vol1/volume-definitions"
    assert validator.check(answer("POST", path, 200, [rc(19922945, "New volume definition created.")])) == []
    assert validator.check(answer("POST", path, 200, {"ret_code": 19922945}))


def test_clone_failure_is_validated_as_clone_started(validator: SpecValidator) -> None:
    body = {
        "location": "/v1/resource-definitions/src/clone/dst",
        "source_name": "src",
        "clone_name": "dst",
        "messages": [rc(RD_CREATE_EXISTS, "exists")],
    }
    path = "/v1/resource-definitions/src/clone"
    assert validator.check(answer("POST", path, 500, body)) == []
    assert validator.check(answer("POST", path, 500, body["messages"]))


def test_unknown_path_404_needs_the_controllers_message(validator: SpecValidator) -> None:
    message = "Path '/v1/no-such-thing' not found on server."
    ok = answer("GET", "/v1/no-such-thing", 404, [rc(-4611686018427386906, message)])
    assert validator.check(ok) == []
    other = answer("GET", "/v1/no-such-thing", 404, [rc(-4611686018427386906, "gone")])
    assert validator.check(other)


def test_served_path_must_not_answer_path_not_found(validator: SpecValidator) -> None:
    message = "Path '/v1/resource-definitions/vol1' not found on server."
    record = answer("PUT", "/v1/resource-definitions/vol1", 404, [rc(-4611686018427386906, message)])
    assert validator.check(record)


def test_observe_collects_and_take_clears(validator: SpecValidator) -> None:
    validator.take_failures()
    bad = answer("GET", "/v1/no-such-thing", 200, [])
    threads = [threading.Thread(target=validator.observe, args=(bad,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(validator.take_failures()) == 8
    assert validator.take_failures() == []


def test_observe_never_raises(validator: SpecValidator) -> None:
    validator.take_failures()
    broken: Any = Record("GET", "/v1/resource-definitions", 200, b"[]", route=42)  # type: ignore[arg-type]
    validator.observe(broken)
    failures = validator.take_failures()
    assert len(failures) == 1


def test_deviation_hits_are_counted(validator: SpecValidator) -> None:
    before = validator.hits["volume-definition-create-200"]
    path = "/v1/resource-definitions/vol1/volume-definitions"
    validator.check(answer("POST", path, 200, [rc(19922945, "created")]))
    assert validator.hits["volume-definition-create-200"] == before + 1


def test_every_deviation_is_named_sourced_and_tested() -> None:
    names = [d.name for d in DEVIATIONS]
    assert len(names) == len(set(names))
    assert all(d.section.startswith("§") for d in DEVIATIONS)
    tree = ast.parse((Path(__file__).parent / "test_deviations.py").read_text())
    tests = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    missing = [n for n in names if "test_" + n.replace("-", "_") not in tests]
    assert missing == []


def test_spec_env_variable_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("openapi: 3.0.2\npaths: {}\ncomponents: {}\n")
    monkeypatch.setenv("LINSTOR_NAMES_SPEC", str(spec))
    assert SpecValidator.load().template_names == frozenset()


def test_spec_is_linbits_verbatim() -> None:
    """The vendored spec is byte-for-byte the one of linstor-server 1.34.0-rc.1 (REST API 1.28.0)."""
    import hashlib

    from tests.conformance.spec import DEFAULT_SPEC

    digest = hashlib.sha256(DEFAULT_SPEC.read_bytes()).hexdigest()
    assert digest == "38a23338a753d6914d1b77afd3878676b8cb9f64de2cd6371736a8a501915a6f"
