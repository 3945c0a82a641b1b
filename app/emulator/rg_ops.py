"""Resource groups, spawn and placement (linstor-rest-api.md §2.3, §2.6)."""

from __future__ import annotations

import time
from typing import Any

from app.emulator import rc
from app.emulator.model import DISKLESS_POOL, Resource, ResourceDefinition, ResourceGroup, rg_json
from app.emulator.names import apply_props, name_problem, parse_filters, props_match
from app.emulator.rd_ops import Reply, add_vd, checked_modify, checked_props, get_rd_ctx, make_rd, page
from app.emulator.store import DEFAULT_RG, EmulatorState, new_uuid

# linstor-server: when neither the request nor the RG says how many replicas, autoplace asks for 2
DEFAULT_PLACE_COUNT = 2


def rg_ctx(op: int, name: str) -> rc.Ctx:
    """The RG context (MASK_RSC_GRP + RscGrp)."""
    return rc.Ctx(op, rc.MASK_RSC_GRP, {rc.KEY_RSC_GRP: name}, f"Resource group: {name}")


def check_rg_name(name: str, context: rc.Ctx | None = None) -> None:
    """FAIL_INVLD_RSC_GRP_NAME, raw on GET paths (§4.1)."""
    problem = name_problem(name)
    if problem is None:
        return
    message = f"The given resource group name '{name}' is invalid."
    if context is None:
        raise rc.raw_error(rc.FAIL_INVLD_RSC_GRP_NAME, message, cause=problem)
    raise context.err(rc.FAIL_INVLD_RSC_GRP_NAME, message, cause=problem, report=False)


def list_rgs(state: EmulatorState, query: list[tuple[str, str]], *, one: str | None = None) -> Reply:
    """GET /v1/resource-groups[/{rg}]: name and props filters, offset/limit (§2.3)."""
    names = [v for k, v in query if k == "resource_groups"] if one is None else [one]
    for name in names:
        check_rg_name(name)
    wanted = {n.upper() for n in names}
    filters = parse_filters([v for k, v in query if k == "props"])
    with state.lock:
        hits = [
            state.rgs[key]
            for key in sorted(state.rgs)
            if (not wanted or key in wanted) and props_match(state.rgs[key].props, filters)
        ]
        if one is None:
            hits = page(hits, query)
        out = [rg_json(rg) for rg in hits]
    if one is not None:
        if not out:
            raise rc.raw_error(rc.FAIL_NOT_FOUND_RSC_GRP, f"Resource group '{one}' not found.")
        return 200, out[0]
    return 200, out


def _check_filter(context: rc.Ctx, select_filter: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in select_filter.items() if v is not None}
    count = clean.get("place_count")
    if count is not None and int(count) < 1:
        raise context.err(rc.FAIL_INVLD_PLACE_COUNT, f"Invalid place count: {count}", report=False)
    return clean


def create_rg(state: EmulatorState, body: dict[str, Any]) -> Reply:
    """POST /v1/resource-groups → 201; `props` in the body are ignored upstream (§2.3)."""
    name = body.get("name") or ""
    context = rg_ctx(rc.MASK_CRT, name)
    check_rg_name(name, context)
    select_filter = _check_filter(context, body.get("select_filter") or {})
    with state.lock:
        if name.upper() in state.rgs:
            raise context.err(
                rc.FAIL_EXISTS_RSC_GRP, f"A Resource group: {name} already exists.", report=False
            )
        rg = ResourceGroup(
            name=name,
            uuid=new_uuid(),
            description=body.get("description"),
            select_filter=select_filter,
            peer_slots=body.get("peer_slots"),
        )
        state.rgs[name.upper()] = rg
    message = f"New resource group '{name}' created."
    return 201, [
        context.ok(
            rc.CREATED,
            message,
            details=f"Resource group '{name}' UUID is: {rg.uuid}",
            refs={rc.KEY_UUID: rg.uuid},
        )
    ]


def modify_rg(state: EmulatorState, name: str, body: dict[str, Any]) -> Reply:
    """PUT /v1/resource-groups/{rg}: description, props, select_filter merge (§2.3)."""
    context = rg_ctx(rc.MASK_MOD, name)
    check_rg_name(name, context)
    with state.lock:
        rg = state.rgs.get(name.upper())
        if rg is None:
            raise context.err(rc.FAIL_NOT_FOUND_RSC_GRP, f"Resource group '{name}' not found.", report=False)
        override, delete, spaces = checked_modify(context, body)
        select_filter = _check_filter(context, body.get("select_filter") or {})
        if "description" in body and body["description"] is not None:
            rg.description = body["description"] or None
        if body.get("peer_slots") is not None:
            rg.peer_slots = body["peer_slots"]
        rg.select_filter.update(select_filter)
        apply_props(rg.props, override, delete, spaces)
    message = f"Resource group '{rg.name}' modified."
    return 200, [
        context.ok(
            rc.MODIFIED,
            message,
            details=f"Resource group '{rg.name}' UUID is: {rg.uuid}",
            refs={rc.KEY_UUID: rg.uuid},
        )
    ]


