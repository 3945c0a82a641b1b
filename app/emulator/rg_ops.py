"""Resource groups, spawn and placement (linstor-rest-api.md §2.3, §2.6)."""

from __future__ import annotations

import time
from typing import Any

from app.emulator import rc
from app.emulator.model import (
    DISKLESS_POOL,
    Resource,
    ResourceDefinition,
    ResourceGroup,
    StoragePool,
    rg_json,
)
from app.emulator.names import apply_props, name_problem, parse_filters, props_match
from app.emulator.rd_ops import Reply, checked_modify, checked_props, get_rd_ctx, make_rd, page, props_entries
from app.emulator.satellite import deploy_props, volume_events
from app.emulator.store import DEFAULT_RG, EmulatorState, new_uuid

# linstor-server: when neither the request nor the RG says how many replicas, autoplace asks for 2
DEFAULT_PLACE_COUNT = 2


def rg_ctx(op: int, name: str) -> rc.Ctx:
    """The RG context (MASK_RSC_GRP + RscGrp); the controller's RG modify and delete carry the create bit
    too (controller-api.jsonl #30, #46, #53), so `op` is kept for readability only."""
    del op
    return rc.Ctx(rc.MASK_CRT, rc.MASK_RSC_GRP, {rc.KEY_RSC_GRP: name}, f"Resource group: {name}")


def check_rg_name(name: str, context: rc.Ctx | None = None) -> None:
    """FAIL_INVLD_RSC_GRP_NAME, raw on GET paths (§4.1)."""
    # raw ones have no cause (controller-api.jsonl #27, #29); in an operation it is reported (#15-#20, #54)
    problem = name_problem(name)
    if problem is None:
        return
    message = f"The given resource group name '{name}' is invalid."
    if context is None:
        raise rc.raw_error(rc.FAIL_INVLD_RSC_GRP_NAME, message)
    raise context.err(rc.FAIL_INVLD_RSC_GRP_NAME, message, cause=problem)


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
    """A select filter as the controller stores it: a single storage pool in the list is also
    `storage_pool`, layer names upper-case (service-traffic.jsonl #18, #20)."""
    clean = {k: v for k, v in select_filter.items() if v is not None}
    count = clean.get("place_count")
    if count is not None and int(count) < 1:
        name = context.refs.get(rc.KEY_RSC_GRP, "")
        raise context.err(
            rc.FAIL_INVLD_PLACE_COUNT, f"Resource group: {name}, place-count must be positive.", report=False
        )
    pools = clean.get("storage_pool_list")
    if pools and len(pools) == 1 and not clean.get("storage_pool"):
        clean["storage_pool"] = pools[0]
    elif clean.get("storage_pool") and not pools:
        # and the other way round (golinstor-traffic.jsonl #6 shows the group made at controller-api #183)
        clean["storage_pool_list"] = [clean["storage_pool"]]
    if clean.get("layer_stack"):
        clean["layer_stack"] = [str(layer).upper() for layer in clean["layer_stack"]]
    return clean


def create_rg(state: EmulatorState, body: dict[str, Any]) -> Reply:
    """POST /v1/resource-groups → 201; `props` in the body are ignored upstream (§2.3)."""
    name = body.get("name") or ""
    context = rg_ctx(rc.MASK_CRT, name)
    check_rg_name(name, context)
    select_filter = {
        "place_count": DEFAULT_PLACE_COUNT,
        **_check_filter(context, body.get("select_filter") or {}),
    }
    with state.lock:
        if name.upper() in state.rgs:
            raise context.err(
                rc.FAIL_EXISTS_RSC_GRP,
                f"A Resource group: {name} already exists.",
                cause="The ResourceGroup already exists",
                report=False,
            )
        rg = ResourceGroup(
            name=name,
            uuid=new_uuid(),
            description=body.get("description"),
            select_filter=select_filter,
            peer_slots=body.get("peer_slots"),
        )
        state.rgs[name.upper()] = rg
        warnings = _missing_pools_warning(state, select_filter)
    message = f"New resource group '{name}' created."
    return 201, [
        *warnings,
        context.ok(
            rc.CREATED,
            message,
            details=f"Resource group '{name}' UUID is: {rg.uuid}",
            refs={rc.KEY_UUID: rg.uuid},
            order=(rc.KEY_UUID,),
        ),
    ]


def _missing_pools_warning(state: EmulatorState, select_filter: dict[str, Any]) -> list[dict[str, Any]]:
    """A plain warning for filter pools that no node has (controller-api.jsonl #183); none when all exist."""
    wanted = list(select_filter.get("storage_pool_list") or [])
    if select_filter.get("storage_pool") and select_filter["storage_pool"] not in wanted:
        wanted.insert(0, select_filter["storage_pool"])
    known = {pool.upper() for pools in state.pools.values() for pool in pools}
    missing = [pool for pool in wanted if pool.upper() not in known]
    if not missing:
        return []
    text = "".join(f"\n\t{pool}" for pool in missing)
    message = f"The following configured storage pools do not exist on any node:{text}"
    return [rc.entry(rc.WARN_NOT_FOUND, message)]


