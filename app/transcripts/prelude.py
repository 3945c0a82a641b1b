"""The cluster a transcript starts from, rebuilt through the real API before the replay.

A recording starts on a cluster that already holds objects (the README of the transcripts says so). They are
found by what the recording shows of them before it creates them: RDs and resource groups in 200 answers,
in successful deletions and in the messages of successful answers. Each is then built the way it was made:
the requests that created it later in the same recording (or in a sibling recording) are replayed first,
else it is created from what the answers showed of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.transcripts.format import Exchange
from app.transcripts.normalize import ret_codes

RD_PATH = re.compile(r"^/v1/resource-definitions/([^/]+)")
RG_PATH = re.compile(r"^/v1/resource-groups/([^/]+)")
_RSC_IN_MESSAGE = re.compile(r"resource '([^'\[\]]+)'")
_VLM_IN_MESSAGE = re.compile(r"Volume number (\d+) of resource '([^']+)'")
SATELLITE_NODE = "server01"
SATELLITE_POOL = "thinpool"


@dataclass(frozen=True, slots=True)
class Request:
    """One set-up request: method, path and a JSON body (or none)."""

    method: str
    path: str
    body: Any = None


@dataclass(slots=True)
class Seen:
    """What the recording shows of one pre-existing RD before it is (re)created."""

    name: str
    first: int
    rd: dict[str, Any] | None = None
    volumes: dict[int, int] = field(default_factory=dict)
    snapshots: list[dict[str, Any]] = field(default_factory=list)


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _ok(exchange: Exchange) -> bool:
    return 200 <= exchange.status < 300


def _created_name(exchange: Exchange) -> tuple[str, str] | None:
    """("rd" | "rg", name) when the exchange is a successful creation of one."""
    if exchange.method != "POST" or not _ok(exchange):
        return None
    body = _json(exchange.body)
    if not isinstance(body, dict):
        return None
    if exchange.path == "/v1/resource-definitions":
        name = (body.get("resource_definition") or {}).get("name")
        return ("rd", name) if isinstance(name, str) else None
    if exchange.path == "/v1/resource-groups":
        return ("rg", body["name"]) if isinstance(body.get("name"), str) else None
    if exchange.path.endswith("/spawn") and isinstance(body.get("resource_definition_name"), str):
        return ("rd", body["resource_definition_name"])
    return None


def _rd_objects(answer: Any) -> Iterable[dict[str, Any]]:
    items = answer if isinstance(answer, list) else [answer]
    for item in items:
        if isinstance(item, dict) and "resource_group_name" in item and "name" in item:
            yield item


class Scan:
    """Pre-existing RDs and RGs of one recording, in the order they first show."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self.rds: dict[str, Seen] = {}
        self.rgs: dict[str, dict[str, Any] | None] = {}
        made: set[tuple[str, str]] = set()
        for index, exchange in enumerate(exchanges):
            created = _created_name(exchange)
            if created is not None:
                made.add((created[0], created[1].upper()))
            if _ok(exchange):
                self._observe(index, exchange, made)

    def _rd(self, name: str, index: int, made: set[tuple[str, str]]) -> Seen | None:
        if ("rd", name.upper()) in made:
            return None
        return self.rds.setdefault(name.upper(), Seen(name=name, first=index))

    def _rg(self, name: str, made: set[tuple[str, str]], shown: dict[str, Any] | None = None) -> None:
        if ("rg", name.upper()) in made:
            return
        if shown is not None or name.upper() not in self.rgs:
            self.rgs[name.upper()] = shown if shown is not None else self.rgs.get(name.upper())

    def _observe(self, index: int, exchange: Exchange, made: set[tuple[str, str]]) -> None:
        answer = _json(exchange.response)
        path = exchange.path
        if exchange.method == "GET":
            for item in _rd_objects(answer):
                seen = self._rd(item["name"], index, made)
                self._rg(item["resource_group_name"], made)
                if seen is not None and seen.rd is None:
                    seen.rd = item
                if seen is not None:
                    for vd in item.get("volume_definitions") or []:
                        seen.volumes.setdefault(int(vd["volume_number"]), int(vd["size_kib"]))
            if path.startswith("/v1/resource-groups"):
                for item in answer if isinstance(answer, list) else [answer]:
                    if isinstance(item, dict) and "name" in item and "select_filter" in item:
                        self._rg(item["name"], made, item)
            if "/snapshots" in path:
                for snap in answer if isinstance(answer, list) else [answer]:
                    if isinstance(snap, dict) and "resource_name" in snap:
                        seen = self._rd(snap["resource_name"], index, made)
                        if seen is not None and all(s["name"] != snap["name"] for s in seen.snapshots):
                            seen.snapshots.append(snap)
                            for vd in snap.get("volume_definitions") or []:
                                seen.volumes.setdefault(int(vd["volume_number"]), int(vd["size_kib"]))
        elif exchange.method == "DELETE" and (ret_codes(answer) or [-1])[0] >= 0:
            if (match := RD_PATH.match(path)) and path.count("/") == 3:
                self._rd(match.group(1), index, made)
            elif match := RG_PATH.match(path):
                self._rg(match.group(1), made)
        if isinstance(answer, list):
            for item in answer:
                if isinstance(item, dict) and int(item.get("ret_code", -1)) >= 0:
                    message = str(item.get("message", ""))
                    for vlm, rsc in _VLM_IN_MESSAGE.findall(message):
                        seen = self._rd(rsc, index, made)
                        if seen is not None:
                            seen.volumes.setdefault(int(vlm), 0)
                    for rsc in _RSC_IN_MESSAGE.findall(message):
                        self._rd(rsc, index, made)


