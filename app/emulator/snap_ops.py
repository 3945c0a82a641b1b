"""Snapshots: create, list, modify, delete, restore, rollback (linstor-rest-api.md §2.7, §6)."""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from app.emulator import rc
from app.emulator.model import ResourceDefinition, SnapshotDefinition, snapshot_json
from app.emulator.names import apply_props, name_problem
from app.emulator.rd_ops import (
    Reply,
    add_vd,
    check_rd_name,
    checked_modify,
    checked_props,
    get_rd_ctx,
    get_rd_raw,
    page,
    vd_ctx,
)
from app.emulator.rg_ops import add_resource
from app.emulator.satellite import deploy_props, snapshot_events, volume_events
from app.emulator.store import EmulatorState, new_uuid

_ALPHANUMERIC = string.ascii_letters + string.digits


def snap_ctx(op: int, rd: str, snap: str) -> rc.Ctx:
    """The snapshot context (MASK_SNAPSHOT + RscDfn, Snapshot; CtrlSnapshotApiCallHandler)."""
    refs = {rc.KEY_RSC_DFN: rd, rc.KEY_SNAPSHOT: snap}
    return rc.Ctx(op, rc.MASK_SNAPSHOT, refs, f"Resource: {rd}, Snapshot: {snap}")


def _check_snap_name(name: str, context: rc.Ctx) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise context.err(
            rc.FAIL_INVLD_SNAPSHOT_NAME,
            f"The given snapshot name '{name}' is invalid.",
            cause=problem,
        )


def create_snapshot(state: EmulatorState, rd_name: str, body: dict[str, Any]) -> Reply:
    """POST …/snapshots → 201 (§6.1)."""
    with state.lock:
        return 201, make_snapshot(
            state,
            rd_name,
            body.get("name") or "",
            body.get("nodes") or [],
            body.get("snapshot_definition_props") or {},
        )


def make_snapshot(
    state: EmulatorState,
    rd_name: str,
    snap_name: str,
    nodes: list[str],
    props: dict[str, str],
    *,
    commit: bool = True,
) -> list[dict[str, Any]]:
    """Validate and (when `commit`) create one snapshot; caller holds the lock (§6.1 steps 1-7)."""
    context = snap_ctx(rc.MASK_CRT, rd_name, snap_name)
    rd = get_rd_ctx(state, rd_name, context)
    _check_snap_name(snap_name, context)
    if snap_name.upper() in rd.snapshots:
        raise context.err(
            rc.FAIL_EXISTS_SNAPSHOT_DFN,
            f"A snapshot definition with the name '{snap_name}' already exists in resource definition "
            f"'{rd.name}'.",
            report=False,
        )
    clean = checked_props(context, props)
    diskful = [r for r in rd.resources.values() if not r.diskless]
    online = [r for r in diskful if state.nodes[r.node.upper()].online]
    if not online:
        # golinstor-traffic.jsonl #24, controller-api.jsonl #197: the nodes asked for come first
        asked = f"Nodes: {', '.join(nodes)}; " if nodes else ""
        raise context.err(
            rc.FAIL_NOT_CONNECTED,
            "No diskful connected satellite for snapshot or no resources.",
            details=f"Snapshots need at least one diskful online satellite.\n{asked}{context.details}",
        )
    entries: list[dict[str, Any]] = []
    if nodes:
        chosen = []
        for node in nodes:
            rsc = rd.resources.get(node.upper())
            if rsc is None:
                raise context.err(
                    rc.FAIL_NOT_FOUND_RSC, f"Resource '{rd.name}' on node '{node}' not found.", report=False
                )
            chosen.append(rsc)
    else:
        chosen = online
        for rsc in diskful:
            if rsc not in online:
                entries.append(
                    context.ok(
                        rc.WARN_NOT_CONNECTED,
                        f"Snapshot for resource '{rd.name}' will not be created on node '{rsc.node}' because "
                        "that node is currently offline.",
                    )
                )
    if not commit:
        return entries
    sequence = 1 + max((int(x.props.get("SequenceNumber", "0")) for x in rd.snapshots.values()), default=0)
    snap = SnapshotDefinition(
        name=snap_name,
        uuid=new_uuid(),
        nodes=sorted((r.node for r in chosen), key=str.upper),
        create_timestamp=int(time.time() * 1000),
        volumes=[(nr, rd.vds[nr].size_kib) for nr in sorted(rd.vds)],
        rd_props=dict(rd.props),  # §6.1 step 3: the RD's props at snapshot time
        # service-traffic.jsonl #58: the controller's own snapshot-definition props
        props={"BackupShipping/BackupNodeIdsToReset": "", "SequenceNumber": str(sequence), **clean},
        vd_props={nr: dict(rd.vds[nr].props) for nr in rd.vds},
        node_pools={r.node.upper(): r.pool for r in chosen},
    )
    rd.snapshots[snap_name.upper()] = snap
    entries.insert(
        0,
        context.ok(
            rc.CREATED,
            f"New snapshot '{snap_name}' of resource '{rd.name}' registered.",
            details=f"Snapshot '{snap_name}' of resource '{rd.name}' UUID is: {snap.uuid}",
            refs={rc.KEY_UUID: snap.uuid},
            order=(rc.KEY_SNAPSHOT, rc.KEY_UUID),
        ),
    )
    entries += take_snapshot(state, rd, context, snap_name, snap.nodes)
    return entries


