"""Bits shared by the routers: problem responses in the OpenAPI document, cache headers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Response

from app.api.schemas import Problem
from app.errors import answers
from app.resolver import CacheInfo, Served

PROBLEM_JSON = "application/problem+json"

# Every error answer of the service, documented from the error tree (app/errors.py) on every router that
# reaches the domain; 422 includes FastAPI's own request validation, answered as a problem too.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": title, "content": {PROBLEM_JSON: {}}}
    for status, title in answers().items()
}
# LINSTOR unreachable or too slow: the answer says when asking again makes sense (app/api/errors.py)
RETRY_AFTER = {
    "description": "Seconds after which asking again makes sense.",
    "schema": {"type": "integer"},
}
for _status in (503, 504):
    ERRORS[_status]["headers"] = {"Retry-After": RETRY_AFTER}


def problem_json_only(app: FastAPI) -> None:
    """Document problem answers as application/problem+json only (FastAPI adds application/json)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    for answer in operation.get("responses", {}).values():
                        content = answer.get("content", {})
                        if PROBLEM_JSON in content and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# RFC 9211 Cache-Status parameters for each way an answer is served
_CACHE_STATUS = {Served.HIT: "hit", Served.MISS: "fwd=miss", Served.BYPASS: "fwd=bypass"}


def cache_headers(response: Response, info: CacheInfo) -> None:
    """RFC 9211 Cache-Status, and Age (RFC 9111) for answers the cache served without asking LINSTOR."""
    response.headers.update(_cache_header_values(info))


def _cache_header_values(info: CacheInfo) -> dict[str, str]:
    status = f"linstor-names; {_CACHE_STATUS[info.served]}"
    if info.stale:  # served because LINSTOR could not confirm it (RFC 5861 stale-if-error)
        status += "; detail=stale"
    if info.age is None:
        return {"Cache-Status": status}
    return {"Cache-Status": status, "Age": str(int(info.age))}


def lookup_answer(content: dict[str, Any], info: CacheInfo) -> Response:
    """A lookup's 200, serialized once by orjson, with its cache headers.

    The hot path of every orchestrator (issue 12): the route's `response_model` documents the schema, and
    returning a Response skips FastAPI's second validation pass of an answer built from a valid record.
    """
    return Response(orjson.dumps(content), media_type="application/json", headers=_cache_header_values(info))
