"""Snapshots: create, list, modify, delete, and the answers of taking and dropping one (linstor-rest-api.md
§2.7, §6.1-§6.3)."""

from __future__ import annotations

import time
from typing import Any

from app.emulator import rc
from app.emulator.common import Reply, checked_modify, checked_props, page
from app.emulator.loaders import check_rd_name, get_rd_ctx, get_rd_raw, get_snap, snap_ctx
from app.emulator.model import ResourceDefinition, SnapshotDefinition
from app.emulator.names import apply_props, name_problem
from app.emulator.satellite import snapshot_events, volume_events
from app.emulator.shapes import snapshot_json
from app.emulator.store import EmulatorState, new_uuid


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


def modify_snapshot(state: EmulatorState, rd_name: str, snap_name: str, body: dict[str, Any]) -> Reply:
    """PUT …/snapshots/{snap}: snapshot-definition props (REST ≥ 1.26)."""
    context = snap_ctx(rc.MASK_MOD, rd_name, snap_name)
    with state.lock:
        snap = get_snap(get_rd_ctx(state, rd_name, context), snap_name, context)
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
