"""Small request helpers shared by the emulator tests."""

from __future__ import annotations

from typing import Any

import httpx

RD_URL = "/v1/resource-definitions"


async def make_rd(
    client: httpx.AsyncClient, name: str, props: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    """POST /v1/resource-definitions."""
    spec: dict[str, Any] = {"name": name, **extra}
    if props is not None:
        spec["props"] = props
    return await client.post(RD_URL, json={"resource_definition": spec})


async def deployed_rd(client: httpx.AsyncClient, name: str, props: dict[str, str] | None = None) -> None:
    """An RD with one 1 GiB volume placed on two nodes."""
    assert (await make_rd(client, name, props)).status_code == 201
    r = await client.post(
        f"{RD_URL}/{name}/volume-definitions", json={"volume_definition": {"size_kib": 1048576}}
    )
    assert r.status_code == 200
    assert (
        await client.post(f"{RD_URL}/{name}/autoplace", json={"select_filter": {"place_count": 2}})
    ).status_code == 201


def codes(response: httpx.Response) -> list[int]:
    """ret_codes of an RC list."""
    return [item["ret_code"] for item in response.json()]
