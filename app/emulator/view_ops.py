"""Nodes, storage pools and resources as views, and the controller props (linstor-rest-api.md §2.2, §2.6)."""

from __future__ import annotations

from typing import Any

from app.emulator import rc
from app.emulator.common import Reply, checked_modify, page
from app.emulator.loaders import get_rd_raw_ctx
from app.emulator.names import apply_props, parse_filters, props_match
from app.emulator.satellite import volume_events
from app.emulator.shapes import node_json, pool_json, resource_json, sorted_props, volume_json
from app.emulator.store import EmulatorState


def list_nodes(state: EmulatorState, query: list[tuple[str, str]], *, one: str | None = None) -> Reply:
    """GET /v1/nodes[/{node}]: Node objects sorted by name, `nodes` and `props` filters."""
    names = {v.upper() for k, v in query if k == "nodes"} if one is None else {one.upper()}
    filters = parse_filters([v for k, v in query if k == "props"])
    with state.lock:
        hits = [
            state.nodes[key]
            for key in sorted(state.nodes)
            if (not names or key in names) and props_match(state.nodes[key].props, filters)
        ]
        hits = page(hits, query)
        out = [node_json(n) for n in hits]
    if one is not None:
        if not out:
            raise rc.raw_error(rc.FAIL_NOT_FOUND_NODE, f"Node '{one}' not found.")
        return 200, out[0]
    return 200, out


def list_pools(state: EmulatorState, query: list[tuple[str, str]], node: str | None = None) -> Reply:
    """GET /v1/view/storage-pools and /v1/nodes/{node}/storage-pools: by pool name, then node name (the
    controller walks its storage-pool definitions, then each one's pools)."""
    nodes = {v.upper() for k, v in query if k == "nodes"}
    if node is not None:
        if node.upper() not in state.nodes:
            # CtrlApiDataLoader.loadNode inside doInScope: the raw entry keeps its cause and correction
            raise rc.loader_not_found(rc.FAIL_NOT_FOUND_NODE, "node", node)
        nodes = {node.upper()}
    pool_names = {v.upper() for k, v in query if k == "storage_pools"}
    with state.lock:
        found = [
            (pkey, key, pool)
            for key, pools in state.pools.items()
            if not nodes or key in nodes
            for pkey, pool in pools.items()
            if not pool_names or pkey in pool_names
        ]
        out = [pool_json(pool, state.nodes[key]) for _, key, pool in sorted(found, key=lambda f: f[:2])]
    out = page(out, query)
    return 200, out


def list_resources(
    state: EmulatorState, rd_name: str, query: list[tuple[str, str]], node: str | None = None
) -> Reply:
    """GET …/{rd}/resources[/{node}]."""
    with state.lock:
        rd = state.rds.get(rd_name.upper())
        if rd is None:
            get_rd_raw_ctx(state, rd_name)  # raises: the loader's 404 (controller-api.jsonl #179)
        assert rd is not None
        if node is not None:
            rsc = rd.resources.get(node.upper())
            if rsc is None:
                raise rc.raw_error(rc.FAIL_NOT_FOUND_RSC, f"Resource '{rd_name}' on '{node}' not found.")
            return 200, resource_json(rd, rsc)
        out = [resource_json(rd, rd.resources[k]) for k in sorted(rd.resources)]
    out = page(out, query)
    return 200, out


def view_resources(state: EmulatorState, query: list[tuple[str, str]]) -> Reply:
    """GET /v1/view/resources: ResourceWithVolumes, filters nodes/resources/storage_pools/props (§2.6)."""
    nodes = {v.upper() for k, v in query if k == "nodes"}
    rds = {v.upper() for k, v in query if k == "resources"}
    pools = {v.upper() for k, v in query if k == "storage_pools"}
    filters = parse_filters([v for k, v in query if k == "props"])
    out: list[dict[str, Any]] = []
    with state.lock:
        for rd in state.iter_rds():
            if (rds and rd.name.upper() not in rds) or not rd.resources:
                continue
            for key in sorted(rd.resources):
                rsc = rd.resources[key]
                if (nodes and key not in nodes) or (pools and rsc.pool.upper() not in pools):
                    continue
                if filters and not props_match(rsc.props, filters):
                    continue
                vols = [volume_json(rd, rsc, rd.vds[nr]) for nr in sorted(rd.vds)]
                out.append(resource_json(rd, rsc, volumes=vols))
    out = page(out, query)
    return 200, out


def ctrl_props(state: EmulatorState) -> Reply:
    """GET /v1/controller/properties: a plain object, keys in TreeMap order (controller-api.jsonl #5)."""
    with state.lock:
        return 200, sorted_props(state.ctrl_props)


def set_ctrl_props(state: EmulatorState, body: dict[str, Any]) -> Reply:
    """POST /v1/controller/properties → 201: one entry per key as sent, then the satellites' answers (#6)."""
    context = rc.Ctx(rc.MASK_MOD, rc.MASK_CTRL_CONF, {})
    override, delete, spaces = checked_modify(context, body)
    entries = [
        context.ok(
            rc.ctx(rc.CREATED, rc.MASK_CRT, 0), f"Successfully set property '{key}' to value '{value}'"
        )
        for key, value in (body.get("override_props") or {}).items()
    ]
    entries += [
        context.ok(rc.ctx(rc.DELETED, rc.MASK_DEL, 0), f"Successfully deleted property '{key}'")
        for key in body.get("delete_props") or []
    ]
    with state.lock:
        apply_props(state.ctrl_props, override, delete, spaces)
        if entries:
            entries += _ctrl_props_applied(state)
    if not entries:
        entries.append(context.ok(rc.MODIFIED, "Controller properties unchanged."))
    return 201, entries


def _ctrl_props_applied(state: EmulatorState) -> list[dict[str, Any]]:
    """Each connected satellite applies new controller props to every deployed volume, then says so (#6)."""
    entries = []
    for key in sorted(state.nodes):
        node = state.nodes[key]
        if not node.online or not state.has_satellite(node.name):
            continue
        for rd in state.iter_rds():
            rd_context = rc.Ctx(rc.MASK_MOD, rc.MASK_CTRL_CONF, {rc.KEY_RSC_DFN: rd.name})
            entries += volume_events(state, rd, rd_context, rc.MODIFIED, "resized", [node.name])
        applied = rc.ctx(rc.MASK_INFO, rc.MASK_MOD, rc.MASK_CTRL_CONF)
        entries.append(rc.entry(applied, f"({node.name}) Controller properties applied"))
    return entries


def delete_ctrl_prop(state: EmulatorState, key: str) -> Reply:
    """DELETE /v1/controller/properties/{key} (the key may contain `/`); no satellite update (#8)."""
    context = rc.Ctx(rc.MASK_DEL, rc.MASK_CTRL_CONF, {})
    _, delete, _ = checked_modify(context, {"delete_props": [key]})
    with state.lock:
        apply_props(state.ctrl_props, {}, delete, [])
    return 200, [context.ok(rc.DELETED, f"Successfully deleted property '{key}'")]
