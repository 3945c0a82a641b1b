"""Nodes built through the API, answered as CtrlNodeCrt/Delete/LostApiCallHandler answer them, and the entry
builders of the topology handlers (controller-api.jsonl #172-#175; `#n` is a line of that file).

A node whose name is one of the state's `satellites` finds its (emulated) satellite and comes ONLINE; any
other node stays OFFLINE, as the recorded node without a satellite did.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from app.emulator import rc
from app.emulator.model import (
    DISKLESS_POOL,
    NOT_CONNECTED_DETAILS,
    Node,
    ResourceDefinition,
    StoragePool,
    not_connected_message,
)
from app.emulator.rd_ops import Reply, checked_props
from app.emulator.store import EmulatorState, new_uuid

# ret_codes rc.py lacks (python-linstor sharedconsts)
FAIL_INVLD_NODE_NAME = 200 | rc.MASK_ERROR
FAIL_INVLD_NODE_TYPE = 201 | rc.MASK_ERROR
FAIL_INVLD_STOR_POOL_NAME = 208 | rc.MASK_ERROR
FAIL_INVLD_NET_ADDR = 210 | rc.MASK_ERROR
FAIL_INVLD_NET_PORT = 211 | rc.MASK_ERROR
FAIL_INVLD_NET_TYPE = 212 | rc.MASK_ERROR
FAIL_INVLD_LAYER_KIND = 224 | rc.MASK_ERROR
FAIL_NODE_HAS_USED_RSC = 233 | rc.MASK_ERROR
FAIL_EXISTS_NODE = 500 | rc.MASK_ERROR
FAIL_EXISTS_NODE_CONN = 506 | rc.MASK_ERROR
FAIL_MISSING_NETCOM = 603 | rc.MASK_ERROR
FAIL_NO_STLT_CONN_DEFINED = 609 | rc.MASK_ERROR
FAIL_IN_USE = 997 | rc.MASK_ERROR
INFO_NODE_NAME_MISMATCH = 10001 | rc.MASK_INFO

NODE_TYPES = ("CONTROLLER", "SATELLITE", "COMBINED", "AUXILIARY")


def node_ctx(op: int, name: str) -> rc.Ctx:
    """CtrlNodeApiCallHandler.makeNodeContext."""
    return rc.Ctx(op, rc.MASK_NODE, {rc.KEY_NODE: name}, f"Node: {name}")


def java_refs(refs: dict[str, str]) -> dict[str, str]:
    """obj_refs in the controller's order: a HashMap copied from a TreeMap, so sorted keys regrouped by hash
    bucket of a table sized for them (holds for all 587 obj_refs of the transcripts)."""
    wanted = int(len(refs) / 0.75 + 1.0)
    capacity = 1
    while capacity < wanted:
        capacity *= 2

    def bucket(key: str) -> int:
        code = 0
        for unit in key.encode("utf-16-be").hex(" ", 2).split():
            code = (31 * code + int(unit, 16)) & 0xFFFFFFFF
        return (code ^ (code >> 16)) & (capacity - 1)

    return {key: refs[key] for key in sorted(sorted(refs), key=bucket)}


def note(
    context: rc.Ctx,
    code: int,
    message: str,
    *,
    details: str | None = None,
    refs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An entry of the call's answer with the context's masks and obj_refs (plus `refs`)."""
    return rc.entry(
        rc.ctx(code, context.op, context.obj),
        message,
        details=details,
        obj_refs=java_refs({**context.refs, **(refs or {})}),
    )


def fail(
    context: rc.Ctx,
    code: int,
    message: str,
    *,
    cause: str | None = None,
    details: str | None = None,
    correction: str | None = None,
    report: bool = False,
    describe: bool = True,
) -> rc.ApiError:
    """An exception as ResponseConverter renders it: masks, obj_refs and (with `describe`) the object's
    description appended to the details; an error report unless the controller skips it."""
    joined = "\n".join(part for part in (details, context.details if describe else None) if part)
    item = rc.entry(
        rc.ctx(code, context.op, context.obj),
        message,
        cause=cause,
        details=joined or None,
        correction=correction,
        obj_refs=java_refs(context.refs),
        error_report=report,
    )
    return rc.ApiError([item])


