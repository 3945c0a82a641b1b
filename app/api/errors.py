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

from app.errors import ServiceError
from app.linstor.errors import LinstorError
from app.translate import linstor_errors

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


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
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem(request, 422, "invalid_request", "Invalid request", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    response = problem(request, exc.status_code, code, str(exc.detail), None)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


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
