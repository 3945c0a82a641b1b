"""EmulatorState: the whole in-memory cluster, its default layout and persistence."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from app.emulator.faults import FaultBook
from app.emulator.model import (
    LAYERS_DRBD,
    LAYERS_RECORDED,
    PROVIDERS_DRBD,
    PROVIDERS_RECORDED,
    Node,
    Resource,
    ResourceDefinition,
    ResourceGroup,
    SnapshotDefinition,
    StoragePool,
    VolumeDefinition,
)

DEFAULT_RG = "DfltRscGrp"
DEFAULT_NODES = ("server01", "server02", "server03")
DEFAULT_POOL = "thinpool"
TIB_IN_KIB = 1 << 30
LAYOUTS = ("default", "bare")
# DrbdOptions/AutoEvictAfterTime: 60 minutes after the satellite was lost (controller-api.jsonl #173)
EVICTION_DELAY_MS = 60 * 60 * 1000
# what a fresh 1.33.3 controller holds before anyone set a property (controller-api.jsonl #5): what its
# database migrations and first start write; none of it names the recording host. Cluster/LocalID is random
# per cluster (reset() draws one). The NetCom keys describe the controller's stock connectors (ports 3376,
# 3377, 3373 and the default keystore names), not this emulator's listener.
CONTROLLER_DEFAULTS = {
    "DrbdOptions/AutoEvictAllowEviction": "True",
    "DrbdOptions/Resource/on-no-quorum": "io-error",
    "DrbdOptions/auto-add-quorum-tiebreaker": "True",
    "DrbdOptions/auto-diskful-allow-cleanup": "True",
    "DrbdOptions/auto-resync-after-disable": "true",
    "DrbdOptions/auto-verify-algo-allowed-list": "crct10dif;crc32c;sha384;sha512;sha256;sha1;md5;windrbd",
    "NetCom/DebugSslConnector/BindAddress": "::0",
    "NetCom/DebugSslConnector/Enabled": "true",
    "NetCom/DebugSslConnector/KeyPasswd": "linstor",
    "NetCom/DebugSslConnector/KeyStore": "ssl/keystore.jks",
    "NetCom/DebugSslConnector/KeyStorePasswd": "linstor",
    "NetCom/DebugSslConnector/Port": "3373",
    "NetCom/DebugSslConnector/SslProtocol": "TLSv1.2",
    "NetCom/DebugSslConnector/TrustStore": "ssl/certificates.jks",
    "NetCom/DebugSslConnector/TrustStorePasswd": "linstor",
    "NetCom/DebugSslConnector/Type": "SSL",
    "NetCom/PlainConnector/BindAddress": "",
    "NetCom/PlainConnector/Enabled": "true",
    "NetCom/PlainConnector/Port": "3376",
    "NetCom/PlainConnector/Type": "Plain",
    "NetCom/SslConnector/BindAddress": "",
    "NetCom/SslConnector/Enabled": "true",
    "NetCom/SslConnector/KeyPasswd": "linstor",
    "NetCom/SslConnector/KeyStore": "ssl/keystore.jks",
    "NetCom/SslConnector/KeyStorePasswd": "linstor",
    "NetCom/SslConnector/Port": "3377",
    "NetCom/SslConnector/SslProtocol": "TLSv1.2",
    "NetCom/SslConnector/TrustStore": "ssl/certificates.jks",
    "NetCom/SslConnector/TrustStorePasswd": "linstor",
    "NetCom/SslConnector/Type": "SSL",
    "defaultDebugSslConnector": "DebugSslConnector",
    "defaultPlainConSvc": "PlainConnector",
    "defaultSslConSvc": "",
}


def new_uuid() -> str:
    """A random UUID string, as LINSTOR prints them."""
    return str(uuid.uuid4())


class EmulatorState:
    """The whole in-memory LINSTOR cluster; mutations hold `lock` and never await (thread-safe when idle)."""

    def __init__(
        self,
        *,
        layout: str = "default",
        satellites: Iterable[str] | Mapping[str, str] | None = None,
        drbd: bool | None = None,
    ) -> None:
        """`layout`: "default" (server01-03 with `thinpool`) or "bare" (no nodes; build it with the API).
        `satellites`: node names whose satellite answers (default server01-03), or a mapping name -> hostname
        (its `NodeUname`). `drbd`: whether those satellites have DRBD and LVM (default: on for the default
        layout, off for bare, like the recorded satellite)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        self.layout = layout
        names = DEFAULT_NODES if satellites is None else satellites
        if isinstance(names, Mapping):
            self.satellites = {str(k).upper(): str(v) for k, v in names.items()}
        else:
            self.satellites = {name.upper(): name for name in names}
        self.drbd = layout == "default" if drbd is None else drbd
        self.lock = threading.RLock()
        self.faults = FaultBook()
        # the state is where the control routes and tests arrange faults; the middleware takes from the book
        self.add_fault = self.faults.add
        self.clear_faults = self.faults.clear
        self.refuse_hook: Callable[[float], None] | None = None
        self.clone_seconds = 0.0
        self.clone_fail = False
        self.clone_parse_error_hangs = False
        self.reset()

    # -- layout --

    def reset(self) -> None:
        """Back to the layout: default (3 online nodes, `thinpool` each, `DfltRscGrp`) or bare (only
        `DfltRscGrp`, place_count 2 as recorded: golinstor-traffic.jsonl #6); clears faults."""
        with self.lock:
            self.nodes: dict[str, Node] = {}
            self.pools: dict[str, dict[str, StoragePool]] = {}
            self.rgs: dict[str, ResourceGroup] = {}
            self.rds: dict[str, ResourceDefinition] = {}
            self.ctrl_props: dict[str, str] = {"Cluster/LocalID": new_uuid(), **CONTROLLER_DEFAULTS}
            self._rd_order: list[str] | None = None
            self.next_port = 7000
            self.next_minor = 1000
            self.faults.clear()
            self.clone_seconds = 0.0
            self.clone_fail = False
            if self.layout == "bare":
                dflt = ResourceGroup(name=DEFAULT_RG, uuid=new_uuid(), select_filter={"place_count": 2})
                self.rgs[DEFAULT_RG.upper()] = dflt
                return
            for index, name in enumerate(DEFAULT_NODES, start=1):
                self.add_node(name, address=f"10.0.0.{index}")
            self.rgs[DEFAULT_RG.upper()] = ResourceGroup(name=DEFAULT_RG, uuid=new_uuid())

    def add_node(
        self, name: str, *, address: str = "10.0.0.99", online: bool = True, pool_kib: int = TIB_IN_KIB
    ) -> None:
        """Add a satellite with one LVM_THIN pool `thinpool` (the seeded layout has no diskless pools)."""
        with self.lock:
            netif = {
                "name": "default",
                "address": address,
                "satellite_port": 3366,
                "satellite_encryption_type": "PLAIN",
                "uuid": new_uuid(),
            }
            node = Node(
                name=name,
                uuid=new_uuid(),
                address=address,
                props={"CurStltConnName": "default"},
                net_interfaces=[netif],
            )
            self.nodes[name.upper()] = node
            if online:
                self.connect(node)
            else:
                self.disconnect(node)
            pool = StoragePool(
                node=name,
                name=DEFAULT_POOL,
                uuid=new_uuid(),
                total_kib=pool_kib,
                props={
                    "StorDriver/StorPoolName": f"linstor_vg/{DEFAULT_POOL}",
                    "StorDriver/internal/AllocationGranularity": "64",
                },
            )
            self.pools[name.upper()] = {DEFAULT_POOL.upper(): pool}

    def set_node_online(self, node: str, online: bool) -> None:
        """Mark a satellite ONLINE/OFFLINE (snapshots need an online diskful resource, §6.1)."""
        with self.lock:
            found = self.nodes[node.upper()]
            if online:
                self.connect(found)
            else:
                self.disconnect(found)

    # -- emulated satellites --

    def has_satellite(self, name: str) -> bool:
        """True if a node of that name finds its satellite (it comes ONLINE when created)."""
        return name.upper() in self.satellites

    def satellite_tools(self) -> tuple[list[str], list[str]]:
        """(storage providers, resource layers) an emulated satellite reports."""
        if self.drbd:
            return list(PROVIDERS_DRBD), list(LAYERS_DRBD)
        return list(PROVIDERS_RECORDED), list(LAYERS_RECORDED)

    def connect(self, node: Node) -> None:
        """The satellite answers: ONLINE, its hostname and tools recorded on the node."""
        node.online = True
        node.eviction_timestamp = None
        node.props["NodeUname"] = self.satellites.get(node.name.upper(), node.name)
        if not node.providers:
            node.providers, node.layers = self.satellite_tools()

    def disconnect(self, node: Node) -> None:
        """The satellite is gone: OFFLINE, evicted after the default delay unless it comes back."""
        node.online = False
        node.eviction_timestamp = int(time.time() * 1000) + EVICTION_DELAY_MS

    def set_clone_behaviour(self, *, seconds: float = 0.0, fail: bool = False) -> None:
        """How long new clones stay CLONING, and whether they end FAILED (§2.8)."""
        with self.lock:
            self.clone_seconds = seconds
            self.clone_fail = fail

    # -- RD index --

    def rd_keys(self) -> list[str]:
        """RD keys sorted like the controller's TreeMap<ResourceName> (upper-cased name, §1.4); cached."""
        if self._rd_order is None:
            self._rd_order = sorted(self.rds)
        return self._rd_order

    def iter_rds(self) -> Iterator[ResourceDefinition]:
        """RDs in controller order."""
        rds = self.rds
        return (rds[key] for key in self.rd_keys())

    def put_rd(self, rd: ResourceDefinition) -> None:
        """Insert an RD and invalidate the order cache."""
        self.rds[rd.name.upper()] = rd
        self._rd_order = None

    def drop_rd(self, key: str) -> None:
        """Remove an RD (and its allocations) and invalidate the order cache."""
        rd = self.rds.pop(key)
        for rsc in list(rd.resources.values()):
            self.free_resource(rd, rsc)
        self._rd_order = None

    def alloc_port(self) -> int:
        """Next DRBD TCP port."""
        self.next_port += 1
        return self.next_port - 1

    def alloc_minor(self) -> int:
        """Next DRBD minor number."""
        self.next_minor += 1
        return self.next_minor - 1

    def pool_of(self, rsc: Resource) -> StoragePool | None:
        """The storage pool a diskful resource lives in."""
        if rsc.diskless:
            return None
        return self.pools.get(rsc.node.upper(), {}).get(rsc.pool.upper())

    def free_resource(self, rd: ResourceDefinition, rsc: Resource) -> None:
        """Give back the space of a resource."""
        pool = self.pool_of(rsc)
        if pool is not None:
            pool.allocated_kib -= sum(vd.size_kib for vd in rd.vds.values())
        rd.resources.pop(rsc.node.upper(), None)

    def resize_allocations(self, rd: ResourceDefinition, delta_kib: int) -> None:
        """Account a VD size change on every diskful resource of the RD."""
        for rsc in rd.resources.values():
            pool = self.pool_of(rsc)
            if pool is not None:
                pool.allocated_kib += delta_kib

    # -- runner --

    def refuse(self, seconds: float) -> bool:
        """Stop listening for `seconds` (needs the runner's hook); False when no runner is attached."""
        hook = self.refuse_hook
        if hook is None:
            return False
        hook(seconds)
        return True

    # -- persistence --

    def save(self, path: str | Path) -> None:
        """Write the cluster (not the faults) to a JSON file."""
        with self.lock:
            data = {
                "version": 1,
                "ctrl_props": self.ctrl_props,
                "next_port": self.next_port,
                "next_minor": self.next_minor,
                "nodes": [_slots(n) for n in self.nodes.values()],
                "pools": [_slots(p) for pools in self.pools.values() for p in pools.values()],
                "rgs": [_slots(rg) for rg in self.rgs.values()],
                "rds": [_rd_dump(rd) for rd in self.rds.values()],
            }
            blob = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        Path(path).write_bytes(blob)

    def load(self, path: str | Path) -> None:
        """Replace the cluster with the content of a file written by `save`."""
        data = orjson.loads(Path(path).read_bytes())
        with self.lock:
            self.nodes = {n["name"].upper(): Node(**n) for n in data["nodes"]}
            self.pools = {}
            for raw in data["pools"]:
                self.pools.setdefault(raw["node"].upper(), {})[raw["name"].upper()] = StoragePool(**raw)
            self.rgs = {rg["name"].upper(): ResourceGroup(**rg) for rg in data["rgs"]}
            self.rds = {rd["name"].upper(): _rd_load(rd) for rd in data["rds"]}
            self.ctrl_props = dict(data["ctrl_props"])
            self.next_port = int(data["next_port"])
            self.next_minor = int(data["next_minor"])
            self._rd_order = None


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _rd_dump(rd: ResourceDefinition) -> dict[str, Any]:
    out = _slots(rd)
    out["vds"] = [_slots(vd) for vd in rd.vds.values()]
    out["resources"] = [_slots(r) for r in rd.resources.values()]
    out["snapshots"] = [_slots(s) for s in rd.snapshots.values()]
    return out


def _rd_load(raw: dict[str, Any]) -> ResourceDefinition:
    vds = [VolumeDefinition(**vd) for vd in raw.pop("vds")]
    rscs = [Resource(**r) for r in raw.pop("resources")]
    snaps = []
    for s in raw.pop("snapshots"):
        s["volumes"] = [tuple(v) for v in s["volumes"]]
        s["vd_props"] = {int(nr): props for nr, props in s.get("vd_props", {}).items()}
        snaps.append(SnapshotDefinition(**s))
    rd = ResourceDefinition(**raw)
    rd.vds = {vd.number: vd for vd in vds}
    rd.resources = {r.node.upper(): r for r in rscs}
    rd.snapshots = {s.name.upper(): s for s in snaps}
    if rd.clone_until is not None and rd.clone_until > time.time():
        rd.clone_until = None
    return rd
