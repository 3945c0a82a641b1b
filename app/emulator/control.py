"""The /_emulator control endpoints: faults, reset, save/load, refuse, clone timing, node state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import orjson
from starlette.requests import Request

from app.emulator.faults import ACTIONS
from app.emulator.store import EmulatorState


class Refused(Exception):
    """A control request that is understood but not allowed (or malformed): its status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Controls:
    """The enabled /_emulator controls; save and load read and write files under `state_dir` only."""

    state_dir: str | Path | None = None

    def confine(self, raw: object) -> Path:
        """The file `raw` names, inside state_dir (relative names are taken from it); else Refused."""
        if self.state_dir is None:
            raise Refused(
                403, "save and load are off: start the emulator with a state directory (--state-dir)"
            )
        if not isinstance(raw, str) or not raw:
            raise Refused(400, "path must be a non-empty string")
        if ".." in PurePath(raw).parts:
            raise Refused(400, "path must not contain '..'")
        root = Path(self.state_dir).resolve()
        # resolved, so that a symbolic link inside the directory cannot lead out of it
        target = (root / raw).resolve()
        if not target.is_relative_to(root):
            raise Refused(403, f"path must be inside the state directory {root}")
        return target


async def control(state: EmulatorState, request: Request, controls: Controls) -> tuple[int, Any]:
    """Dispatch one /_emulator request; answers (status, JSON payload)."""
    path = request.url.path.removeprefix("/_emulator").rstrip("/")
    method = request.method
    raw = await request.body()
    try:
        body: dict[str, Any] = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        return 400, {"error": f"invalid JSON: {exc}"}
    if not isinstance(body, dict):
        return 400, {"error": "the body must be a JSON object"}
    try:
        return _route(state, controls, method, path, body)
    except Refused as exc:
        return exc.status, {"error": str(exc)}
    except (KeyError, TypeError, ValueError, OSError) as exc:
        return 400, {"error": f"{type(exc).__name__}: {exc}"}


def _route(
    state: EmulatorState, controls: Controls, method: str, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    if path == "/faults" and method == "GET":
        return 200, [rule.describe() for rule in state.faults.rules()]
    if path == "/faults" and method == "POST":
        if body.get("action") not in ACTIONS:
            return 400, {"error": f"action must be one of {', '.join(ACTIONS)}"}
        rule = state.add_fault(
            action=body["action"],
            method=body.get("method", "*"),
            path=body.get("path", ".*"),
            times=body.get("times"),
            seconds=float(body.get("seconds", 0.0)),
            status=int(body.get("status", 500)),
            body=body.get("body"),
        )
        return 201, rule.describe()
    if path == "/faults" and method == "DELETE":
        state.clear_faults()
        return 200, {"cleared": True}
    if path == "/reset" and method == "POST":
        state.reset()
        return 200, {"reset": True}
    if path == "/save" and method == "POST":
        state.save(controls.confine(body.get("path")))
        return 200, {"saved": body["path"]}
    if path == "/load" and method == "POST":
        state.load(controls.confine(body.get("path")))
        return 200, {"loaded": body["path"]}
    if path == "/refuse" and method == "POST":
        seconds = float(body.get("seconds", 1.0))
        if state.refuse(seconds):
            return 200, {"refusing": seconds, "mode": "refuse"}
        # in-process alternative (no runner attached, e.g. tests.support.server.serve): drop every connection
        state.add_fault(action="drop", path=r"^/(v1|health)", times=None, seconds=0.0).expires_in(seconds)
        return 200, {"refusing": seconds, "mode": "drop"}
    if path == "/clone" and method == "POST":
        state.set_clone_behaviour(seconds=float(body.get("seconds", 0.0)), fail=bool(body.get("fail", False)))
        return 200, {"seconds": state.clone_seconds, "fail": state.clone_fail}
    if path.startswith("/nodes/") and method == "PUT":
        state.set_node_online(path.removeprefix("/nodes/"), bool(body["online"]))
        return 200, {"online": bool(body["online"])}
    return 404, {"error": f"no emulator control {method} {path}"}