def take_snapshot(
    state: EmulatorState, rd: ResourceDefinition, context: rc.Ctx, snap_name: str, nodes: list[str]
) -> list[dict[str, Any]]:
    """The satellites' side of taking a snapshot: suspend, take, resume (service-traffic.jsonl #56)."""
    entries: list[dict[str, Any]] = []
    resized = volume_events(state, rd, context, rc.MODIFIED, "resized", nodes)
    on = ", ".join(nodes)
    entries += resized
    entries.append(context.ok(rc.MODIFIED, f"Suspended IO of '[{rd.name}]' on '{on}' for snapshot"))
    entries += resized
    entries += snapshot_events(state, rd, context, snap_name, rc.CREATED, "created", sorted(rd.vds), nodes)
    entries.append(context.ok(rc.MODIFIED, f"Took snapshot of '[{rd.name}]' on '{on}'"))
    entries += resized
    entries.append(context.ok(rc.MODIFIED, f"Resumed IO of '[{rd.name}]' on '{on}' after snapshot"))
    return entries


def multi_snapshot(state: EmulatorState, body: dict[str, Any]) -> Reply:
    """POST /v1/actions/snapshot/multi → 201; validated as a whole before anything is taken."""
    items: list[dict[str, Any]] = body.get("snapshots") or []
    with state.lock:
        for item in items:
            make_snapshot(
                state,
                item.get("resource_name") or "",
                item.get("name") or "",
                item.get("nodes") or [],
                {},
                commit=False,
            )
        entries: list[dict[str, Any]] = []
        for item in items:
            entries += make_snapshot(state, item["resource_name"], item["name"], item.get("nodes") or [], {})
    return 201, entries


def list_snapshots(
    state: EmulatorState, rd_name: str, query: list[tuple[str, str]], snap: str | None = None
) -> Reply:
    """GET …/snapshots[/{snap}]; for one snapshot offset/limit apply before the name match (§2.7 quirk)."""
    with state.lock:
        rd = get_rd_raw(state, rd_name)
        snaps = [rd.snapshots[k] for k in sorted(rd.snapshots)]
        snaps = page(snaps, query)
        if snap is not None:
            hit = [s for s in snaps if s.name.upper() == snap.upper()]
            if not hit:
                raise rc.raw_error(rc.FAIL_NOT_FOUND_SNAPSHOT, f"Snapshot '{snap}' not found.")
            return 200, snapshot_json(rd.name, hit[0])
        return 200, [snapshot_json(rd.name, s) for s in snaps]


