"""The emulator's objects (slotted dataclasses) and the providers and layers a satellite offers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

DISKLESS_POOL = "DfltDisklessStorPool"

# What a satellite offers, in the controller's enum order: like the recorded one (server01: no DRBD, no LVM,
# controller-api.jsonl #181) or like the emulator's default nodes (DRBD and LVM as well)
PROVIDERS_RECORDED = ["DISKLESS", "FILE", "FILE_THIN", "REMOTE_SPDK", "EBS_INIT", "EBS_TARGET"]
PROVIDERS_DRBD = ["DISKLESS", "LVM", "LVM_THIN", "FILE", "FILE_THIN", "REMOTE_SPDK", "EBS_INIT", "EBS_TARGET"]
LAYERS_RECORDED = ["STORAGE"]
LAYERS_DRBD = ["DRBD", "STORAGE"]
OFFLINE_PROVIDERS = ["DISKLESS", "REMOTE_SPDK", "EBS_INIT", "EBS_TARGET"]  # controller-api.jsonl #173


@dataclass(slots=True)
class Node:
    """A satellite; `online` decides whether snapshots and placement may use it."""

    name: str
    uuid: str
    address: str
    online: bool = True
    props: dict[str, str] = field(default_factory=dict)
    node_type: str = "SATELLITE"
    flags: list[str] = field(default_factory=list)
    # as created: name, address, satellite_port, satellite_encryption_type, uuid ([]: a default one)
    net_interfaces: list[dict[str, Any]] = field(default_factory=list)
    # what its satellite reported at the last connection ([] while it never connected)
    providers: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    eviction_timestamp: int | None = None


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
    props: dict[str, str] = field(default_factory=dict)
    shared_space: str | None = None  # the free-space manager's name when not "node;pool"
    external_locking: bool = False
    used_kib: int = 0  # what the backing storage uses by itself (a file system's metadata)


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
    vd_props: dict[int, dict[str, str]] = field(default_factory=dict)
    node_pools: dict[str, str] = field(default_factory=dict)


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
    # the layer stack its resources were deployed with (the RG's layer_stack, else DRBD over STORAGE)
    layers: list[str] = field(default_factory=lambda: ["DRBD", "STORAGE"])
    # an RD whose resources came from a snapshot restore shows no layer data (service-traffic.jsonl #136)
    layer_data_shown: bool = True
    # layer data asked for at creation (`layer_data` or `drbd_port`), shown before any resource exists
    # (controller-api.jsonl #81-#86); `port` is then the requested one, or -1
    requested_layers: list[str] | None = None
    requested_port: int = -1

    def flags(self) -> list[str]:
        """RD flags; CLONING/FAILED follow the clone's simulated progress (§2.8)."""
        if self.clone_failed:
            return ["FAILED"]
        if self.clone_until is not None and time.time() < self.clone_until:
            return ["CLONING"]
        return []
