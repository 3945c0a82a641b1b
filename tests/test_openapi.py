"""The committed openapi.json is what the app generates (regenerate with `make openapi`)."""

from __future__ import annotations

import json
from pathlib import Path

from app.main import create_app
from app.settings import Settings

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.json"


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