def view_snapshots(state: EmulatorState, query: list[tuple[str, str]]) -> Reply:
    """GET /v1/view/snapshots: `resources` (case-insensitive) and `nodes` (any) filters, no props filter."""
    rds = [v for k, v in query if k == "resources"]
    for name in rds:
        check_rd_name(name)
    wanted = {n.upper() for n in rds}
    nodes = {v.upper() for k, v in query if k == "nodes"}
    out: list[dict[str, Any]] = []
    with state.lock:
        for rd in state.iter_rds():
            if not rd.snapshots or (wanted and rd.name.upper() not in wanted):
                continue
            for key in sorted(rd.snapshots):
                snap = rd.snapshots[key]
                if nodes and not any(n.upper() in nodes for n in snap.nodes):
                    continue
                out.append(snapshot_json(rd.name, snap))
    out = page(out, query)
    return 200, out


def _get_snap(rd: ResourceDefinition, name: str, context: rc.Ctx) -> SnapshotDefinition:
    snap = rd.snapshots.get(name.upper())
    if snap is None:
        # controller-api.jsonl #209-211: the wording is the same whatever the context
        raise context.err(
            rc.FAIL_NOT_FOUND_SNAPSHOT_DFN,
            f"Snapshot '{name}' of resource '{rd.name}' not found.",
            report=False,
        )
    return snap


def modify_snapshot(state: EmulatorState, rd_name: str, snap_name: str, body: dict[str, Any]) -> Reply:
    """PUT …/snapshots/{snap}: snapshot-definition props (REST ≥ 1.26)."""
    context = snap_ctx(rc.MASK_MOD, rd_name, snap_name)
    with state.lock:
        snap = _get_snap(get_rd_ctx(state, rd_name, context), snap_name, context)
        override, delete, spaces = checked_modify(context, body)
        apply_props(snap.props, override, delete, spaces)
    return 200, [
        context.ok(rc.MODIFIED, f"Snapshot definition '{snap.name}' of resource '{rd_name}' modified.")
    ]


def delete_snapshot(
    state: EmulatorState, rd_name: str, snap_name: str, query: list[tuple[str, str]]
) -> Reply:
    """DELETE …/snapshots/{snap}[?nodes=…]: missing RD or snapshot → WARN_NOT_FOUND with 200 (§6.3)."""
    context = snap_ctx(rc.MASK_DEL, rd_name, snap_name)
    nodes = {v.upper() for k, v in query if k == "nodes"}
    with state.lock:
        rd = state.rds.get(rd_name.upper())
        snap = rd.snapshots.get(snap_name.upper()) if rd is not None else None
        if rd is None or snap is None:
            message = f"Snapshot definition {snap_name} of resource {rd_name} not found."
            return 200, [context.ok(rc.WARN_NOT_FOUND, message, details=context.details)]
        gone = [n for n in snap.nodes if not nodes or n.upper() in nodes]
        entries = drop_snapshot(state, rd, snap, context, gone)
        if nodes and len(gone) < len(snap.nodes):
            snap.nodes = [n for n in snap.nodes if n not in gone]
        else:
            del rd.snapshots[snap.name.upper()]
    return 200, entries


def drop_snapshot(
    state: EmulatorState, rd: ResourceDefinition, snap: SnapshotDefinition, context: rc.Ctx, nodes: list[str]
) -> list[dict[str, Any]]:
    """The answer of deleting a snapshot on `nodes` (service-traffic.jsonl #4)."""
    on = ", ".join(nodes)
    entries = [
        context.ok(
            rc.DELETED,
            f"Marked snapshot for deletion snapshot '{snap.name}' of resource '{rd.name}' on nodes '{on}'",
        )
    ]
    entries += snapshot_events(
        state, rd, context, snap.name, rc.DELETED, "deleted", [n for n, _ in snap.volumes], nodes
    )
    for node in nodes:
        entries.append(context.ok(rc.MODIFIED, f"Deleted snapshot '{snap.name}' of '{rd.name}' on '{node}'"))
    entries.append(
        context.ok(rc.DELETED, f"Snapshot '{snap.name}' of resource '{rd.name}' on nodes '{on}' deleted.")
    )
    entries.append(
        context.ok(
            rc.DELETED,
            f"Snapshot '{snap.name}' of resource '{rd.name}' deleted.",
            details=f"Snapshot '{snap.name}' of resource '{rd.name}' UUID was: {snap.uuid}",
            refs={rc.KEY_UUID: snap.uuid},
            order=(rc.KEY_SNAPSHOT, rc.KEY_UUID),
        )
    )
    return entries


