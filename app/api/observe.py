"""Observing middleware: request id, one log line and metrics per request, one audit line per change.

A pure ASGI middleware, outermost but for Starlette's error middleware, so that 413s and 401s are seen too.
It reads the route template FastAPI leaves in the scope (never the raw path: a label or a log field must not
carry a name per volume), and the token name the authentication middleware leaves in scope["state"].
Nothing of the request's headers or body is logged: that is how bearer tokens stay out of the logs.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import info_fields, request_id
from app.metrics import CONTENT_TYPE, CacheView, Metrics

HEADER = b"x-request-id"
# a client's id is kept when it is short and printable, so that it cannot forge log lines or bloat them
VALID_ID = re.compile(rb"[!-~]{1,128}")
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# the answers of changes are small (a volume, a snapshot); a larger one is not parsed for the audit line
AUDIT_BODY_BYTES = 64 * 1024
REPLAYED = b"idempotent-replayed"

requests_log = logging.getLogger("linstor_names.request")
audit = logging.getLogger("linstor_names.audit")


class Observe:
    """Sets X-Request-ID, counts and logs each request, writes an audit line for each change that worked."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request inside its request id; count and log it when it ends."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = request_id.set(rid.decode())
        method: str = scope["method"]
        change = method in CHANGES
        status = 500  # what the client gets when the app raises before answering
        replayed = False
        body = bytearray()
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if change:
                    replayed = any(name.lower() == REPLAYED for name, _ in headers)
                message = {**message, "headers": [*headers, (HEADER, rid)]}
            elif change and status < 400 and message["type"] == "http.response.body":
                if len(body) <= AUDIT_BODY_BYTES:
                    body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            route = _route(scope)
            self.metrics.request(method, route, status, seconds)
            if requests_log.isEnabledFor(logging.INFO):
                fields = {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                }
                info_fields(requests_log, f"{method} {route} {status}", fields)
            # a replay repeats an answer: the change it reports was audited when it ran
            if change and status < 400 and not replayed:
                _audit(scope, method, route, status, bytes(body))
            request_id.reset(token)


def _route(scope: Scope) -> str:
    """The route template; FastAPI leaves none for plain Starlette routes (docs, OpenAPI, static files)."""
    path = getattr(scope.get("route"), "path", None)
    if path is not None:
        return str(path)
    return "other" if "endpoint" in scope else "unmatched"


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == HEADER:
            return value if VALID_ID.fullmatch(value) else _new_id()
    return _new_id()


def _new_id() -> bytes:
    """32 random hex digits (a uuid4's length; os.urandom alone costs a fifth of uuid.uuid4())."""
    return os.urandom(16).hex().encode()


def _audit(scope: Scope, method: str, route: str, status: int, body: bytes) -> None:
    """One line: who changed what (method, route, the path's identity) and which LINSTOR object."""
    state = scope.get("state") or {}
    who = state.get("token_name") or "anonymous"
    target: dict[str, Any] = dict(scope.get("path_params") or {})
    linstor_name = None
    if body and len(body) <= AUDIT_BODY_BYTES:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if isinstance(answer, dict):
            linstor_name = answer.get("linstor_name")
            # a create names its volume in the body: the answer says which one it made
            for key in ("pool", "project", "type", "name"):
                if key in answer and key not in target:
                    target[key] = answer[key]
            if route.endswith("/snapshots") and "name" in answer:  # a snapshot created
                target["snapshot"] = answer["name"]
    audit.info(
        "%s %s %s %d",
        who,
        method,
        route,
        status,
        extra={
            "who": who,
            "action": f"{method} {route}",
            "status": status,
            "target": target,
            "linstor_name": linstor_name,
        },
    )


def install(app: FastAPI) -> Metrics:
    """Add the middleware and GET /metrics (outside the OpenAPI document) to `app`; its metrics."""

    def cache() -> CacheView | None:
        services = getattr(app.state, "services", None)
        if services is None:  # before the lifespan ran
            return None
        resolver = services.resolver
        return CacheView(resolver.counters, resolver.state, services.cache_service.syncs)

    metrics = Metrics(cache)
    app.add_middleware(Observe, metrics=metrics)

    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    # an API route, not a plain one: FastAPI then names its template in the scope for the labels
    app.add_api_route("/metrics", prometheus, methods=["GET"], include_in_schema=False)
    return metrics
