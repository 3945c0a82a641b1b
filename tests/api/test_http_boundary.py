"""What the HTTP boundary answers before any route runs: unreadable bodies (400), methods a path does not
take (405 with the whole Allow), and destructive flags that only JSON's true and false can set."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import POOL, assert_problem

VOLUMES = f"/v1/pools/{POOL}/volumes"
RESTORE = f"{VOLUMES}/container/c1/snapshots/s1/restore"
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"name": "c1", "type": "container"', "not valid JSON"),
        (b"\xff{}", "not UTF-8"),
        (b'{"name": "c\xe9"}', "not UTF-8"),
    ],
    ids=["syntax", "truncated", "invalid-byte", "latin1"],
)
async def test_a_body_that_is_not_json_text_is_400_malformed_json(
    api: httpx.AsyncClient, body: bytes, says: str
) -> None:
    problem = assert_problem(await api.post(VOLUMES, content=body, headers=JSON), 400, "malformed_json")
    assert says in problem["detail"]
    assert problem["title"] == "Malformed request body"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", VOLUMES, "GET, POST"),
        ("PUT", VOLUMES, "GET, POST"),
        ("POST", f"{VOLUMES}/container/c1", "DELETE, GET, PATCH"),
        ("PUT", f"{VOLUMES}/container/c1/snapshots", "GET, POST"),
        ("GET", RESTORE, "POST"),
        ("DELETE", "/v1/pools", "GET"),
    ],
)
async def test_405_names_every_method_of_the_path_in_allow(
    api: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    """Starlette's 405 named only the first route of the path (OPTIONS on the volumes said `POST`)."""
    response = await api.request(method, path)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("value", [0, 1, "yes", "true", None], ids=repr)
@pytest.mark.parametrize(
    ("path", "field"),
    [(RESTORE, "delete_newer_snapshots"), (f"/v1/pools/{POOL}/orphans/repair", "apply")],
)
async def test_a_destructive_flag_is_strictly_a_json_boolean(
    api: httpx.AsyncClient, path: str, field: str, value: Any
) -> None:
    """`0`, `"yes"`... are refused before the route runs; lax parsing made `0` a False that went on to act."""
    problem = assert_problem(await api.post(path, json={field: value}), 422, "invalid_request")
    assert problem["errors"] == [
        {"loc": ["body", field], "msg": "Input should be a valid boolean", "type": "bool_type"}
    ]


async def test_a_size_with_a_zero_fraction_is_a_whole_number_of_bytes(api: httpx.AsyncClient) -> None:
    """JSON Schema's integer takes 4194304.0 (schemathesis sent 870.0), so the service does; 1.5 is none."""
    created = await api.post(VOLUMES, json={"name": "c1", "type": "container", "size": 4194304.0})
    assert created.status_code == 201, created.text
    assert created.json()["volumes"] == [{"number": 0, "size_bytes": 4194304}]
    refused = await api.post(VOLUMES, json={"name": "c2", "type": "container", "size": 1.5})
    assert_problem(refused, 422, "invalid_size")
