"""The committed openapi.json is what the app generates (regenerate with `make openapi`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed

from app.errors import MalformedBody, answers
from app.main import create_app
from app.settings import Settings

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.json"
README = (COMMITTED.parent / "README.md").read_text()


def test_committed_openapi_is_current() -> None:
    generated = create_app(Settings(cache_url="none")).openapi()
    committed = json.loads(COMMITTED.read_text())
    assert committed == generated, "openapi.json is stale: run `make openapi` and commit it"


def test_operation_ids_are_stable_function_names() -> None:
    spec = create_app(Settings(cache_url="none")).openapi()
    ids = sorted(op["operationId"] for path in spec["paths"].values() for op in path.values())
    assert "create_volume" in ids
    assert "resolve" in ids
    assert len(ids) == len(set(ids))


def test_every_error_response_is_problem_json() -> None:
    spec = create_app(Settings(cache_url="none")).openapi()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and path not in ("/readyz",):
                    assert "application/problem+json" in response["content"], (method, path, status)


def test_error_answers_come_from_the_error_tree_as_problem_json_only() -> None:
    """Every operation that reaches the domain documents every status of app/errors.py, and problem
    bodies only as application/problem+json (issue 9: 502 was documented on create only)."""
    spec = create_app(Settings(cache_url="none")).openapi()
    for path, item in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            documented = {int(s) for s in op["responses"] if s.startswith(("4", "5"))}
            refusals = {401, 403} if "security" in op else set()  # the token middleware's answers
            # a body that is not JSON text is 400: only an operation that reads a body can answer it
            unread = set() if "requestBody" in op else {MalformedBody.status}
            assert documented == (set(answers()) | refusals) - unread, (method, path)
            for status in documented:
                content = op["responses"][str(status)]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A JSON Schema validator of `schema` whose references resolve in `document`'s components."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_every_request_body_and_every_problem_answer_has_valid_examples() -> None:
    """Issue 11, item 4: the examples are there on every operation, and they are what they claim to be."""
    spec = create_app(Settings(cache_url="none")).openapi()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                assert body.get("examples"), (method, path)
                for name, example in body["examples"].items():
                    errors = list(_validator(spec, body["schema"]).iter_errors(example["value"]))
                    assert errors == [], (method, path, name, errors)
            for status, answer in op["responses"].items():
                problem = answer.get("content", {}).get("application/problem+json")
                if problem is None:
                    continue
                assert problem.get("examples"), (method, path, status)
                for example in problem["examples"].values():
                    value = example["value"]
                    assert _validator(spec, problem["schema"]).is_valid(value), (method, path, status)
                    assert value["status"] == int(status)
                    assert value["code"] in README, f"{value['code']} is not among the README's codes"
