"""Routes of the emulator: LINSTOR REST v1 as the controller's code answers it, plus /_emulator controls."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from app.emulator import attach_ops as attach
from app.emulator import clone_ops as clone
from app.emulator import jackson, rc, schemas
from app.emulator import node_ops as node
from app.emulator import place_ops as place
from app.emulator import pool_ops as pool
from app.emulator import rd_ops as rd
from app.emulator import restore_ops as restore
from app.emulator import rg_ops as rg
from app.emulator import snap_ops as snap
from app.emulator import vd_ops as vd
from app.emulator import view_ops as view
from app.emulator.common import Reply
from app.emulator.control import Controls, control
from app.emulator.faults import EmulatorMiddleware, ExchangeRecord
from app.emulator.store import EmulatorState

log = logging.getLogger(__name__)

VERSION = {
    "version": "1.34.0",
    "git_hash": "3e9306a9d8215606544c64c50ced150625ee4926",
    "build_time": "2026-06-02T08:46:08+00:00",
    "rest_api_version": "1.28.0",
}
NO_BODY = -1  # endpoint takes no body
HANG = 0  # clone: a parse error is never answered upstream (§2.8)


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: state, path parameters, query pairs and the parsed body."""

    state: EmulatorState
    params: dict[str, str]
    query: list[tuple[str, str]]
    body: Any


Handler = Callable[[Call], Reply]


@dataclass(frozen=True, slots=True)
class RouteDef:
    """One endpoint: method, SPEC path template, handler, body schema and the status of JSON parse errors."""

    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    schema: schemas.Schema | None
    parse_status: int


def _r(
    method: str, template: str, handler: Handler, schema: schemas.Schema | None = None, parse: int = 500
) -> RouteDef:
    pattern = re.sub(r"\{key\}", r"(?P<key>.+)", template)
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return RouteDef(
        method, template, re.compile(f"^{pattern}$"), handler, schema, parse if schema else NO_BODY
    )