def not_connected(context: rc.Ctx, node_name: str) -> dict[str, Any]:
    """ResponseUtils.makeNotConnectedWarning in a call's context (#172)."""
    return note(
        context, rc.WARN_NOT_CONNECTED, not_connected_message(node_name), details=NOT_CONNECTED_DETAILS
    )


def hostname_problem(name: str) -> str | None:
    """Checks.hostNameCheck: the InvalidNameException text, or None for a valid node name."""
    if name.startswith((".", "-")):
        return f"Hostname cannot begin with '{name[0]}'"
    if name.endswith("-"):
        return "Hostname cannot end with '-'"
    size = len(name.encode())
    if not 2 <= size <= 255:
        bound = "minimum length of 2" if size < 2 else "maximum length of 255"
        return f"Hostname length of {size} violates RFC1123 {bound}"
    for label in name.split("."):
        if len(label) > 63:
            return f"Domain name component length of {len(label)} violates RFC1123 maximum length of 63"
        bad = next((c for c in label if not (c.isascii() and (c.isalnum() or c == "-"))), None)
        if bad is not None:
            return f"Domain name cannot contain character '{bad}'"
    return None


def get_node(state: EmulatorState, context: rc.Ctx, name: str) -> Node:
    """CtrlApiDataLoader.loadNode(name, true): a skip-report 404 with cause and correction."""
    node = state.nodes.get(name.upper())
    if node is None:
        raise fail(
            context,
            rc.FAIL_NOT_FOUND_NODE,
            f"Node '{name}' not found.",
            cause=f"The specified node '{name}' could not be found in the database",
            correction=f"Create a node with the name '{name}' first.",
        )
    return node


# -- nodes ---------------------------------------------------------------------------------------------------


def create_node(state: EmulatorState, body: dict[str, Any]) -> Reply:
    """POST /v1/nodes → 201: registered, then connected to its satellite or warned about (#172)."""
    name = body.get("name") or ""
    context = node_ctx(rc.MASK_CRT, name)
    node_type = str(body.get("type") or "SATELLITE").upper()
    if node_type not in NODE_TYPES:
        raise fail(
            context,
            FAIL_INVLD_NODE_TYPE,
            f"The specified node type '{body.get('type')}' is invalid.",
            correction="Valid node types are:\n" + "".join(f"{t}\n" for t in NODE_TYPES),
            report=True,
        )
    if not body.get("net_interfaces"):
        raise fail(
            context,
            FAIL_MISSING_NETCOM,
            f"Registration of node '{name}' failed.",
            cause="No network interfaces were given.",
            correction="At least one network interface has to be given and be marked to be used for "
            "controller-satellite communitaction.",
            report=True,
        )
    problem = hostname_problem(name)
    if problem is not None:
        raise fail(context, FAIL_INVLD_NODE_NAME, f"The given node name '{name}' is invalid.", cause=problem)
    with state.lock:
        if name.upper() in state.nodes:
            raise fail(
                context,
                FAIL_EXISTS_NODE,
                f"Registration of node '{name}' failed.",
                cause=f"A node with the specified name '{name}' already exists.",
                correction="- Specify another name for the new node\nor\n"
                "- Delete the existing node before creating a new node with the same name",
            )
        user_props = body.get("props") or {}
        props = checked_props(context, user_props)
        netifs = [_netif(context, raw) for raw in body["net_interfaces"]]
        active = next((n for n in netifs if "satellite_port" in n), None)
        if active is None:
            message = f"No satellite connection defined for node '{name}'"
            raise fail(context, FAIL_NO_STLT_CONN_DEFINED, message, report=True)
        node = Node(
            name=name,
            uuid=new_uuid(),
            address=active["address"],
            props={"CurStltConnName": active["name"], **props},
            node_type=node_type,
            net_interfaces=netifs,
        )
        state.nodes[name.upper()] = node
        state.pools[name.upper()] = {}
        if node_type in ("SATELLITE", "COMBINED"):
            diskless = StoragePool(
                node=name, name=DISKLESS_POOL, uuid=new_uuid(), provider="DISKLESS", total_kib=0
            )
            diskless.supports_snapshots = False
            state.pools[name.upper()][DISKLESS_POOL.upper()] = diskless
        entries = []
        if user_props:
            keys = ",".join(user_props)
            entries.append(note(context, rc.CREATED, f"Successfully set property key(s): {keys}"))
        entries.append(
            note(
                context,
                rc.CREATED,
                f"New node '{name}' registered.",
                details=f"Node '{name}' UUID is: {node.uuid}",
                refs={rc.KEY_UUID: node.uuid},
            )
        )
        entries += _connect(state, context, node)
    return 201, entries


