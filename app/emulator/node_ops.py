"""Nodes built through the API, answered as CtrlNodeCrt/Delete/LostApiCallHandler answer them
(controller-api.jsonl #172-#175; `#n` is a line of that file).

A node whose name is one of the state's `satellites` finds its (emulated) satellite and comes ONLINE; any
other node stays OFFLINE, as the recorded node without a satellite did.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from app.emulator import rc
from app.emulator.common import Reply, checked_props, not_connected, set_keys_message
from app.emulator.model import (
    DISKLESS_POOL,
    Node,
    ResourceDefinition,
    StoragePool,
)
from app.emulator.names import hostname_problem
from app.emulator.place_ops import is_last_disk, last_disk_refusal
from app.emulator.store import EmulatorState, new_uuid

# ret_codes rc.py lacks (python-linstor sharedconsts)
FAIL_INVLD_NODE_NAME = 200 | rc.MASK_ERROR
FAIL_INVLD_NODE_TYPE = 201 | rc.MASK_ERROR
FAIL_INVLD_NET_ADDR = 210 | rc.MASK_ERROR
FAIL_INVLD_NET_PORT = 211 | rc.MASK_ERROR
FAIL_INVLD_NET_TYPE = 212 | rc.MASK_ERROR
FAIL_NODE_HAS_USED_RSC = 233 | rc.MASK_ERROR
FAIL_EXISTS_NODE = 500 | rc.MASK_ERROR
FAIL_EXISTS_NODE_CONN = 506 | rc.MASK_ERROR
FAIL_MISSING_NETCOM = 603 | rc.MASK_ERROR
FAIL_NO_STLT_CONN_DEFINED = 609 | rc.MASK_ERROR
INFO_NODE_NAME_MISMATCH = 10001 | rc.MASK_INFO

NODE_TYPES = ("CONTROLLER", "SATELLITE", "COMBINED", "AUXILIARY")


def node_ctx(op: int, name: str) -> rc.Ctx:
    """CtrlNodeApiCallHandler.makeNodeContext."""
    return rc.Ctx(op, rc.MASK_NODE, {rc.KEY_NODE: name}, f"Node: {name}")


def create_node(state: EmulatorState, body: dict[str, Any]) -> Reply:
    """POST /v1/nodes → 201: registered, then connected to its satellite or warned about (#172)."""
    name = body.get("name") or ""
    context = node_ctx(rc.MASK_CRT, name)
    node_type = str(body.get("type") or "SATELLITE").upper()
    if node_type not in NODE_TYPES:
        raise rc.fail(
            context,
            FAIL_INVLD_NODE_TYPE,
            f"The specified node type '{body.get('type')}' is invalid.",
            correction="Valid node types are:\n" + "".join(f"{t}\n" for t in NODE_TYPES),
            report=True,
        )
    if not body.get("net_interfaces"):
        raise rc.fail(
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
        raise rc.fail(
            context, FAIL_INVLD_NODE_NAME, f"The given node name '{name}' is invalid.", cause=problem
        )
    with state.lock:
        if name.upper() in state.nodes:
            raise rc.fail(
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
            raise rc.fail(context, FAIL_NO_STLT_CONN_DEFINED, message, report=True)
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
            entries.append(rc.note(context, rc.CREATED, set_keys_message(user_props)))
        entries.append(
            rc.note(
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
        raise rc.fail(
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
            raise rc.fail(
                context, FAIL_INVLD_NET_PORT, f"The given portNumber '{port}' is invalid.", report=True
            )
        if str(encryption).upper() not in ("PLAIN", "SSL"):
            message = f"The given encryption type '{encryption}' is invalid."
            raise rc.fail(context, FAIL_INVLD_NET_TYPE, message, report=True)
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
    return [rc.note(context, INFO_NODE_NAME_MISMATCH, message)]


def _no_such_node(context: rc.Ctx, name: str) -> list[dict[str, Any]]:
    """Deleting a node that does not exist is a warning, not an error."""
    message = f"Deletion of node '{name}' had no effect."
    return rc.fail(context, rc.WARN_NOT_FOUND, message, cause=f"Node '{name}' does not exist.").entries


def delete_node(state: EmulatorState, name: str) -> Reply:
    """DELETE /v1/nodes/{node}: refused while one of its resources is the last disk of diskless peers; else
    deleted, or only marked for deletion until its satellite undeploys the resources (CtrlNodeDelete…)."""
    context = node_ctx(rc.MASK_DEL, name)
    with state.lock:
        node = state.nodes.get(name.upper())
        if node is None:
            return 200, _no_such_node(context, name)
        rscs = resources_on(state, node)
        refusals = [
            last_disk_refusal(context, rd, describe=False).entries[0]
            for rd in rscs
            if is_last_disk(rd, node.name)
        ]
        if refusals:
            final = rc.fail(
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
                rc.note(context, rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {node.uuid}")
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
        rc.note(context, rc.DELETED, f"{desc} marked for deletion.", details=f"{desc} UUID is: {node.uuid}")
    ]
    node.flags = ["DELETE"]
    peers = [state.nodes[k] for k in sorted({k for rd in rscs for k in rd.resources})]
    entries += [not_connected(context, peer.name) for peer in peers if not peer.online]
    for rd in rscs:
        if "DELETE" not in rd.resources[key].flags:
            rd.resources[key].flags.append("DELETE")
        for peer in (state.nodes[k] for k in sorted(rd.resources)):
            if peer is node and peer.online:
                entries.append(
                    rc.note(context, rc.MODIFIED, f"Deleted resource '{rd.name}' on '{peer.name}'")
                )
            elif peer is not node and peer.online:
                message = (
                    f"Notified '{peer.name}' that resource '{rd.name}' on '{node.name}' is being deleted"
                )
                entries.append(rc.note(context, rc.MODIFIED, message))
    if node.online:
        for rd in rscs:
            state.free_resource(rd, rd.resources[key])
        _forget_node(state, node)
        entries.append(
            rc.note(context, rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {node.uuid}")
        )
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
            raise rc.fail(context, FAIL_EXISTS_NODE_CONN, message, report=True)
        rscs = resources_on(state, node)
        peers = sorted(
            {k for rd in rscs for k in rd.resources if k != node.name.upper() and state.nodes[k].online}
        )
        for rd in rscs:
            state.free_resource(rd, rd.resources[node.name.upper()])
        _forget_node(state, node)
        desc = f"Node '{node.name}'"
        entries = [rc.note(context, rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {node.uuid}")]
        for key in peers:
            message = f"Notified '{state.nodes[key].name}' that '{node.name}' has been lost"
            entries.append(rc.note(context, rc.MODIFIED, message))
    return 200, entries


def resources_on(state: EmulatorState, node: Node) -> list[ResourceDefinition]:
    """The RDs with a resource on `node`, in the controller's order."""
    return [rd for rd in state.iter_rds() if node.name.upper() in rd.resources]


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
