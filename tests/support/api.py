"""Helpers of the API tests: create a volume, check a problem answer."""

from __future__ import annotations

from typing import Any

import httpx

POOL = "linstor"  # the resource group of the seed document's listing
FINGERPRINT = "d21a26af7d5a95c3aa6e923257a1cb5cd765b102796b92ab111fb29ebfb86137"


async def create(api: httpx.AsyncClient, expect: int = 201, pool: str = POOL, **body: Any) -> dict[str, Any]:
    """POST a volume and check the status."""
    body.setdefault("size", "1GiB")
    response = await api.post(f"/v1/pools/{pool}/volumes", json=body)
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with the stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"]
    return body