def _usable(snap: SnapshotDefinition, context: rc.Ctx) -> None:
    if "SUCCESSFUL" not in snap.flags:
        raise context.err(rc.FAIL_UNKNOWN_ERROR, "Unable to use failed snapshot", report=False)


def restore_vds(state: EmulatorState, rd_name: str, snap_name: str, body: dict[str, Any]) -> Reply:
    """POST …/snapshot-restore-volume-definition/{snap} → 200: needs the target RD without these VDs."""
    target = body.get("to_resource") or ""
    # controller-api.jsonl #210: the restore's context is the target's VDs, without obj_refs
    context = rc.Ctx(rc.MASK_CRT, rc.MASK_SNAPSHOT, {}, f"Volume definitions of resource: {target}")
    with state.lock:
        snap = _get_snap(get_rd_ctx(state, rd_name, context), snap_name, context)
        _usable(snap, context)
        to_rd = get_rd_ctx(state, target, vd_ctx(rc.MASK_CRT, target))
        for nr, _ in snap.volumes:
            if nr in to_rd.vds:
                raise vd_ctx(rc.MASK_CRT, to_rd.name, nr).err(
                    rc.FAIL_EXISTS_VLM_DFN,
                    f"A volume definition with the number {nr} already exists in resource definition "
                    f"'{to_rd.name}'.",
                    report=False,
                )
        for nr, size in snap.volumes:
            add_vd(state, to_rd, nr, size, {})
            # the snapshot's VD props come back as they were, DRBD generation id included
            to_rd.vds[nr].props = dict(snap.vd_props.get(nr, to_rd.vds[nr].props))
    # service-traffic.jsonl #154: one entry, no obj_refs, and an empty UUID list
    message = (
        f"Volume definitions of resource definition '{to_rd.name}' restored from resource '{rd_name}', "
        f"snapshot '{snap.name}'."
    )
    code = rc.ctx(rc.DELETED, rc.MASK_CRT, rc.MASK_SNAPSHOT)
    return 200, [rc.entry(code, message, details="Resource UUIDs: ")]


def restore_resources(state: EmulatorState, rd_name: str, snap_name: str, body: dict[str, Any]) -> Reply:
    """POST …/snapshot-restore-resource/{snap} → 200: snapshot RD props over the target."""
    target = body.get("to_resource") or ""
    # controller-api.jsonl #211: the restore's context is the target resource
    to_ctx = rc.Ctx(rc.MASK_CRT, rc.MASK_RSC, {rc.KEY_RSC_DFN: target}, f"Resource: {target}")
    context = to_ctx
    with state.lock:
        snap = _get_snap(get_rd_ctx(state, rd_name, context), snap_name, context)
        _usable(snap, context)
        to_rd = get_rd_ctx(state, target, to_ctx)
        if to_rd.resources:
            raise to_ctx.err(
                rc.FAIL_EXISTS_RSC,
                "Cannot restore to resource definition which already has resources",
                report=False,
            )
        for nr, _ in snap.volumes:
            if nr not in to_rd.vds:
                raise to_ctx.err(
                    rc.FAIL_NOT_FOUND_VLM_DFN,
                    f"Snapshot contains volume number {nr} which does not exist in resource definition "
                    f"'{to_rd.name}'.",
                    report=False,
                )
        nodes = body.get("nodes") or snap.nodes
        for node in nodes:
            if node.upper() not in {n.upper() for n in snap.nodes}:
                raise to_ctx.err(
                    rc.FAIL_NOT_FOUND_SNAPSHOT,
                    f"Snapshot '{snap.name}' of resource '{rd_name}' on node '{node}' not found.",
                    report=False,
                )
        to_ctx = rc.Ctx(rc.MASK_CRT, rc.MASK_SNAPSHOT, {rc.KEY_RSC_DFN: to_rd.name})
        entries = restore_into(state, snap, rd_name, to_rd, to_ctx, nodes)
    return 200, entries