def _netif(context: rc.Ctx, raw: dict[str, Any]) -> dict[str, Any]:
    """One NetInterface of the request, checked as LinstorParsingUtils does; a satellite connection only
    when both port and encryption type are given (NetInterfacePojo)."""
    address = str(raw.get("address") or "")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise fail(
            context,
            FAIL_INVLD_NET_ADDR,
            "Failed to parse IP address",
            cause="The specified IP address is not valid",
            details=f"The specified input '{address}' is not a valid IP address.",
            correction="Specify a valid IPv4 or IPv6 address.",
            report=True,
        ) from None
    out: dict[str, Any] = {"name": raw.get("name") or "default", "address": address}
    port, encryption = raw.get("satellite_port"), raw.get("satellite_encryption_type")
    if port is not None and encryption is not None:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise fail(
                context, FAIL_INVLD_NET_PORT, f"The given portNumber '{port}' is invalid.", report=True
            )
        if str(encryption).upper() not in ("PLAIN", "SSL"):
            message = f"The given encryption type '{encryption}' is invalid."
            raise fail(context, FAIL_INVLD_NET_TYPE, message, report=True)
        out["satellite_port"] = port
        out["satellite_encryption_type"] = str(encryption).upper()
    out["uuid"] = new_uuid()
    return out


def _connect(state: EmulatorState, context: rc.Ctx, node: Node) -> list[dict[str, Any]]:
    """CtrlNodeCrtApiCallHandler.connectNow: an emulated satellite authenticates, any other is not reached."""
    if node.node_type not in ("SATELLITE", "COMBINED"):
        state.disconnect(node)  # controllers and auxiliary nodes are never connected to
        return []
    if not state.has_satellite(node.name):
        state.disconnect(node)
        return [not_connected(context, node.name)]
    state.connect(node)
    uname = node.props["NodeUname"]
    if uname.lower() == node.name.lower():
        return []
    message = f"Linstor node name '{node.name}' and hostname '{uname}' doesn't match."
    return [note(context, INFO_NODE_NAME_MISMATCH, message)]


def _no_such_node(context: rc.Ctx, name: str) -> list[dict[str, Any]]:
    """Deleting a node that does not exist is a warning, not an error."""
    message = f"Deletion of node '{name}' had no effect."
    return fail(context, rc.WARN_NOT_FOUND, message, cause=f"Node '{name}' does not exist.").entries


