"""The calls Incus's driver makes to use a volume on one node: make-available, the resource's volumes and
the deletion of the resource (CtrlRscMakeAvailableApiCallHandler, Volumes.listVolumes and
CtrlRscDeleteApiCallHandler; golinstor-traffic.jsonl #95 is the one recorded answer)."""

from __future__ import annotations

from typing import Any

from app.emulator import rc
from app.emulator.common import Reply, not_connected, page
from app.emulator.loaders import check_rd_name, get_node, not_found
from app.emulator.model import (
    DISKLESS_POOL,
    LAYERS_DRBD,
    Node,
    Resource,
    ResourceDefinition,
    StoragePool,
    VolumeDefinition,
)
from app.emulator.place_ops import (
    add_resource,
    is_last_disk,
    last_disk_refusal,
    placeable_kib,
    rd_default_layers,
)
from app.emulator.store import EmulatorState

FAIL_INVLD_LAYER_STACK = 225 | rc.MASK_ERROR
DISKLESS_FLAGS = ["DISKLESS", "DRBD_DISKLESS"]  # Resource.Flags.DRBD_DISKLESS includes the DISKLESS bit


def rsc_ctx(op: int, rd_name: str, node_name: str, *, quoted: bool = False) -> rc.Ctx:
    """A resource context: make-available quotes the resource name in its description, makeRscContext not."""
    name = f"'{rd_name}'" if quoted else rd_name
    refs = {rc.KEY_NODE: node_name, rc.KEY_RSC_DFN: rd_name}
    return rc.Ctx(op, rc.MASK_RSC, refs, f"Node: {node_name}, Resource: {name}")


def _get_rd(state: EmulatorState, context: rc.Ctx, name: str) -> ResourceDefinition:
    """CtrlApiDataLoader.loadRscDfn(name, true): a skip-report 404 with cause and correction."""
    check_rd_name(name, context)
    rd = state.rds.get(name.upper())
    if rd is None:
        raise not_found(context, rc.FAIL_NOT_FOUND_RSC_DFN, "resource definition", name, java_order=True)
    return rd


def make_available(state: EmulatorState, rd_name: str, node_name: str, body: dict[str, Any]) -> Reply:
    """POST …/resources/{node}/make-available → 200: nothing to do when the resource is there; else a DRBD
    diskless client when a diskful peer exists, otherwise the first disk, in a pool of that node."""
    context = rsc_ctx(rc.MASK_CRT, rd_name, node_name, quoted=True)
    wanted = [str(layer).upper() for layer in body.get("layer_list") or []]
    diskful = bool(body.get("diskful"))
    with state.lock:
        rd = _get_rd(state, context, rd_name)
        rsc = rd.resources.get(node_name.upper())
        if rsc is not None:
            if wanted and wanted != rd.layers:
                message = "Layerstack of deployed resource does not match"
                raise rc.fail(context, FAIL_INVLD_LAYER_STACK, message, report=True)
            if "DELETE" in rsc.flags:
                rsc.flags.remove("DELETE")  # a resource being deleted is wanted again
            if rsc.diskless and diskful and "DRBD" in rd.layers:
                return 200, _add_disk(state, rd, rsc)
            return 200, [rc.note(context, 0, "Resource already deployed as requested")]
        node = get_node(state, context, node_name)
        layers = wanted or (rd.layers if rd.resources else rd_default_layers(state, rd))
        has_disk = any(not r.diskless and "DELETE" not in r.flags for r in rd.resources.values())
        if "DRBD" in layers and not diskful and has_disk:
            if not _offers(node, layers):
                raise _no_pool(context, node_name, diskless=True)
            props = {"StorPoolName": DISKLESS_POOL}
            return 200, add_resource(state, rd, node.name, None, list(DISKLESS_FLAGS), props, layers=layers)
        pool = _diskful_pool(state, rd, node, layers)
        if pool is None:
            raise _no_pool(context, node_name, diskless=False)
        return 200, add_resource(state, rd, node.name, pool.name, [], {}, layers=layers)


