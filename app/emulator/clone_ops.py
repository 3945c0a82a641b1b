"""Clone of a resource definition: the copy, its simulated progress, and the sync status it shows
(linstor-rest-api.md §2.8; controller-api.jsonl #215-222)."""

from __future__ import annotations

import time
from typing import Any

from app.emulator import prop_rules, rc
from app.emulator.common import Reply, checked_modify
from app.emulator.loaders import check_rd_name, get_rd_raw, get_rd_raw_ctx, rd_ctx
from app.emulator.model import ResourceDefinition, VolumeDefinition
from app.emulator.names import apply_props
from app.emulator.place_ops import add_resource
from app.emulator.rd_ops import check_rd_free, make_rd
from app.emulator.store import EmulatorState, new_uuid

CLONED_FROM = "cloned-from"  # linstor-server InternalApiConsts: no namespace (§2.8)


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
                raise context.err(rc.FAIL_INVLD_PROP, refusal, report=False)
            override, delete, spaces = checked_modify(context, body)
            props = dict(src.props)
            props[CLONED_FROM] = src.name
            apply_props(props, override, delete, spaces)
            check_rd_name(clone_name, context, report=True)
            check_rd_free(state, clone_name, context)
            if not any(not r.diskless for r in src.resources.values()):
                # an RD without diskful resources has nothing to clone from (#215)
                raise context.err(rc.FAIL_NOT_ENOUGH_NODES, "No suitable storage pools found for cloning.")
            entries = make_rd(state, clone_name, body.get("resource_group") or src.rg, {})
        except rc.ApiError as exc:
            return 500, {**started, "messages": exc.entries}
        rd = state.rds[clone_name.upper()]
        rd.props = props  # copied keys such as `cloned-from` bypass the whitelist, as in the controller
        _copy_layout(state, src, rd)
        rd.clone_until = time.time() + state.clone_seconds
        rd.clone_failed = state.clone_fail
    return 201, {**started, "messages": entries}


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
