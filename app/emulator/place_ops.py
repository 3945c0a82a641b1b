"""Where resources go: POST …/resources and autoplace, the autoplacer and the one way a resource is added,
and the rule that keeps the last disk under diskless peers (linstor-rest-api.md §2.6)."""

from __future__ import annotations

import time
from typing import Any

from app.emulator import rc
from app.emulator.common import Reply, checked_props, set_keys_message
from app.emulator.loaders import get_rd_ctx
from app.emulator.model import DISKLESS_POOL, Resource, ResourceDefinition, StoragePool
from app.emulator.satellite import deploy_props, volume_events
from app.emulator.store import EmulatorState, new_uuid

# linstor-server: when neither the request nor the RG says how many replicas, autoplace asks for 2
DEFAULT_PLACE_COUNT = 2

# the autoplacer's default MaxOversubscriptionRatio: thin pools take up to 20 times their free space
# (the recorded 536 MiB FILE_THIN pool holds 1 GiB volumes, service-traffic.jsonl #2)
OVERSUBSCRIPTION = 20


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
    entries = [context.ok(rc.ctx(rc.CREATED, 0, rc.MASK_RSC), set_keys_message(["StorPoolName"]))]
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


def placeable_kib(pool: StoragePool) -> int:
    """How much more a pool may be given: thin pools are oversubscribed, thick ones are not."""
    if "THIN" in pool.provider:
        return pool.total_kib * OVERSUBSCRIPTION - pool.allocated_kib
    return pool.total_kib - pool.allocated_kib


def _java_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


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


def is_last_disk(rd: ResourceDefinition, node_name: str) -> bool:
    """CtrlRscDeleteApiHelper.ensureNotLastDisk: the only undeleted disk while diskless peers remain."""
    rsc = rd.resources[node_name.upper()]
    others = [r for key, r in rd.resources.items() if key != node_name.upper() and "DELETE" not in r.flags]
    return not rsc.diskless and any(r.diskless for r in others) and not any(not r.diskless for r in others)


def last_disk_refusal(context: rc.Ctx, rd: ResourceDefinition, *, describe: bool = True) -> rc.ApiError:
    """FAIL_IN_USE for the last disk of `rd` under diskless peers; the refusals a node deletion lists carry
    no object description (`describe`)."""
    return rc.fail(
        context,
        rc.FAIL_IN_USE,
        f"Last resource of '{rd.name}' with disk still has diskless resources attached.",
        cause="Resource still has diskless users.",
        correction="Before deleting this resource, delete the diskless resources attached to it.",
        describe=describe,
    )