def _offers(node: Node, layers: list[str]) -> bool:
    """The autoplacer's node filter: online, and its satellite has every layer of the stack."""
    return node.online and all(layer in (node.layers or LAYERS_DRBD) for layer in layers)


def _diskful_pool(
    state: EmulatorState, rd: ResourceDefinition, node: Node, layers: list[str]
) -> StoragePool | None:
    """The pool of `node` the autoplacer picks under the RG's storage-pool filter: most room first (thin
    pools are oversubscribed)."""
    if not _offers(node, layers):
        return None
    rg = state.rgs.get(rd.rg.upper())
    select = rg.select_filter if rg else {}
    allowed = {p.upper() for p in select.get("storage_pool_list") or []}
    if select.get("storage_pool"):
        allowed.add(str(select["storage_pool"]).upper())
    need = sum(vd.size_kib for vd in rd.vds.values())
    fits = [
        pool
        for key, pool in state.pools.get(node.name.upper(), {}).items()
        if pool.provider != "DISKLESS" and (not allowed or key in allowed) and placeable_kib(pool) >= need
    ]
    return max(fits, key=placeable_kib, default=None)


def _no_pool(context: rc.Ctx, node_name: str, *, diskless: bool) -> rc.ApiError:
    kind = "diskless" if diskless else "diskful"
    message = f"Autoplacer could not find {kind} stor pool on node {node_name} matching resource-groups "
    return rc.fail(context, rc.FAIL_NOT_FOUND_STOR_POOL, message + "autoplace-settings")


def _add_disk(state: EmulatorState, rd: ResourceDefinition, rsc: Resource) -> list[dict[str, Any]]:
    """Toggle disk INTO_DRBD_DISKFUL (CtrlRscToggleDiskApiCallHandler): in its own modify context."""
    context = rsc_ctx(rc.MASK_MOD, rd.name, rsc.node)
    node = state.nodes[rsc.node.upper()]
    pool = _diskful_pool(state, rd, node, rd.layers)
    if pool is None:
        raise _no_pool(rsc_ctx(rc.MASK_CRT, rd.name, rsc.node, quoted=True), rsc.node, diskless=False)
    rsc.flags = [f for f in rsc.flags if f not in DISKLESS_FLAGS]
    rsc.pool = pool.name
    rsc.props["StorPoolName"] = pool.name
    pool.allocated_kib += sum(vd.size_kib for vd in rd.vds.values())
    message = f"Addition of disk to resource '{rd.name}' on node '{rsc.node}' registered"
    entries = [rc.note(context, rc.MODIFIED, message)]
    for key in sorted(rd.resources):
        peer = state.nodes[key]
        if key != rsc.node.upper() and peer.online:
            text = f"Prepared '{peer.name}' to expect disk on '{rsc.node}'"
            entries.append(rc.note(context, rc.MODIFIED, text))
    entries.append(rc.note(context, rc.MODIFIED, f"Added disk on '{rsc.node}'"))
    return entries


def list_volumes(state: EmulatorState, rd_name: str, node_name: str, query: list[tuple[str, str]]) -> Reply:
    """GET …/resources/{node}/volumes: the resource's `Volume`s (without layer_data_list, see below)."""
    with state.lock:
        rd = state.rds.get(rd_name.upper())
        rsc = rd.resources.get(node_name.upper()) if rd is not None else None
        if rd is None or rsc is None:
            message = f"Resource '{rd_name}' not found on node '{node_name}'."
            raise rc.raw_error(rc.FAIL_NOT_FOUND_RSC, message)
        node = state.nodes[rsc.node.upper()]
        pool = state.pool_of(rsc)
        out = [_volume(rd, rsc, rd.vds[nr], node, pool) for nr in sorted(rd.vds)]
    return 200, page(out, query)


