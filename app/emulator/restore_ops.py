"""Snapshot restore into another RD and rollback of an RD to its snapshot (linstor-rest-api.md §6.4)."""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from app.emulator import rc
from app.emulator.common import Reply
from app.emulator.loaders import get_rd_ctx, get_snap, snap_ctx, vd_ctx
from app.emulator.model import ResourceDefinition, SnapshotDefinition
from app.emulator.place_ops import add_resource
from app.emulator.satellite import deploy_props, volume_events
from app.emulator.snap_ops import drop_snapshot, take_snapshot
from app.emulator.store import EmulatorState, new_uuid
from app.emulator.vd_ops import add_vd

_ALPHANUMERIC = string.ascii_letters + string.digits


def restore_vds(state: EmulatorState, rd_name: str, snap_name: str, body: dict[str, Any]) -> Reply:
    """POST …/snapshot-restore-volume-definition/{snap} → 200: needs the target RD without these VDs."""
    target = body.get("to_resource") or ""
    # controller-api.jsonl #210: the restore's context is the target's VDs, without obj_refs
    context = rc.Ctx(rc.MASK_CRT, rc.MASK_SNAPSHOT, {}, f"Volume definitions of resource: {target}")
    with state.lock:
        snap = get_snap(get_rd_ctx(state, rd_name, context), snap_name, context)
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
        snap = get_snap(get_rd_ctx(state, rd_name, context), snap_name, context)
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
        snap = get_snap(rd, snap_name, context)
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


def _usable(snap: SnapshotDefinition, context: rc.Ctx) -> None:
    if "SUCCESSFUL" not in snap.flags:
        raise context.err(rc.FAIL_UNKNOWN_ERROR, "Unable to use failed snapshot", report=False)