_RD = "/v1/resource-definitions/{resource}"
_RG = "/v1/resource-groups/{resource_group}"
ROUTES: list[RouteDef] = [
    _r("GET", "/v1/controller/version", lambda c: (200, VERSION)),
    _r("GET", "/v1/controller/properties", lambda c: view.ctrl_props(c.state)),
    _r(
        "POST",
        "/v1/controller/properties",
        lambda c: view.set_ctrl_props(c.state, c.body),
        schemas.CTRL_PROPS,
    ),
    _r(
        "DELETE", "/v1/controller/properties/{key}", lambda c: view.delete_ctrl_prop(c.state, c.params["key"])
    ),
    _r("GET", "/v1/nodes", lambda c: view.list_nodes(c.state, c.query)),
    _r("POST", "/v1/nodes", lambda c: node.create_node(c.state, c.body), schemas.NODE_CREATE),
    _r("GET", "/v1/nodes/{node}", lambda c: view.list_nodes(c.state, c.query, one=c.params["node"])),
    _r("DELETE", "/v1/nodes/{node}", lambda c: node.delete_node(c.state, c.params["node"])),
    _r("DELETE", "/v1/nodes/{node}/lost", lambda c: node.lost_node(c.state, c.params["node"])),
    _r(
        "GET", "/v1/nodes/{node}/storage-pools", lambda c: view.list_pools(c.state, c.query, c.params["node"])
    ),
    _r(
        "POST",
        "/v1/nodes/{node}/storage-pools",
        lambda c: pool.create_pool(c.state, c.params["node"], c.body),
        schemas.STORAGE_POOL,
    ),
    _r(
        "DELETE",
        "/v1/nodes/{node}/storage-pools/{storagepool}",
        lambda c: pool.delete_pool(c.state, c.params["node"], c.params["storagepool"]),
    ),
    _r("GET", "/v1/view/storage-pools", lambda c: view.list_pools(c.state, c.query)),
    _r("GET", "/v1/view/resources", lambda c: view.view_resources(c.state, c.query)),
    _r("GET", "/v1/view/snapshots", lambda c: snap.view_snapshots(c.state, c.query)),
    _r(
        "POST",
        "/v1/actions/snapshot/multi",
        lambda c: snap.multi_snapshot(c.state, c.body),
        schemas.MULTI_SNAPSHOT,
    ),
    _r("GET", "/v1/resource-groups", lambda c: rg.list_rgs(c.state, c.query)),
    _r("POST", "/v1/resource-groups", lambda c: rg.create_rg(c.state, c.body), schemas.RG_CREATE, 400),
    _r("GET", _RG, lambda c: rg.list_rgs(c.state, c.query, one=c.params["resource_group"])),
    _r("PUT", _RG, lambda c: rg.modify_rg(c.state, c.params["resource_group"], c.body), schemas.RG_MODIFY),
    _r("DELETE", _RG, lambda c: rg.delete_rg(c.state, c.params["resource_group"])),
    _r(
        "POST",
        _RG + "/spawn",
        lambda c: rg.spawn(c.state, c.params["resource_group"], c.body),
        schemas.RG_SPAWN,
    ),
    _r("GET", "/v1/resource-definitions", lambda c: rd.list_rds(c.state, c.query)),
    _r("POST", "/v1/resource-definitions", lambda c: rd.create_rd(c.state, c.body), schemas.RD_CREATE, 400),
    _r("GET", _RD, lambda c: rd.list_rds(c.state, c.query, one=c.params["resource"])),
    _r("PUT", _RD, lambda c: rd.modify_rd(c.state, c.params["resource"], c.body), schemas.RD_MODIFY),
    _r("DELETE", _RD, lambda c: rd.delete_rd(c.state, c.params["resource"])),
    _r("GET", _RD + "/volume-definitions", lambda c: vd.list_vds(c.state, c.params["resource"])),
    _r(
        "POST",
        _RD + "/volume-definitions",
        lambda c: vd.create_vd(c.state, c.params["resource"], c.body),
        schemas.VD_CREATE,
    ),
    _r(
        "GET",
        _RD + "/volume-definitions/{volume_number}",
        lambda c: vd.list_vds(c.state, c.params["resource"], c.params["volume_number"]),
    ),
    _r(
        "PUT",
        _RD + "/volume-definitions/{volume_number}",
        lambda c: vd.modify_vd(c.state, c.params["resource"], c.params["volume_number"], c.body),
        schemas.VD_MODIFY,
    ),
    _r(
        "DELETE",
        _RD + "/volume-definitions/{volume_number}",
        lambda c: vd.delete_vd(c.state, c.params["resource"], c.params["volume_number"]),
    ),
    _r("GET", _RD + "/resources", lambda c: view.list_resources(c.state, c.params["resource"], c.query)),
    _r(
        "POST",
        _RD + "/resources",
        lambda c: place.create_resources(c.state, c.params["resource"], c.body),
        schemas.RSC_CREATE_LIST,
    ),
    _r(
        "GET",
        _RD + "/resources/{node}",
        lambda c: view.list_resources(c.state, c.params["resource"], c.query, c.params["node"]),
    ),
    _r(
        "DELETE",
        _RD + "/resources/{node}",
        lambda c: attach.delete_resource(c.state, c.params["resource"], c.params["node"]),
    ),
    _r(
        "POST",
        _RD + "/resources/{node}/make-available",
        lambda c: attach.make_available(c.state, c.params["resource"], c.params["node"], c.body),
        schemas.MAKE_AVAILABLE,
    ),
    _r(
        "GET",
        _RD + "/resources/{node}/volumes",
        lambda c: attach.list_volumes(c.state, c.params["resource"], c.params["node"], c.query),
    ),
    _r(
        "POST",
        _RD + "/autoplace",
        lambda c: place.autoplace(c.state, c.params["resource"], c.body),
        schemas.AUTOPLACE,
    ),
    _r("GET", _RD + "/snapshots", lambda c: snap.list_snapshots(c.state, c.params["resource"], c.query)),
    _r(
        "POST",
        _RD + "/snapshots",
        lambda c: snap.create_snapshot(c.state, c.params["resource"], c.body),
        schemas.SNAPSHOT,
    ),
    _r(
        "GET",
        _RD + "/snapshots/{snapshot}",
        lambda c: snap.list_snapshots(c.state, c.params["resource"], c.query, c.params["snapshot"]),
    ),
    _r(
        "PUT",
        _RD + "/snapshots/{snapshot}",
        lambda c: snap.modify_snapshot(c.state, c.params["resource"], c.params["snapshot"], c.body),
        schemas.SNAPSHOT_MODIFY,
    ),
    _r(
        "DELETE",
        _RD + "/snapshots/{snapshot}",
        lambda c: snap.delete_snapshot(c.state, c.params["resource"], c.params["snapshot"], c.query),
    ),
    _r(
        "POST",
        _RD + "/snapshot-restore-volume-definition/{snapshot}",
        lambda c: restore.restore_vds(c.state, c.params["resource"], c.params["snapshot"], c.body),
        schemas.SNAPSHOT_RESTORE,
        400,
    ),
    _r(
        "POST",
        _RD + "/snapshot-restore-resource/{snapshot}",
        lambda c: restore.restore_resources(c.state, c.params["resource"], c.params["snapshot"], c.body),
        schemas.SNAPSHOT_RESTORE,
    ),
    _r(
        "POST",
        _RD + "/snapshot-rollback/{snapshot}",
        lambda c: restore.rollback(c.state, c.params["resource"], c.params["snapshot"]),
        schemas.SNAPSHOT_ROLLBACK,
    ),
    _r(
        "POST",
        _RD + "/clone",
        lambda c: clone.clone(c.state, c.params["resource"], c.body),
        schemas.CLONE,
        HANG,
    ),
    _r(
        "GET",
        _RD + "/clone/{resourceClone}",
        lambda c: clone.clone_status(c.state, c.params["resourceClone"]),
    ),
    _r("GET", _RD + "/sync-status", lambda c: clone.sync_status(c.state, c.params["resource"])),
]
_OPTIONAL_BODY = {"/v1/resource-definitions/{resource}/snapshot-rollback/{snapshot}"}


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _rc_error(status: int, code: int, message: str, details: str | None = None) -> Response:
    return _json(status, [rc.entry(code, message, details=details)])


