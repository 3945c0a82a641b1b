"""Storage pools built through the API, answered as CtrlStorPoolCrtApiCallHandler and
CtrlStorPoolApiCallHandler answer them (controller-api.jsonl #176-#178, #182; `#n` is a line of that file)."""

from __future__ import annotations

import re
from typing import Any

from app.emulator import rc
from app.emulator.common import Reply, checked_props, not_connected, set_keys_message
from app.emulator.loaders import get_node
from app.emulator.model import DISKLESS_POOL, OFFLINE_PROVIDERS, Node, StoragePool
from app.emulator.shapes import NOT_CONNECTED_DETAILS, not_connected_message
from app.emulator.store import EmulatorState, new_uuid

FAIL_EXISTS_STOR_POOL = 510 | rc.MASK_ERROR
FAIL_STLT_DOES_NOT_SUPPORT_PROVIDER = 989 | rc.MASK_ERROR
MASK_STOR_POOL = 0x140000
KEY_STOR_POOL_DFN = "StorPoolDfn"
PROVIDER_KINDS = {  # LinstorParsingUtils.asProviderKind's spellings
    "DRBD_DISKLESS": "DISKLESS",
    "DRBDDISKLESS": "DISKLESS",
    "DISKLESS": "DISKLESS",
    "LVM": "LVM",
    "LVMTHIN": "LVM_THIN",
    "LVM_THIN": "LVM_THIN",
    "ZFS": "ZFS",
    "ZFSTHIN": "ZFS_THIN",
    "ZFS_THIN": "ZFS_THIN",
    "FILE": "FILE",
    "FILE_THIN": "FILE_THIN",
    "SPDK": "SPDK",
    "REMOTE_SPDK": "REMOTE_SPDK",
    "EBS_TARGET": "EBS_TARGET",
    "EBS_INIT": "EBS_INIT",
}
# StoragePools.convertStorPoolProp: the old per-driver keys become StorDriver/StorPoolName
_POOL_NAME_KEY = "StorDriver/StorPoolName"
_OLD_POOL_KEYS = ("StorDriver/LvmVg", "StorDriver/ZPool", "StorDriver/ZPoolThin", "StorDriver/FileDir")
# the recorded FILE_THIN pool (#182): its size, and what its XFS used by itself
FILE_POOL_KIB = 548864
FILE_POOL_USED_KIB = 548864 - 514004
LVM_POOL_KIB = 1 << 30
# StorDriver/internal/AllocationGranularity as a satellite sets it on its new pool (#182 for FILE_THIN)
_GRANULARITY = {"FILE": "1", "FILE_THIN": "1", "LVM": "4096", "LVM_THIN": "64"}
_POOL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{2,47}")  # StorPoolName: 3..48, inner '_' and '-'


def pool_ctx(op: int, node: str, pool: str) -> rc.Ctx:
    """CtrlStorPoolApiCallHandler.makeStorPoolContext."""
    refs = {rc.KEY_NODE: node, KEY_STOR_POOL_DFN: pool}
    return rc.Ctx(op, MASK_STOR_POOL, refs, f"Node: {node}, Storage pool name: {pool}")


def create_pool(state: EmulatorState, node_name: str, body: dict[str, Any]) -> Reply:
    """POST /v1/nodes/{node}/storage-pools → 201; refused if the satellite lacks the provider (#176)."""
    pool_name = body.get("storage_pool_name") or ""
    context = pool_ctx(rc.MASK_CRT, node_name, pool_name)
    raw_kind = body.get("provider_kind")
    provider = PROVIDER_KINDS.get(str(raw_kind).upper()) if raw_kind is not None else None
    if provider is None:
        # thrown by the REST method itself: LinstorMapper answers 400 with the raw entry
        message = (
            "Given provider kind is null."
            if raw_kind is None
            else f"Given provider kind '{raw_kind}' is invalid"
        )
        raise rc.ApiError([rc.entry(rc.FAIL_INVLD_LAYER_KIND, message)], status=400)
    props = _renamed_pool_props(dict(body.get("props") or {}))
    with state.lock:
        node = get_node(state, context, node_name)
        # StorPoolHelper's ApiRcExceptions are caught and answered without the object's description
        if not _POOL_NAME.fullmatch(pool_name) or not any(c.isalpha() for c in pool_name):
            message = f"The given storage pool name '{pool_name}' is invalid."
            raise rc.fail(context, rc.FAIL_INVLD_STOR_POOL_NAME, message, describe=False)
        supported = node.providers if node.online and node.providers else OFFLINE_PROVIDERS
        if provider not in supported:
            message = f"The satellite does not support the device provider {provider}"
            raise rc.fail(context, FAIL_STLT_DOES_NOT_SUPPORT_PROVIDER, message, describe=False)
        pools = state.pools.setdefault(node.name.upper(), {})
        if pool_name.upper() in pools:
            message = f"Node: {node.name}, Storage pool name: {pool_name} already exists."
            raise rc.fail(context, FAIL_EXISTS_STOR_POOL, message, describe=False)
        pool = _new_pool(node, pool_name, provider, body, checked_props(context, props))
        pools[pool_name.upper()] = pool
        entries = []
        if props:
            entries.append(rc.note(context, rc.CREATED, set_keys_message(props)))
        desc = f"storage pool '{pool_name}' on node '{node.name}'"
        details = f"{desc[0].upper()}{desc[1:]} UUID is: {pool.uuid}"
        entries.append(
            rc.note(
                context, rc.CREATED, f"New {desc} registered.", details=details, refs={rc.KEY_UUID: pool.uuid}
            )
        )
        if node.online:
            entries.append(rc.note(context, rc.MODIFIED, f"Storage pool updated on '{node.name}'"))
        else:
            entries.append(not_connected(context, node.name))
    return 201, entries


