"""The emulator's objects (slotted dataclasses) and their JSON shapes (NON_EMPTY, §1.2)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

DISKLESS_POOL = "DfltDisklessStorPool"


@dataclass(slots=True)
class Node:
    """A satellite; `online` decides whether snapshots and placement may use it."""

    name: str
    uuid: str
    address: str
    online: bool = True
    props: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StoragePool:
    """One storage pool on one node; allocation is tracked in KiB."""

    node: str
    name: str
    uuid: str
    provider: str = "LVM_THIN"
    total_kib: int = 1 << 30
    allocated_kib: int = 0
    supports_snapshots: bool = True


@dataclass(slots=True)
class ResourceGroup:
    """A resource group: select filter, props, description."""

    name: str
    uuid: str
    description: str | None = None
    props: dict[str, str] = field(default_factory=dict)
    select_filter: dict[str, Any] = field(default_factory=dict)
    peer_slots: int | None = None


@dataclass(slots=True)
class VolumeDefinition:
    """A volume definition of an RD."""

    number: int
    size_kib: int
    uuid: str
    minor: int
    props: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Resource:
    """A resource of an RD on one node (diskful on a pool, or diskless)."""

    node: str
    uuid: str
    pool: str
    create_timestamp: int
    props: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    @property
    def diskless(self) -> bool:
        """True for DRBD diskless clients."""
        return "DISKLESS" in self.flags or "DRBD_DISKLESS" in self.flags


@dataclass(slots=True)
class SnapshotDefinition:
    """A snapshot definition with its per-node copies (all copies share one timestamp, §6.1)."""

    name: str
    uuid: str
    nodes: list[str]
    create_timestamp: int
    volumes: list[tuple[int, int]]
    rd_props: dict[str, str]
    props: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=lambda: ["SUCCESSFUL"])


@dataclass(slots=True)
class ResourceDefinition:
    """A resource definition; children are keyed by upper-cased name (or volume number)."""

    name: str
    uuid: str
    rg: str
    port: int
    props: dict[str, str]
    external_name: str | None = None
    vds: dict[int, VolumeDefinition] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    snapshots: dict[str, SnapshotDefinition] = field(default_factory=dict)
    clone_until: float | None = None
    clone_failed: bool = False

    def flags(self) -> list[str]:
        """RD flags; CLONING/FAILED follow the clone's simulated progress (§2.8)."""
        if self.clone_failed:
            return ["FAILED"]
        if self.clone_until is not None and time.time() < self.clone_until:
            return ["CLONING"]
        return []


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value:
        out[key] = value


def node_json(node: Node, pools: list[StoragePool]) -> dict[str, Any]:
    """`Node` (SPEC) with one default net interface."""
    out: dict[str, Any] = {"name": node.name, "type": "SATELLITE"}
    _put(out, "props", node.props)
    out["net_interfaces"] = [
        {
            "name": "default",
            "address": node.address,
            "satellite_port": 3366,
            "satellite_encryption_type": "PLAIN",
            "is_active": True,
            "uuid": node.uuid[:-4] + "0001",
        }
    ]
    out["connection_status"] = "ONLINE" if node.online else "OFFLINE"
    out["uuid"] = node.uuid
    out["storage_providers"] = sorted({"DISKLESS", *(p.provider for p in pools)})
    out["resource_layers"] = ["DRBD", "STORAGE"]
    return out


def pool_json(pool: StoragePool, node_name: str) -> dict[str, Any]:
    """`StoragePool` (SPEC): an LVM thin pool with capacities in KiB."""
    return {
        "storage_pool_name": pool.name,
        "node_name": node_name,
        "provider_kind": pool.provider,
        "props": {"StorDriver/LvmVg": "linstor_vg", "StorDriver/StorPoolName": f"linstor_vg/{pool.name}"},
        "static_traits": {"Provisioning": "Thin", "SupportsSnapshots": str(pool.supports_snapshots).lower()},
        "free_capacity": pool.total_kib - pool.allocated_kib,
        "total_capacity": pool.total_kib,
        "free_space_mgr_name": f"{node_name}:{pool.name}",
        "uuid": pool.uuid,
        "supports_snapshots": pool.supports_snapshots,
        "external_locking": False,
    }