def modify_rg(state: EmulatorState, name: str, body: dict[str, Any]) -> Reply:
    """PUT /v1/resource-groups/{rg}: description, props, select_filter merge (§2.3)."""
    context = rg_ctx(rc.MASK_MOD, name)
    check_rg_name(name, context)
    with state.lock:
        rg = state.rgs.get(name.upper())
        if rg is None:
            raise _rg_not_found(context, name)
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
        *props_entries(context, body.get("override_props") or {}, body.get("delete_props") or []),
        context.ok(
            rc.MODIFIED,
            message,
            details=f"Resource group '{rg.name}' UUID is: {rg.uuid}",
            refs={rc.KEY_UUID: rg.uuid},
            order=(rc.KEY_UUID,),
        ),
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
    details = f"Resource group '{rg.name}' UUID was: {rg.uuid}"
    return 200, [
        context.ok(rc.DELETED, message, details=details, refs={rc.KEY_UUID: rg.uuid}, order=(rc.KEY_UUID,))
    ]


def spawn(state: EmulatorState, rg_name: str, body: dict[str, Any]) -> Reply:
    """POST /v1/resource-groups/{rg}/spawn → 201: RD + VDs, then autoplace (controller-api.jsonl #184-193,
    service-traffic.jsonl #22); any error rolls the whole spawn back."""
    rd_name = body.get("resource_definition_name") or ""
    context = rc.Ctx(
        rc.MASK_CRT,
        rc.MASK_RSC_GRP,
        {rc.KEY_RSC_DFN: rd_name, rc.KEY_RSC_GRP: rg_name},
        f"Resource group: {rg_name}",
    )
    sizes = [int(s) for s in body.get("volume_sizes") or []]
    with state.lock:
        rg = state.rgs.get(rg_name.upper())
        if rg is None:
            raise _rg_not_found(context, rg_name)
        entries = [
            context.ok(
                rc.INFO_PARTIAL_SPAWN,
                "Resource-group doesn't have any volume-groups, automatically assume partial mode.",
            )
        ]
        entries += make_rd(
            state,
            rd_name,
            rg.name,
            body.get("resource_definition_props") or {},
            body.get("resource_definition_external_name"),
            spawn_context=context,
            vd_sizes=sizes,
        )
        rd = state.rds[rd_name.upper()]
        try:
            merged = {
                **rg.select_filter,
                **{k: v for k, v in (body.get("select_filter") or {}).items() if v is not None},
            }
            if body.get("definitions_only"):
                entries.append(
                    rc.entry(
                        rc.ctx(rc.INFO_NO_RSC_SPAWNED, context.op, context.obj),
                        f"Resource definition {rd.name} and {len(sizes)} created but no resources deployed",
                        cause="--definitions-only was set",
                        obj_refs=context.refs,
                    )
                )
            else:
                count = merged.get("place_count") or DEFAULT_PLACE_COUNT
                entries += place(state, rd, merged, int(count), context)
        except rc.ApiError:
            state.drop_rd(rd_name.upper())  # §2.4: any error rolls the whole transaction back
            raise
    return 201, entries


def _rg_not_found(context: rc.Ctx, name: str) -> rc.ApiError:
    return context.err(
        rc.FAIL_NOT_FOUND_RSC_GRP,
        f"Resource group '{name}' not found.",
        cause=f"The specified resource group '{name}' could not be found in the database",
        correction=f"Create a resource group with the name '{name}' first.",
        report=False,
    )


def autoplace(state: EmulatorState, rd_name: str, body: dict[str, Any]) -> Reply:
    """POST …/autoplace → 201: place_count from the request, else the RG's (2 by default)."""
    context = rc.Ctx(rc.MASK_CRT, rc.MASK_RSC, {rc.KEY_RSC_DFN: rd_name}, f"Auto-placing resource: {rd_name}")
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        rg = state.rgs.get(rd.rg.upper())
        merged = {
            **(rg.select_filter if rg else {}),
            **{k: v for k, v in (body.get("select_filter") or {}).items() if v is not None},
        }
        if "diskless_on_remaining" in body:
            merged.setdefault("diskless_on_remaining", body["diskless_on_remaining"])
        count = merged.get("place_count")
        diskful = sum(1 for r in rd.resources.values() if not r.diskless)
        if merged.get("additional_place_count"):
            count = diskful + int(merged["additional_place_count"])
        count = int(count) if count is not None else DEFAULT_PLACE_COUNT
        return 201, place(state, rd, merged, count, context)