def delete_rg(state: EmulatorState, name: str) -> Reply:
    """DELETE /v1/resource-groups/{rg}: WARN_NOT_FOUND (200) when missing; refused while RDs use it (§2.3)."""
    context = rg_ctx(rc.MASK_DEL, name)
    check_rg_name(name, context)
    with state.lock:
        rg = state.rgs.get(name.upper())
        if rg is None:
            return 200, [
                context.ok(rc.WARN_NOT_FOUND, f"Resource group: {name} not found.", details=context.details)
            ]
        if rg.name.upper() == DEFAULT_RG.upper():
            # not in the reference: the emulator keeps the default group that the controller always has
            raise context.err(
                rc.FAIL_EXISTS_RSC_GRP, f"Cannot delete the default resource group '{rg.name}'.", report=False
            )
        if any(rd.rg == rg.name for rd in state.rds.values()):
            raise context.err(
                rc.FAIL_EXISTS_RSC_DFN,
                f"Cannot delete resource group '{rg.name}' because it has existing resource definitions.",
                report=False,
            )
        del state.rgs[name.upper()]
    message = f"Resource group '{rg.name}' deleted."
    return 200, [context.ok(rc.DELETED, message, details=f"Resource group '{rg.name}' UUID was: {rg.uuid}")]


def spawn(state: EmulatorState, rg_name: str, body: dict[str, Any]) -> Reply:
    """POST /v1/resource-groups/{rg}/spawn → 201: RD + VDs, then autoplace with a place_count (§2.3)."""
    context = rg_ctx(rc.MASK_CRT, rg_name)
    rd_name = body.get("resource_definition_name") or ""
    sizes = [int(s) for s in body.get("volume_sizes") or []]
    with state.lock:
        rg = state.rgs.get(rg_name.upper())
        if rg is None:
            raise context.err(
                rc.FAIL_NOT_FOUND_RSC_GRP, f"Resource group '{rg_name}' not found.", report=False
            )
        entries = make_rd(
            state,
            rd_name,
            rg.name,
            body.get("resource_definition_props") or {},
            body.get("resource_definition_external_name"),
        )
        rd = state.rds[rd_name.upper()]
        try:
            for nr, size in enumerate(sizes):
                entries += add_vd(state, rd, nr, size, {})
            merged = {
                **rg.select_filter,
                **{k: v for k, v in (body.get("select_filter") or {}).items() if v is not None},
            }
            count = merged.get("place_count")
            if count is None or body.get("definitions_only"):
                reason = (
                    "definitions_only was requested"
                    if body.get("definitions_only")
                    else "no place_count given"
                )
                entries.append(
                    context.ok(
                        rc.INFO_NO_RSC_SPAWNED,
                        f"Resource definition {rd.name} and {len(sizes)} volume definition(s) created "
                        "but no resources deployed",
                        details=f"Reason: {reason}",
                    )
                )
            else:
                entries += place(state, rd, merged, int(count))
        except rc.ApiError:
            state.drop_rd(rd_name.upper())  # §2.4: any error rolls the whole transaction back
            raise
    return 201, entries


def autoplace(state: EmulatorState, rd_name: str, body: dict[str, Any]) -> Reply:
    """POST …/autoplace → 201: place_count from the request, else the RG's, else 2."""
    context = rc.Ctx(rc.MASK_CRT, rc.MASK_RSC, {rc.KEY_RSC_DFN: rd_name}, f"Resource: {rd_name}")
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        rg = state.rgs.get(rd.rg.upper())
        merged = {
            **(rg.select_filter if rg else {}),
            **{k: v for k, v in (body.get("select_filter") or {}).items() if v is not None},
        }
        count = merged.get("place_count")
        diskful = sum(1 for r in rd.resources.values() if not r.diskless)
        if merged.get("additional_place_count"):
            count = diskful + int(merged["additional_place_count"])
        return 201, place(state, rd, merged, int(count) if count is not None else DEFAULT_PLACE_COUNT)


