"""Resource groups and spawn (linstor-rest-api.md §2.3)."""

from __future__ import annotations

from typing import Any

from app.emulator import rc
from app.emulator.common import Reply, checked_modify, modified_entry, page, props_entries
from app.emulator.loaders import not_found
from app.emulator.model import ResourceGroup
from app.emulator.names import apply_props, name_problem, parse_filters, props_match
from app.emulator.place_ops import DEFAULT_PLACE_COUNT, place
from app.emulator.rd_ops import make_rd
from app.emulator.shapes import rg_json
from app.emulator.store import DEFAULT_RG, EmulatorState, new_uuid


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
            raise not_found(context, rc.FAIL_NOT_FOUND_RSC_GRP, "resource group", name)
        override, delete, spaces = checked_modify(context, body)
        select_filter = _check_filter(context, body.get("select_filter") or {})
        if "description" in body and body["description"] is not None:
            rg.description = body["description"] or None
        if body.get("peer_slots") is not None:
            rg.peer_slots = body["peer_slots"]
        rg.select_filter.update(select_filter)
        apply_props(rg.props, override, delete, spaces)
    return 200, [
        *props_entries(context, body.get("override_props") or {}, body.get("delete_props") or []),
        modified_entry(context, f"Resource group '{rg.name}'", rg.uuid),
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
            raise not_found(context, rc.FAIL_NOT_FOUND_RSC_GRP, "resource group", rg_name)
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
