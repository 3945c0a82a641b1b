"""The two lookups on every orchestrator's path, dispatched before FastAPI's routing (issue 12).

`GET /v1/pools/{pool}/volumes/{type}/{name}` and `GET /v1/resolve/{linstor_name}` are answered here with
the routes' own code (`lookup_volume`, `resolve_name`) and the app's own problem handler: the answers are the
routes' answers, byte for byte (tests/api/test_hot_lookups.py), without the ~150 µs of route matching and
dependency solving that FastAPI spends per request. The middleware sits inside authentication, metrics and
logs, so those see these requests as they see any other; it names the route in the scope for their labels.

Anything it does not recognise plainly goes on to the routes, which answer it the long way: another method, a
root path, a query other than one `project`, a type that is not a volume type (FastAPI's 422 words it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import resolve, volumes
from app.api.errors import service_error
from app.api.resolve import resolve_name
from app.api.volumes import lookup_volume
from app.errors import ServiceError
from app.identity import VolumeType
from app.services import Services
from app.specs import make_key
from app.volumes import VolumeService

_TYPES = {t.value: t for t in VolumeType}
_ROUTES = {r.name: r for r in (*volumes.router.routes, *resolve.router.routes) if isinstance(r, APIRoute)}
Lookup = Callable[[VolumeService], Awaitable[Response]]


class HotLookups:
    """Serve the forward and reverse lookups without routing; pass every other request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a plain lookup here, or hand the request to the app."""
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            response = await self._lookup(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _lookup(self, scope: Scope) -> Response | None:
        parts = scope["path"].split("/")
        # ["", "v1", "pools", pool, "volumes", type, name] or ["", "v1", "resolve", linstor_name]
        if len(parts) == 7 and parts[1] == "v1" and parts[2] == "pools" and parts[4] == "volumes":
            vtype = _TYPES.get(parts[5])
            project = _project(scope["query_string"])
            if vtype is None or project is None or not parts[3] or not parts[6]:
                return None
            pool, name = parts[3], parts[6]
            # make_key runs inside _answer's try: a bad name is the route's problem answer too
            return await self._answer(
                scope,
                "get_volume",
                lambda volumes: lookup_volume(volumes, make_key(pool, project, vtype, name)),
            )
        if len(parts) == 4 and parts[1] == "v1" and parts[2] == "resolve" and parts[3]:
            if scope["query_string"]:
                return None
            return await self._answer(scope, "resolve", lambda volumes: resolve_name(volumes, parts[3]))
        return None

    async def _answer(self, scope: Scope, route: str, lookup: Lookup) -> Response:
        scope["route"] = _ROUTES[route]  # what FastAPI's routing would have set: the labels read it
        services: Services = scope["app"].state.services
        try:
            response: Response = await lookup(services.volumes)
        except ServiceError as exc:
            return await service_error(Request(scope), exc)
        return response


def _project(query: bytes) -> str | None:
    """The `project` of the query as FastAPI reads it, "default" without one; None for any other query."""
    if not query:
        return "default"
    value = query[len(b"project=") :]
    if query.startswith(b"project=") and not any(c in value for c in b"&%+"):
        return value.decode("latin-1")  # nothing parse_qsl would split or unquote: its answer, ~1 µs sooner
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)  # as Starlette parses it
    if len(pairs) == 1 and pairs[0][0] == "project":
        return pairs[0][1]
    return None
