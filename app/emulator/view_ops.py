"""Nodes, storage pools, resources views, controller props, clone (linstor-rest-api.md §2.2, §2.6, §2.8)."""

from __future__ import annotations

import time
from typing import Any

from app.emulator import prop_rules, rc
from app.emulator.model import (
    ResourceDefinition,
    VolumeDefinition,
    node_json,
    pool_json,
    resource_json,
    sorted_props,
    volume_json,
)
from app.emulator.names import Kind, PropError, apply_props, check_props, parse_filters, props_match
from app.emulator.rd_ops import (
    Reply,
    check_rd_name,
    checked_modify,
    get_rd_raw,
    make_rd,
    page,
    prop_error,
    rd_ctx,
)
from app.emulator.rg_ops import add_resource
from app.emulator.satellite import volume_events
from app.emulator.store import EmulatorState, new_uuid

CLONED_FROM = "cloned-from"  # linstor-server InternalApiConsts: no namespace (§2.8)


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
    try:
        _, delete, _ = check_props({}, [key], kind=Kind.CONTROLLER)
    except PropError as exc:
        raise prop_error(context, exc) from None
    with state.lock:
        apply_props(state.ctrl_props, {}, delete, [])
    return 200, [context.ok(rc.DELETED, f"Successfully deleted property '{key}'")]


def clone(state: EmulatorState, src_name: str, body: dict[str, Any]) -> Reply:
    """POST …/{rd}/clone → 201 CloneStarted (500 same shape on errors; 404 RC list, §2.8;
    controller-api.jsonl #215-222)."""
    clone_name = body.get("name") or ""
    shown = clone_name or "__invalid_name__"  # the controller's placeholder for a missing name (#222)
    started = {
        "location": f"/v1/resource-definitions/{src_name}/clone/{shown}",
        "source_name": src_name,
        "clone_name": shown,
    }
    with state.lock:
        src = get_rd_raw_ctx(state, src_name)
        context = rd_ctx(rc.MASK_CRT, clone_name)
        try:
            if not clone_name:
                missing = rc.entry(
                    rc.ctx(rc.FAIL_INVLD_RSC_NAME, rc.MASK_CRT, rc.MASK_RSC_DFN),
                    "No name for the cloned resource was specified.",
                    details="Resource definition: null",
                    obj_refs={rc.KEY_RSC_DFN: None},  # type: ignore[dict-item]
                )
                raise rc.ApiError([missing])
            override_props = body.get("override_props") or {}
            refusal = prop_rules.exact_size_refusal(override_props, len(src.resources), clone=True)
            if refusal is not None:
                raise PropError(refusal, report=False)
            override, delete, spaces = check_props(
                override_props,
                body.get("delete_props") or [],
                body.get("delete_namespaces") or [],
                kind=Kind.RESOURCE_DEFINITION,
            )
            props = dict(src.props)
            props[CLONED_FROM] = src.name
            apply_props(props, override, delete, spaces)
            check_rd_name(clone_name, context, report=True)
            if clone_name.upper() in state.rds:
                raise context.err(
                    rc.FAIL_EXISTS_RSC_DFN,
                    f"A resource definition with the name '{clone_name}' already exists",
                    cause="The ResourceDefinition already exists",
                    report=False,
                )
            if not any(not r.diskless for r in src.resources.values()):
                # an RD without diskful resources has nothing to clone from (#215)
                raise context.err(rc.FAIL_NOT_ENOUGH_NODES, "No suitable storage pools found for cloning.")
            entries = make_rd(state, clone_name, body.get("resource_group") or src.rg, {})
        except PropError as exc:
            return 500, {**started, "messages": prop_error(context, exc).entries}
        except rc.ApiError as exc:
            return 500, {**started, "messages": exc.entries}
        rd = state.rds[clone_name.upper()]
        rd.props = props  # copied keys such as `cloned-from` bypass the whitelist, as in the controller
        _copy_layout(state, src, rd)
        rd.clone_until = time.time() + state.clone_seconds
        rd.clone_failed = state.clone_fail
    return 201, {**started, "messages": entries}


def get_rd_raw_ctx(state: EmulatorState, name: str) -> ResourceDefinition:
    """Source lookup of clone: a missing source escapes the flux as a 404 RC list with the loader's cause
    and correction but no context (controller-api.jsonl #220)."""
    check_rd_name(name, rd_ctx(rc.MASK_CRT, name))
    rd = state.rds.get(name.upper())
    if rd is None:
        raise rc.loader_not_found(rc.FAIL_NOT_FOUND_RSC_DFN, "resource definition", name)
    return rd


def _copy_layout(state: EmulatorState, src: ResourceDefinition, rd: ResourceDefinition) -> None:
    for nr, vd in src.vds.items():
        rd.vds[nr] = VolumeDefinition(
            number=nr, size_kib=vd.size_kib, uuid=new_uuid(), minor=state.alloc_minor(), props=dict(vd.props)
        )
    for rsc in src.resources.values():
        add_resource(
            state, rd, rsc.node, None if rsc.diskless else rsc.pool, list(rsc.flags), dict(rsc.props)
        )


def clone_status(state: EmulatorState, clone_name: str) -> Reply:
    """GET …/clone/{clone}: found by name plus the existence of `cloned-from` ({rd} is unused, §2.8)."""
    check_rd_name(clone_name)
    with state.lock:
        rd = state.rds.get(clone_name.upper())
        if rd is None or CLONED_FROM not in rd.props:
            raise rc.raw_error(rc.FAIL_NOT_FOUND_RSC_DFN, "Cloned resource not found.")
        if rd.clone_failed:
            return 200, {"status": "FAILED"}
        if rd.clone_until is not None and time.time() < rd.clone_until:
            return 200, {"status": "CLONING"}
        return 200, {"status": "COMPLETE"}


def sync_status(state: EmulatorState, name: str) -> Reply:
    """GET …/sync-status: {"synced_on_all": bool}."""
    with state.lock:
        rd = get_rd_raw(state, name)
        cloning = "CLONING" in rd.flags()
    return 200, {"synced_on_all": not cloning}
