"""One place that turns errors into RFC 9457 problem+json responses with a stable `code`."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from app.errors import MalformedBody, ServiceError
from app.linstor.errors import LinstorError
from app.translate import linstor_errors

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")  # what a 405's Allow may name


def problem(
    request: Request, status: int, code: str, title: str, detail: str | None, **extra: Any
) -> JSONResponse:
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM)


async def service_error(request: Request, exc: Exception) -> JSONResponse:
    """The problem answer of a service error (app/api/hot.py answers with it too)."""
    assert isinstance(exc, ServiceError)
    extra = dict(exc.extra)
    # a 503/504 says when asking again makes sense (app/translate.py): a header, not a member of the body
    retry_after = extra.pop("retry_after", None)
    response = problem(request, exc.status, exc.code, exc.title, exc.detail, **extra)
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))  # whole seconds (RFC 9110)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    for error in exc.errors():
        if error.get("type") == "json_invalid":  # FastAPI's: the body is not JSON, nothing was validated
            position = error.get("loc", ("body", "?"))[-1]
            reason = error.get("ctx", {}).get("error", "JSON decode error")
            detail = f"the request body is not valid JSON: {reason} at character {position}"
            return await service_error(request, MalformedBody("malformed_json", detail))
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem(request, 422, "invalid_request", "Invalid request", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer to a body it could not decode before parsing JSON (not UTF-8 text)
        detail = f"the request body is not UTF-8 JSON text: {exc.__cause__}"
        return await service_error(request, MalformedBody("malformed_json", detail))
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    response = problem(request, exc.status_code, code, str(exc.detail), None)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed(request) or response.headers.get("Allow", "")
    return response


def _allowed(request: Request) -> str:
    """Every method the path takes: Starlette's 405 names only the first route's (RFC 9110 §10.2.1 wants all).

    Each method is asked of the router as a request would be (FastAPI nests included routers); mounts (the
    static docs) match any method and say nothing about it."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return ", ".join(
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    )


async def _linstor_error(request: Request, exc: Exception) -> JSONResponse:
    # a domain operation without its boundary: translated here all the same, never a 500 (app/translate.py)
    assert isinstance(exc, LinstorError)
    route = request.scope.get("route")
    action = getattr(route, "name", "request").replace("_", " ")
    try:
        with linstor_errors(action):
            raise exc
    except ServiceError as translated:
        return await service_error(request, translated)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(request, 500, "internal_error", "Internal error", "unexpected error; see the service log")


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(LinstorError, _linstor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