def delete_node(state: EmulatorState, name: str) -> Reply:
    """DELETE /v1/nodes/{node}: refused while one of its resources is the last disk of diskless peers; else
    deleted, or only marked for deletion until its satellite undeploys the resources (CtrlNodeDelete…)."""
    context = node_ctx(rc.MASK_DEL, name)
    with state.lock:
        node = state.nodes.get(name.upper())
        if node is None:
            return 200, _no_such_node(context, name)
        rscs = resources_on(state, node)
        refusals = [_last_disk_refusal(context, rd) for rd in rscs if is_last_disk(rd, node.name)]
        if refusals:
            final = fail(
                context,
                FAIL_NODE_HAS_USED_RSC,
                "Cannot delete node, because it has in use or last diskful resources.",
                cause=f"Node '{node.name}' cannot be deleted.",
            )
            return 500, refusals + final.entries
        desc = f"Node '{node.name}'"
        if not rscs and not _snapshots_on(state, node):
            _forget_node(state, node)
            return 200, [
                note(context, rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {node.uuid}")
            ]
        return 200, _mark_deleted(state, context, node, rscs)


def _mark_deleted(
    state: EmulatorState, context: rc.Ctx, node: Node, rscs: list[ResourceDefinition]
) -> list[dict[str, Any]]:
    """Mark the node and its resources DELETE and tell the satellites; an ONLINE satellite undeploys them at
    once and the node goes, an OFFLINE one leaves the node marked (DELETE …/lost removes it)."""
    desc = f"Node '{node.name}'"
    key = node.name.upper()
    entries = [
        note(context, rc.DELETED, f"{desc} marked for deletion.", details=f"{desc} UUID is: {node.uuid}")
    ]
    node.flags = ["DELETE"]
    peers = [state.nodes[k] for k in sorted({k for rd in rscs for k in rd.resources})]
    entries += [not_connected(context, peer.name) for peer in peers if not peer.online]
    for rd in rscs:
        if "DELETE" not in rd.resources[key].flags:
            rd.resources[key].flags.append("DELETE")
        for peer in (state.nodes[k] for k in sorted(rd.resources)):
            if peer is node and peer.online:
                entries.append(note(context, rc.MODIFIED, f"Deleted resource '{rd.name}' on '{peer.name}'"))
            elif peer is not node and peer.online:
                message = (
                    f"Notified '{peer.name}' that resource '{rd.name}' on '{node.name}' is being deleted"
                )
                entries.append(note(context, rc.MODIFIED, message))
    if node.online:
        for rd in rscs:
            state.free_resource(rd, rd.resources[key])
        _forget_node(state, node)
        entries.append(note(context, rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {node.uuid}"))
    return entries


def lost_node(state: EmulatorState, name: str) -> Reply:
    """DELETE /v1/nodes/{node}/lost: an OFFLINE node goes with its resources, snapshots and pools."""
    context = node_ctx(rc.MASK_DEL, name)
    with state.lock:
        node = state.nodes.get(name.upper())
        if node is None:
            return 200, _no_such_node(context, name)
        if node.online:
            message = f"Node '{name}' still connected, please use the 'DelNode' api."
            raise fail(context, FAIL_EXISTS_NODE_CONN, message, report=True)
        rscs = resources_on(state, node)
        peers = sorted(
            {k for rd in rscs for k in rd.resources if k != node.name.upper() and state.nodes[k].online}
        )
        for rd in rscs:
            state.free_resource(rd, rd.resources[node.name.upper()])
        _forget_node(state, node)
        desc = f"Node '{node.name}'"
        entries = [note(context, rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {node.uuid}")]
        for key in peers:
            message = f"Notified '{state.nodes[key].name}' that '{node.name}' has been lost"
            entries.append(note(context, rc.MODIFIED, message))
    return 200, entries


def resources_on(state: EmulatorState, node: Node) -> list[ResourceDefinition]:
    """The RDs with a resource on `node`, in the controller's order."""
    return [rd for rd in state.iter_rds() if node.name.upper() in rd.resources]


def is_last_disk(rd: ResourceDefinition, node_name: str) -> bool:
    """CtrlRscDeleteApiHelper.ensureNotLastDisk: the only undeleted disk while diskless peers remain."""
    rsc = rd.resources[node_name.upper()]
    others = [r for key, r in rd.resources.items() if key != node_name.upper() and "DELETE" not in r.flags]
    return not rsc.diskless and any(r.diskless for r in others) and not any(not r.diskless for r in others)


def _last_disk_refusal(context: rc.Ctx, rd: ResourceDefinition) -> dict[str, Any]:
    return rc.entry(
        rc.ctx(FAIL_IN_USE, context.op, context.obj),
        f"Last resource of '{rd.name}' with disk still has diskless resources attached.",
        cause="Resource still has diskless users.",
        correction="Before deleting this resource, delete the diskless resources attached to it.",
        obj_refs=java_refs(context.refs),
    )


def _snapshots_on(state: EmulatorState, node: Node) -> bool:
    return any(node.name in snap.nodes for rd in state.rds.values() for snap in rd.snapshots.values())


def _forget_node(state: EmulatorState, node: Node) -> None:
    """Remove the node, its pools and its copies of snapshots (a snapshot left on no node goes too)."""
    for rd in state.rds.values():
        for key, snap in list(rd.snapshots.items()):
            if node.name in snap.nodes:
                snap.nodes.remove(node.name)
                if not snap.nodes:
                    del rd.snapshots[key]
    state.nodes.pop(node.name.upper(), None)
    state.pools.pop(node.name.upper(), None)