def _new_pool(
    node: Node, name: str, provider: str, body: dict[str, Any], props: dict[str, str]
) -> StoragePool:
    """The pool as its satellite reports it once created (sizes and props of #182)."""
    pool = StoragePool(
        node=node.name,
        name=name,
        uuid=new_uuid(),
        provider=provider,
        total_kib=_pool_size(provider),
        supports_snapshots=provider not in ("DISKLESS", "LVM"),
        props=props,
        shared_space=body.get("free_space_mgr_name") or None,
        external_locking=bool(body.get("external_locking")),
        used_kib=FILE_POOL_USED_KIB if provider in ("FILE", "FILE_THIN") else 0,
    )
    if node.online and provider in _GRANULARITY:
        pool.props["StorDriver/internal/AllocationGranularity"] = _GRANULARITY[provider]
    return pool


def _renamed_pool_props(props: dict[str, str]) -> dict[str, str]:
    for key in _OLD_POOL_KEYS:
        if key in props:
            props[_POOL_NAME_KEY] = props.pop(key)
    thin = props.pop("StorDriver/ThinPool", None)
    if thin is not None:
        props[_POOL_NAME_KEY] = f"{props.get(_POOL_NAME_KEY)}/{thin}"
    return props


def _pool_size(provider: str) -> int:
    if provider in ("FILE", "FILE_THIN"):
        return FILE_POOL_KIB
    return LVM_POOL_KIB if provider in ("LVM", "LVM_THIN") else 0


def delete_pool(state: EmulatorState, node_name: str, pool_name: str) -> Reply:
    """DELETE /v1/nodes/{node}/storage-pools/{pool}: idempotent; refused for the diskless pool and while
    volumes or snapshot volumes use it (CtrlStorPoolApiCallHandler.deleteStorPool)."""
    context = pool_ctx(rc.MASK_DEL, node_name, pool_name)
    if pool_name.upper() == DISKLESS_POOL.upper():
        message = "The default diskless storage pool cannot be deleted!"
        raise rc.fail(context, rc.FAIL_INVLD_STOR_POOL_NAME, message, report=True)
    with state.lock:
        node = state.nodes.get(node_name.upper())
        pool = state.pools.get(node_name.upper(), {}).get(pool_name.upper()) if node else None
        if node is None or pool is None:
            desc = f"storage pool '{pool_name}' on node '{node_name}'"
            cause = f"{desc[0].upper()}{desc[1:]} does not exist."
            return 200, rc.fail(
                context, rc.WARN_NOT_FOUND, f"Deletion of {desc} had no effect.", cause=cause
            ).entries
        users = _pool_users(state, node, pool)
        if users:
            raise rc.fail(
                context,
                rc.FAIL_IN_USE,
                f"The specified storage pool '{pool_name}' on node '{node_name}' cannot be deleted as "
                "volumes / snapshot-volumes are still using it.",
                details="Volumes / snapshot-volumes that are still using the storage pool: " + "".join(users),
                correction="Delete the listed volumes and snapshot-volumes first.",
                report=True,
            )
        del state.pools[node.name.upper()][pool_name.upper()]
        desc = f"Node: {node_name}, Storage pool name: {pool_name}"
        entries = [
            rc.note(
                context,
                rc.DELETED,
                f"{desc} deleted.",
                details=f"{desc} UUID was: {pool.uuid}",
                refs={rc.KEY_UUID: pool.uuid},
            )
        ]
        if not node.online:
            # the satellite update fails after the commit: its warning is rendered in the outer MOD context
            outer = pool_ctx(rc.MASK_MOD, node_name, pool_name)
            details = f"{NOT_CONNECTED_DETAILS}\n{outer.details}"
            entries.append(
                rc.note(outer, rc.WARN_NOT_CONNECTED, not_connected_message(node.name), details=details)
            )
    return 200, entries


def _pool_users(state: EmulatorState, node: Node, pool: StoragePool) -> list[str]:
    """The volumes and snapshot volumes in `pool`, as the refusal lists them."""
    out = []
    key = node.name.upper()
    for rd in state.iter_rds():
        rsc = rd.resources.get(key)
        if rsc is not None and not rsc.diskless and rsc.pool.upper() == pool.name.upper():
            out += [
                f"\n   Node name: '{node.name}', resource name: '{rd.name}', volume number: {nr}, "
                "resource suffix: ''"
                for nr in sorted(rd.vds)
            ]
    for rd in state.iter_rds():
        for snap in rd.snapshots.values():
            if snap.node_pools.get(key, "").upper() == pool.name.upper():
                out += [
                    f"\n   Node name: '{node.name}', resource name: '{rd.name}', "
                    f"snapshot name: '{snap.name}', volume number: {nr}, resource suffix: ''"
                    for nr, _ in snap.volumes
                ]
    return out