def rg_json(rg: ResourceGroup) -> dict[str, Any]:
    """`ResourceGroup` (SPEC); empty select_filter/props are omitted."""
    out: dict[str, Any] = {"name": rg.name}
    _put(out, "description", rg.description)
    _put(out, "props", rg.props)
    _put(out, "select_filter", rg.select_filter)
    out["uuid"] = rg.uuid
    if rg.peer_slots is not None:
        out["peer_slots"] = rg.peer_slots
    return out


def vd_json(vd: VolumeDefinition) -> dict[str, Any]:
    """`VolumeDefinition` (SPEC) with DRBD/STORAGE layer data."""
    out: dict[str, Any] = {"volume_number": vd.number, "size_kib": vd.size_kib}
    _put(out, "props", vd.props)
    _put(out, "flags", vd.flags)
    out["layer_data"] = [
        {"type": "DRBD", "data": {"minor_number": vd.minor}},
        {"type": "STORAGE"},
    ]
    out["uuid"] = vd.uuid
    return out


def rd_json(rd: ResourceDefinition, with_vds: bool = False) -> dict[str, Any]:
    """`ResourceDefinition` (SPEC); volume_definitions only when asked for and non-empty (§2.4)."""
    out: dict[str, Any] = {"name": rd.name}
    _put(out, "external_name", rd.external_name)
    _put(out, "props", rd.props)
    _put(out, "flags", rd.flags())
    out["layer_data"] = [
        {
            "type": "DRBD",
            "data": {
                "peer_slots": 7,
                "al_stripes": 1,
                "al_stripe_size_kib": 32,
                "port": rd.port,
                "transport_type": "IP",
                "secret": rd.uuid.replace("-", "")[:20],
                "down": False,
            },
        },
        {"type": "STORAGE"},
    ]
    out["uuid"] = rd.uuid
    out["resource_group_name"] = rd.rg
    if with_vds and rd.vds:
        out["volume_definitions"] = [vd_json(rd.vds[nr]) for nr in sorted(rd.vds)]
    return out


def resource_json(
    rd: ResourceDefinition, rsc: Resource, *, volumes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`Resource`, or `ResourceWithVolumes` when `volumes` is given."""
    out: dict[str, Any] = {"name": rd.name, "node_name": rsc.node}
    _put(out, "props", rsc.props)
    _put(out, "flags", rsc.flags)
    out["state"] = {"in_use": False}
    out["uuid"] = rsc.uuid
    out["create_timestamp"] = rsc.create_timestamp
    if volumes is not None:
        out["volumes"] = volumes
    return out


def volume_json(rd: ResourceDefinition, rsc: Resource, vd: VolumeDefinition) -> dict[str, Any]:
    """`Volume` (SPEC) of one resource."""
    diskless = rsc.diskless
    return {
        "volume_number": vd.number,
        "storage_pool_name": rsc.pool,
        "provider_kind": "DISKLESS" if diskless else "LVM_THIN",
        "device_path": f"/dev/drbd{vd.minor}",
        "allocated_size_kib": 0 if diskless else vd.size_kib,
        "usable_size_kib": vd.size_kib,
        "state": {"disk_state": "Diskless" if diskless else "UpToDate"},
        "uuid": vd.uuid,
    }


def snapshot_json(rd_name: str, snap: SnapshotDefinition) -> dict[str, Any]:
    """`Snapshot` (SPEC, §2.7): props = RD props overlaid with snapshot-definition props (deprecated)."""
    out: dict[str, Any] = {"name": snap.name, "resource_name": rd_name}
    _put(out, "nodes", snap.nodes)
    _put(out, "props", {**snap.rd_props, **snap.props})
    _put(out, "snapshot_definition_props", snap.props)
    _put(out, "resource_definition_props", snap.rd_props)
    _put(out, "flags", snap.flags)
    _put(out, "volume_definitions", [{"volume_number": nr, "size_kib": size} for nr, size in snap.volumes])
    out["uuid"] = snap.uuid
    out["snapshots"] = [
        {
            "snapshot_name": snap.name,
            "node_name": node,
            "create_timestamp": snap.create_timestamp,
            "uuid": snap.uuid,
            **(
                {"snapshot_volumes": [{"uuid": snap.uuid, "vlm_nr": nr} for nr, _ in snap.volumes]}
                if snap.volumes
                else {}
            ),
        }
        for node in snap.nodes
    ]
    return out