def place(
    state: EmulatorState, rd: ResourceDefinition, select_filter: dict[str, Any], count: int
) -> list[dict[str, Any]]:
    """Pick the online nodes with the most free space until `count` diskful resources exist (lock held)."""
    context = rc.Ctx(rc.MASK_CRT, rc.MASK_RSC, {rc.KEY_RSC_DFN: rd.name}, f"Resource: {rd.name}")
    have = sum(1 for r in rd.resources.values() if not r.diskless)
    if have >= count:
        return [
            context.ok(rc.MODIFIED, f"Resource '{rd.name}' was already deployed on {have} nodes. Skipping.")
        ]
    pools = list(select_filter.get("storage_pool_list") or [])
    if select_filter.get("storage_pool"):
        pools.append(select_filter["storage_pool"])
    wanted_nodes = {n.upper() for n in select_filter.get("node_name_list") or []}
    need = sum(vd.size_kib for vd in rd.vds.values())
    candidates = []
    for key, node in state.nodes.items():
        if not node.online or key in rd.resources or (wanted_nodes and key not in wanted_nodes):
            continue
        for pool in state.pools.get(key, {}).values():
            if (not pools or pool.name in pools) and pool.total_kib - pool.allocated_kib >= need:
                candidates.append(
                    (-(pool.total_kib - pool.allocated_kib), node.name.upper(), node.name, pool.name)
                )
    candidates.sort()
    chosen: dict[str, tuple[str, str]] = {}
    for _, key, node_name, pool_name in candidates:
        if key not in chosen:
            chosen[key] = (node_name, pool_name)
    missing = count - have
    if len(chosen) < missing:
        raise context.err(
            rc.FAIL_NOT_ENOUGH_NODES,
            "Not enough available nodes",
            details=f"Resource '{rd.name}' needs {missing} more node(s), only {len(chosen)} online node(s) "
            "with enough free space match the auto-place criteria.",
        )
    entries = []
    for node_name, pool_name in list(chosen.values())[:missing]:
        entries += add_resource(state, rd, node_name, pool_name, [], {})
    entries.append(context.ok(rc.CREATED, f"Resource '{rd.name}' successfully autoplaced on {missing} nodes"))
    return entries


def add_resource(
    state: EmulatorState,
    rd: ResourceDefinition,
    node_name: str,
    pool_name: str | None,
    flags: list[str],
    props: dict[str, str],
) -> list[dict[str, Any]]:
    """Create one resource (caller holds the lock); diskless flags put it in the diskless pool."""
    context = rc.Ctx(
        rc.MASK_CRT, rc.MASK_RSC, {rc.KEY_RSC_DFN: rd.name, rc.KEY_NODE: node_name}, f"Resource: {rd.name}"
    )
    node = state.nodes.get(node_name.upper())
    if node is None:
        raise context.err(rc.FAIL_NOT_FOUND_NODE, f"Node '{node_name}' not found.", report=False)
    if node_name.upper() in rd.resources:
        raise context.err(
            rc.FAIL_EXISTS_RSC,
            f"A resource with the name '{rd.name}' on node '{node.name}' already exists.",
            report=False,
        )
    diskless = "DISKLESS" in flags or "DRBD_DISKLESS" in flags
    pool_name = DISKLESS_POOL if diskless else (pool_name or props.get("StorPoolName") or "thinpool")
    pool = None if diskless else state.pools.get(node_name.upper(), {}).get(pool_name.upper())
    if not diskless and pool is None:
        raise context.err(
            rc.FAIL_NOT_FOUND_STOR_POOL, f"Storage pool '{pool_name}' on node '{node.name}' not found."
        )
    rsc = Resource(
        node=node.name,
        uuid=new_uuid(),
        pool=pool.name if pool else pool_name,
        create_timestamp=int(time.time() * 1000),
        props=dict(props),
        flags=list(flags),
    )
    rd.resources[node.name.upper()] = rsc
    if pool is not None:
        pool.allocated_kib += sum(vd.size_kib for vd in rd.vds.values())
    return [
        context.ok(
            rc.CREATED,
            f"New resource '{rd.name}' on node '{node.name}' registered.",
            details=f"Resource '{rd.name}' on node '{node.name}' UUID is: {rsc.uuid}",
            refs={rc.KEY_UUID: rsc.uuid},
        ),
        context.ok(rc.CREATED, f"Created resource '{rd.name}' on '{node.name}'"),
    ]


def create_resources(state: EmulatorState, rd_name: str, body: list[dict[str, Any]]) -> Reply:
    """POST …/resources (array body) → 201; all or nothing."""
    context = rc.Ctx(rc.MASK_CRT, rc.MASK_RSC, {rc.KEY_RSC_DFN: rd_name}, f"Resource: {rd_name}")
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        entries: list[dict[str, Any]] = []
        done: list[str] = []
        try:
            for item in body:
                spec = item.get("resource") or {}
                props = spec.get("props") or {}
                checked_props(context, props)
                entries += add_resource(
                    state, rd, spec.get("node_name") or "", None, spec.get("flags") or [], props
                )
                done.append(spec["node_name"].upper())
        except rc.ApiError:
            for key in done:
                state.free_resource(rd, rd.resources[key])
            raise
    return 201, entries