def _history(sources: list[list[Exchange]], kind: str, name: str) -> list[Exchange] | None:
    """The successful requests that made the object in a recording, from its creation to its deletion."""
    for exchanges in sources:
        start = next(
            (
                i
                for i, e in enumerate(exchanges)
                if (c := _created_name(e)) and c[0] == kind and c[1].upper() == name.upper()
            ),
            None,
        )
        if start is None:
            continue
        steps = [exchanges[start]]
        for exchange in exchanges[start + 1 :]:
            target = RD_PATH.match(exchange.path) if kind == "rd" else RG_PATH.match(exchange.path)
            if target is None or target.group(1).upper() != name.upper() or not _ok(exchange):
                continue
            own = exchange.path.count("/") == 3  # the object itself, not a child or an action on it
            if exchange.method == "DELETE" and own:
                break
            if (exchange.method == "PUT" and own) or (kind == "rd" and exchange.method == "POST"):
                steps.append(exchange)
        return steps
    return None


def cluster_requests() -> list[Request]:
    """The recorded cluster's topology: one satellite with a FILE_THIN pool (transcripts README)."""
    return [
        Request(
            "POST",
            "/v1/nodes",
            {
                "name": SATELLITE_NODE,
                "type": "SATELLITE",
                "net_interfaces": [
                    {
                        "name": "default",
                        "address": "127.0.0.1",
                        "satellite_port": 13367,
                        "satellite_encryption_type": "PLAIN",
                    }
                ],
            },
        ),
        Request(
            "POST",
            f"/v1/nodes/{SATELLITE_NODE}/storage-pools",
            {
                "storage_pool_name": SATELLITE_POOL,
                "provider_kind": "FILE_THIN",
                "props": {"StorDriver/FileDir": f"/srv/linstor/{SATELLITE_POOL}"},
            },
        ),
    ]


def _as_request(exchange: Exchange) -> Request:
    return Request(exchange.method, exchange.path, _json(exchange.body))


def _rg_from_answer(name: str, shown: dict[str, Any] | None) -> list[Request]:
    """Create, then set props: the controller ignores `props` in an RG create (controller-api.jsonl #13)."""
    body: dict[str, Any] = {"name": name}
    if shown:
        for key in ("description", "select_filter"):
            if shown.get(key):
                body[key] = shown[key]
    out = [Request("POST", "/v1/resource-groups", body)]
    if shown and shown.get("props"):
        out.append(Request("PUT", f"/v1/resource-groups/{name}", {"override_props": shown["props"]}))
    return out


def _rd_from_answer(seen: Seen) -> list[Request]:
    shown = seen.rd or {}
    name = seen.name
    definition: dict[str, Any] = {"name": name}
    if shown.get("external_name"):
        definition["external_name"] = shown["external_name"]
    if shown.get("resource_group_name"):
        definition["resource_group_name"] = shown["resource_group_name"]
    if shown.get("props"):
        definition["props"] = shown["props"]
    out = [Request("POST", "/v1/resource-definitions", {"resource_definition": definition})]
    deployed = "layer_data" in shown or bool(seen.snapshots)
    volumes = dict(seen.volumes) or ({0: 1048576} if deployed else {})
    for number in sorted(volumes):
        size = volumes[number] or 1048576
        out.append(
            Request(
                "POST",
                f"/v1/resource-definitions/{name}/volume-definitions",
                {"volume_definition": {"volume_number": number, "size_kib": size}},
            )
        )
    if deployed:
        out.append(
            Request(
                "POST",
                f"/v1/resource-definitions/{name}/autoplace",
                {"select_filter": {"place_count": 1, "storage_pool": SATELLITE_POOL}},
            )
        )
    for snap in seen.snapshots:
        out.append(Request("POST", f"/v1/resource-definitions/{name}/snapshots", {"name": snap["name"]}))
    return out


def prelude(exchanges: list[Exchange], siblings: list[list[Exchange]] = ()) -> list[Request]:  # type: ignore[assignment]
    """Set-up requests that rebuild the objects the recording finds already there."""
    scan = Scan(exchanges)
    sources = [exchanges, *siblings]
    out: list[Request] = []
    groups_needed = dict(scan.rgs)
    rd_steps: list[list[Request]] = []
    for seen in sorted(scan.rds.values(), key=lambda s: s.first):
        history = _history(sources, "rd", seen.name)
        if history is not None:
            rd_steps.append([_as_request(e) for e in history])
            spawned = RG_PATH.match(history[0].path)
            group = (
                spawned.group(1)
                if spawned
                else (_json(history[0].body) or {}).get("resource_definition", {}).get("resource_group_name")
            )
        else:
            rd_steps.append(_rd_from_answer(seen))
            group = (seen.rd or {}).get("resource_group_name")
        if isinstance(group, str):
            groups_needed.setdefault(group.upper(), None)
    for key, shown in groups_needed.items():
        if key == "DFLTRSCGRP":
            continue
        name = shown["name"] if shown else key
        history = _history(sources, "rg", name)
        if history is None:
            # the name's casing: take it from an RD that names the group
            name = next(
                (
                    (s.rd or {}).get("resource_group_name", name)
                    for s in scan.rds.values()
                    if str((s.rd or {}).get("resource_group_name", "")).upper() == key
                ),
                name,
            )
            history = _history(sources, "rg", name)
        out.extend([_as_request(e) for e in history] if history else _rg_from_answer(name, shown))
    for steps in rd_steps:
        out.extend(steps)
    return out