# the recorded 500s of these endpoints carry no error report (controller-api.jsonl #157, #192, #200); every
# other recorded parse error has one (#22, #23, #36, #78, #79, #141, #142)
_PARSE_UNREPORTED = {_RD + "/volume-definitions", _RG + "/spawn", _RD + "/snapshots"}
# HashSet(Collection) on a `null` list, the controller's NullPointerException text (#143)
_NULL_LIST_NPE = 'Cannot invoke "java.util.Collection.size()" because "c" is null'


def _parse(route: RouteDef, raw: bytes) -> tuple[Any, str | None]:
    """The body, or the text of the exception Jackson would throw reading it into the route's DTO."""
    assert route.schema is not None
    if route.template in _OPTIONAL_BODY and not raw.strip():
        return {}, None
    try:
        body = orjson.loads(raw)
        problem = schemas.schema_problem(body, route.schema)
    except orjson.JSONDecodeError:
        problem = "syntax"
    if problem is None:
        return body, None
    # the slow path reads token by token like Jackson: which problem comes first, and where
    try:
        body = jackson.read(raw.decode("utf-8", "replace"), route.schema)
    except jackson.JsonProblem as exc:
        return None, exc.details
    return body, schemas.schema_problem(body, route.schema)


def create_dispatch(state: EmulatorState, controls: Controls | None = None) -> Callable[[Request], Any]:
    """The single Starlette endpoint that routes every path like the controller's Grizzly/Jersey stack;
    /_emulator answers only when `controls` are given (otherwise it is an unknown path, as upstream)."""

    async def dispatch(request: Request) -> Response:
        path = request.url.path
        if controls is not None and path.startswith("/_emulator"):
            status, payload = await control(state, request, controls)
            return _json(status, payload)
        if path == "/health":
            return Response(b"", status_code=200, media_type="application/json")
        matched = [(route, m) for route in ROUTES if (m := route.regex.match(path))]
        if not matched:
            # Jersey's NotFoundException message becomes `details` (controller-api.jsonl #3)
            message = f"Path '{path}' not found on server."
            return _rc_error(404, rc.FAIL_UNKNOWN_ERROR, message, "HTTP 404 Not Found")
        method = "GET" if request.method == "HEAD" else request.method
        chosen = next(((r, m) for r, m in matched if r.method == method), None)
        if chosen is None:
            message = f"Method '{request.method}' not allowed on path '{path}'."
            return _rc_error(405, rc.FAIL_UNKNOWN_ERROR, message, "HTTP 405 Method Not Allowed")  # #4
        route, match = chosen
        request.scope["emulator.route"] = route.template
        body: Any = None
        if route.parse_status != NO_BODY:
            body, problem = _parse(route, await request.body())
            if problem is not None:
                if route.parse_status == HANG and state.clone_parse_error_hangs:
                    await _wait_disconnect(request)
                # §3.5: 400 on doInScope endpoints, 500 elsewhere; the clone (HANG) answers 500 here (see
                # `clone_parse_error_hangs` for the upstream never-answering behaviour)
                status = 400 if route.parse_status == 400 else 500
                failure = rc.entry(
                    rc.API_CALL_PARSE_ERROR,
                    "Unable to parse input json.",
                    details=problem,
                    error_report=route.template not in _PARSE_UNREPORTED,
                )
                return _json(status, [failure])
            if isinstance(body, dict) and any(
                body.get(k, 0) is None for k in ("delete_props", "delete_namespaces")
            ):
                if route.template == _RD:  # §1.3: `null` lists NPE in PUT RD (#143)
                    npe = rc.entry(
                        rc.FAIL_UNKNOWN_ERROR,
                        "An unknown error occurred.",
                        details=_NULL_LIST_NPE,
                        error_report=True,
                    )
                    return _json(500, [npe])
        call = Call(state, match.groupdict(), list(request.query_params.multi_items()), body)
        try:
            status, payload = route.handler(call)
        except rc.ApiError as exc:
            return _json(exc.status, exc.entries)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.exception("emulator handler failed for %s %s", request.method, path)
            return _rc_error(500, rc.FAIL_UNKNOWN_ERROR, "An unknown error occurred.")
        return _json(status, payload)

    return dispatch


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_emulator_app(
    *,
    state: EmulatorState | None = None,
    observer: Callable[[ExchangeRecord], None] | None = None,
    controls: bool = False,
    state_dir: str | Path | None = None,
) -> Starlette:
    """The emulator as a Starlette ASGI app; `observer` sees every /v1 exchange (not /_emulator).
    `controls` enables the unauthenticated /_emulator routes; their save/load stay inside `state_dir`."""
    state = state if state is not None else EmulatorState()
    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    dispatch = create_dispatch(state, Controls(state_dir) if controls else None)
    app = EmulatorApp(routes=[Route("/{path:path}", dispatch, methods=methods)])
    app.emulator_state = state
    app.observer = observer
    app.state.emulator = state
    return app


class EmulatorApp(Starlette):
    """Starlette with the fault/observer wrapper outermost, so `drop` reaches uvicorn's own `send`."""

    emulator_state: EmulatorState
    observer: Callable[[ExchangeRecord], None] | None

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack wrapped by EmulatorMiddleware (outside ServerErrorMiddleware)."""
        return EmulatorMiddleware(super().build_middleware_stack(), self.emulator_state.faults, self.observer)
