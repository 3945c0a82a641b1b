"""Bits shared by the routers: problem responses in the OpenAPI document, cache headers."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from app.api.schemas import Problem
from app.resolver import CacheInfo

_TEXT = {
    404: "Not found",
    409: "Conflict",
    422: "Invalid input",
    502: "LINSTOR error",
    503: "LINSTOR unavailable",
    504: "LINSTOR timeout",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problem+json errors."""
    return {
        s: {"model": Problem, "description": _TEXT[s], "content": {"application/problem+json": {}}}
        for s in (*statuses, 422, 503, 504)
    }


def cache_headers(response: Response, info: CacheInfo) -> None:
    """RFC 9211 Cache-Status, and Age (RFC 9111) for answers the cache served without asking LINSTOR."""
    response.headers["Cache-Status"] = f"linstor-names; {info.status}"
    if info.age is not None:
        response.headers["Age"] = str(int(info.age))