def _volume(
    rd: ResourceDefinition, rsc: Resource, vd: VolumeDefinition, node: Node, pool: StoragePool | None
) -> dict[str, Any]:
    # Json.apiToVolume's fields; layer_data_list is left out: its `data` is a oneOf the spec cannot tell apart
    # (a StorageVolume is also a valid LUKS/NVMe/… volume), and Incus reads only device_path
    out: dict[str, Any] = {
        "volume_number": vd.number,
        "storage_pool_name": rsc.pool,
        "provider_kind": pool.provider if pool else "DISKLESS",
        "device_path": _device_path(rd, vd, pool),
        "allocated_size_kib": 0 if rsc.diskless else vd.size_kib,
    }
    if node.online:  # the state comes from the satellite
        out["state"] = {"disk_state": "Diskless" if rsc.diskless else "UpToDate"}
    out["uuid"] = vd.uuid
    return out


def _device_path(rd: ResourceDefinition, vd: VolumeDefinition, pool: StoragePool | None) -> str:
    """The top layer's device: DRBD's minor, else the provider's volume (LVM volume, loop device)."""
    if "DRBD" in rd.layers or pool is None:
        return f"/dev/drbd{vd.minor}"
    if pool.provider in ("LVM", "LVM_THIN"):
        group = pool.props.get("StorDriver/StorPoolName", "linstor_vg").split("/")[0]
        return f"/dev/{group}/{rd.name}_{vd.number:05d}"
    return f"/dev/loop{vd.minor % 1000}"


def delete_resource(state: EmulatorState, rd_name: str, node_name: str) -> Reply:
    """DELETE …/resources/{node}: a missing resource warns (200); the last disk under diskless peers is
    refused; else deleted once its satellite undeployed it (stays marked DELETE while it is OFFLINE)."""
    context = rsc_ctx(rc.MASK_DEL, rd_name, node_name)
    with state.lock:
        check_rd_name(rd_name, context)
        rd = state.rds.get(rd_name.upper())
        rsc = rd.resources.get(node_name.upper()) if rd is not None else None
        if rd is None or rsc is None:
            message = f"Node: {node_name}, Resource: {rd_name} not found."
            return 200, rc.fail(context, rc.WARN_NOT_FOUND, message).entries
        if is_last_disk(rd, rsc.node):
            raise last_disk_refusal(context, rd)
        return 200, _undeploy(state, context, rd, rsc)


def _undeploy(
    state: EmulatorState, context: rc.Ctx, rd: ResourceDefinition, rsc: Resource
) -> list[dict[str, Any]]:
    desc = f"Node: {rsc.node}, Resource: {rd.name}"
    node = state.nodes[rsc.node.upper()]
    peers = [state.nodes[key] for key in sorted(rd.resources)]
    entries = []
    if "DRBD" in rd.layers:  # DRBD first lets the peers drop their connection to it
        entries.append(
            rc.note(context, rc.DELETED, f"{desc} preparing for deletion.", details=_uuid_is(desc, rsc))
        )
        for peer in peers:
            if peer.online:
                entries.append(
                    rc.note(context, rc.MODIFIED, f"Preparing deletion of resource on '{peer.name}'")
                )
    entries.append(rc.note(context, rc.DELETED, f"{desc} marked for deletion.", details=_uuid_is(desc, rsc)))
    if "DELETE" not in rsc.flags:
        rsc.flags.append("DELETE")
    for peer in peers:
        if peer is node and peer.online:
            entries.append(rc.note(context, rc.MODIFIED, f"Cleaning up '{rd.name}' on '{peer.name}'"))
        elif peer is not node and peer.online:
            text = f"Notified '{peer.name}' that '{rd.name}' is being cleaned up on Node(s): '[{node.name}]'"
            entries.append(rc.note(context, rc.MODIFIED, text))
        else:
            entries.append(not_connected(context, peer.name))
    if node.online:  # the data goes only once the satellite confirmed
        state.free_resource(rd, rsc)
        message = f"{desc} deletion complete."
        entries.append(rc.note(context, rc.DELETED, message, details=f"{desc} UUID was: {rsc.uuid}"))
    return entries


def _uuid_is(desc: str, rsc: Resource) -> str:
    return f"{desc} UUID is: {rsc.uuid}"