def _not_enough_nodes(
    context: rc.Ctx, rd: ResourceDefinition, select_filter: dict[str, Any], count: int, need_kib: int
) -> rc.ApiError:
    """FAIL_NOT_ENOUGH_NODES with the autoplacer's criteria text (controller-api.jsonl #184, #193, #214)."""
    pools = list(select_filter.get("storage_pool_list") or [])
    if select_filter.get("storage_pool") and select_filter["storage_pool"] not in pools:
        pools.insert(0, select_filter["storage_pool"])
    criteria = []
    if pools:
        criteria.append(f" * has a deployed storage pool named {_java_list(pools)}")
        criteria.append(f" * the storage pools have to have at least '{need_kib}' free space")
    criteria.append(
        " * the current access context has enough privileges to use the node and the storage pool"
    )
    criteria.append(" * the node is online")
    config = [f"   Replica count: {count}", f"   Additional replica count: {count}"]
    if pools:
        config.append("   Storage pool name:")
        config += [f"      {pool}" for pool in pools]
    config += ["   Do not place with resource:", f"      {rd.name}"]
    if context.obj == rc.MASK_RSC:
        remaining = bool(select_filter.get("diskless_on_remaining"))
        config.append(f"   Diskless on remaining: {str(remaining).lower()}")
    details = (
        "Not enough nodes fulfilling the following auto-place criteria:\n"
        + "\n".join(criteria)
        + "\n\nAuto-place configuration details:\n"
        + "\n".join(config)
        + f"\n\n{context.details}"
    )
    return context.err(rc.FAIL_NOT_ENOUGH_NODES, "Not enough available nodes", details=details, report=False)


# the autoplacer's default MaxOversubscriptionRatio: thin pools take up to 20 times their free space
# (the recorded 536 MiB FILE_THIN pool holds 1 GiB volumes, service-traffic.jsonl #2)
OVERSUBSCRIPTION = 20


def placeable_kib(pool: StoragePool) -> int:
    """How much more a pool may be given: thin pools are oversubscribed, thick ones are not."""
    if "THIN" in pool.provider:
        return pool.total_kib * OVERSUBSCRIPTION - pool.allocated_kib
    return pool.total_kib - pool.allocated_kib


def _java_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def place(
    state: EmulatorState,
    rd: ResourceDefinition,
    select_filter: dict[str, Any],
    count: int,
    context: rc.Ctx,
) -> list[dict[str, Any]]:
    """Pick the online nodes with the most free space until `count` diskful resources exist (lock held);
    the answer is the autoplacer's and the satellites' (service-traffic.jsonl #22, #180)."""
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
            if pool.provider == "DISKLESS":
                continue
            room = placeable_kib(pool)
            if (not pools or pool.name in pools) and room >= need:
                candidates.append((-room, node.name.upper(), node.name, pool.name))
    candidates.sort()
    chosen: dict[str, tuple[str, str]] = {}
    for _, key, node_name, pool_name in candidates:
        if key not in chosen:
            chosen[key] = (node_name, pool_name)
    missing = count - have
    if len(chosen) < missing:
        raise _not_enough_nodes(context, rd, select_filter, count, need)
    picked = list(chosen.values())[:missing]
    layers = [str(layer).upper() for layer in select_filter.get("layer_stack") or []]
    for node_name, pool_name in picked:
        add_resource(state, rd, node_name, pool_name, [], {}, layers=layers)
    entries = [
        context.ok(rc.ctx(rc.CREATED, 0, rc.MASK_RSC), "Successfully set property key(s): StorPoolName")
    ]
    refs: dict[str, str] = {}
    for index, (node_name, pool_name) in enumerate(picked):
        pool = state.pools[node_name.upper()][pool_name.upper()]
        refs[f"StoragePool/{index}/0"] = f"{pool.name},{pool.provider}"
        refs[f"Node/{index}"] = node_name
    used = ", ".join(f"'{node} ({pool})'" for node, pool in picked)
    entries.append(
        context.ok(
            rc.CREATED,
            f"Resource '{rd.name}' successfully autoplaced on {missing} nodes",
            details=f"Used nodes (storage pool name): {used}",
            refs=refs,
            order=(rc.KEY_RSC_GRP, "StoragePool/0/0", rc.KEY_RSC_DFN, "Node/0"),
        )
    )
    entries += volume_events(state, rd, context, rc.CREATED, "created", [node for node, _ in picked])
    for node_name, _ in picked:
        entries.append(context.ok(rc.MODIFIED, f"Created resource '{rd.name}' on '{node_name}'"))
    deploy_props(state, rd)
    return entries


def add_resource(
    state: EmulatorState,
    rd: ResourceDefinition,
    node_name: str,
    pool_name: str | None,
    flags: list[str],
    props: dict[str, str],
    *,
    layers: list[str] | None = None,
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
    if not rd.resources:
        rd.layers = list(layers) if layers else rd_default_layers(state, rd)
    rsc = Resource(
        node=node.name,
        uuid=new_uuid(),
        pool=pool.name if pool else pool_name,
        create_timestamp=int(time.time() * 1000),
        props={"StorPoolName": pool.name, **props} if pool else dict(props),
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


def rd_default_layers(state: EmulatorState, rd: ResourceDefinition) -> list[str]:
    """The layer stack of the RD's group, else DRBD over STORAGE."""
    rg = state.rgs.get(rd.rg.upper())
    stack = (rg.select_filter.get("layer_stack") if rg else None) or ["DRBD", "STORAGE"]
    return [str(layer).upper() for layer in stack]


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