def restore_into(
    state: EmulatorState,
    snap: SnapshotDefinition,
    source: str,
    to_rd: ResourceDefinition,
    context: rc.Ctx,
    nodes: list[str],
) -> list[dict[str, Any]]:
    """Deploy a snapshot's data as resources of `to_rd` (service-traffic.jsonl #155, and #135 for a rollback).

    linstor-rest-api.md §6.4: restore copies the snapshot's RD props over the target, overriding. A restored
    RD shows no layer data of its own afterwards (service-traffic.jsonl #136).
    """
    to_rd.props.update(snap.rd_props)
    for node in nodes:
        add_resource(state, to_rd, node, snap.node_pools.get(node.upper()), [], {})
    to_rd.layer_data_shown = False
    uuids = ", ".join(to_rd.resources[node.upper()].uuid for node in nodes)
    entries = [
        context.ok(
            rc.ctx(rc.CREATED, rc.MASK_CRT, rc.MASK_RSC),
            f"Resource '{to_rd.name}' restored from resource '{source}', snapshot '{snap.name}'.",
            details=f"Resource UUIDs: {uuids}",
        )
    ]
    entries += volume_events(state, to_rd, context, rc.CREATED, "created", nodes)
    for node in nodes:
        entries.append(context.ok(rc.MODIFIED, f"Created resource '{to_rd.name}' on '{node}'"))
    deploy_props(state, to_rd)
    return entries


def rollback(state: EmulatorState, rd_name: str, snap_name: str) -> Reply:
    """POST …/snapshot-rollback/{snap} → 200: a safety snapshot, the resources deleted and restored from the
    snapshot, the safety snapshot dropped (service-traffic.jsonl #135); any snapshot may be used."""
    context = snap_ctx(rc.MASK_MOD, rd_name, snap_name)
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        snap = _get_snap(rd, snap_name, context)
        _usable(snap, context)
        have = {n.upper() for n in snap.nodes}
        for rsc in rd.resources.values():
            if not state.nodes[rsc.node.upper()].online:
                raise context.err(rc.FAIL_NOT_CONNECTED, f"Node '{rsc.node}' is not connected.", report=False)
            if not rsc.diskless and rsc.node.upper() not in have:
                raise context.err(
                    rc.FAIL_NOT_FOUND_SNAPSHOT,
                    f"Snapshot '{snap.name}' of resource '{rd.name}' on node '{rsc.node}' not found.",
                    report=False,
                )
        nodes = [rd.resources[key].node for key in sorted(rd.resources) if not rd.resources[key].diskless]
        safety = SnapshotDefinition(
            name="safety-snap-" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(10)),
            uuid=new_uuid(),
            nodes=nodes,
            create_timestamp=int(time.time() * 1000),
            volumes=[(nr, rd.vds[nr].size_kib) for nr in sorted(rd.vds)],
            rd_props=dict(rd.props),
        )
        entries = take_snapshot(state, rd, context, safety.name, nodes)
        entries.append(context.ok(rc.DELETED, f"Resource definition '{rd.name}' marked for deletion."))
        entries += volume_events(state, rd, context, rc.DELETED, "deleted", nodes)
        for node in nodes:
            entries.append(context.ok(rc.MODIFIED, f"Resource '{rd.name}' on '{node}' marked for deletion"))
        for key in [n.upper() for n in nodes]:
            state.free_resource(rd, rd.resources[key])
        for nr, size in snap.volumes:
            vd = rd.vds.get(nr)
            if vd is not None and vd.size_kib != size:
                vd.size_kib = size
        entries += restore_into(state, snap, rd.name, rd, context, nodes)
        entries += drop_snapshot(state, rd, safety, context, nodes)
        for node in nodes[:1]:
            entries.append(
                context.ok(
                    rc.ctx(0, rc.MASK_CRT, rc.MASK_RSC),
                    "Resource already deployed as requested",
                    refs={rc.KEY_NODE: node},
                    order=(rc.KEY_SNAPSHOT, rc.KEY_RSC_DFN),
                )
            )
    return 200, entries
