"""The JSON shapes of the emulator's objects, as the controller's Jackson writes them (NON_EMPTY, §1.2)."""

from __future__ import annotations

from typing import Any

from app.emulator import rc
from app.emulator.model import (
    LAYERS_DRBD,
    OFFLINE_PROVIDERS,
    PROVIDERS_DRBD,
    Node,
    Resource,
    ResourceDefinition,
    ResourceGroup,
    SnapshotDefinition,
    StoragePool,
    VolumeDefinition,
)

NOT_CONNECTED_DETAILS = (
    "The controller is trying to (re-) establish a connection to the satellite. The controller stored the "
    "changes and as soon the satellite is connected, it will receive this update."
)
_UNLIMITED_KIB = (1 << 63) - 1  # DisklessProvider's SpaceInfo(Long.MAX_VALUE, Long.MAX_VALUE)
_NO_INFO = "No information from satellite yet"


def _no_tool(command: str) -> str:
    program = command.split()[0]
    return (
        f"IO exception occured when running '{command}': Cannot run program \"{program}\": error=2, "
        "No such file or directory"
    )


_ZFS = ("'cat /sys/module/zfs/version' returned with exit code 1", _no_tool("zfs --version"))
_NOT_LINUX = ("This tool does not exist on the Linux platform.",)
_NO_DRBD = "IOException occurred when checking the 'drbdadm --version'"
# why a satellite refuses what it lacks, keys in the controller's order (#181); the FILE texts are not
# recorded (every emulated satellite has them), only their count shows while a node is OFFLINE (#173)
_PROVIDER_REASONS: dict[str, tuple[str, ...]] = {
    "LVM": (_no_tool("lvm version"),),
    "SPDK": (_no_tool("rpc.py spdk_get_version"),),
    "STORAGE_SPACES": _NOT_LINUX,
    "ZFS_THIN": _ZFS,
    "ZFS": _ZFS,
    "STORAGE_SPACES_THIN": _NOT_LINUX,
    "FILE_THIN": (_no_tool("losetup --version"),),
    "FILE": (_no_tool("losetup --version"),),
    "LVM_THIN": (_no_tool("thin_check -V"),),
}
_LAYER_REASONS: dict[str, tuple[str, ...]] = {
    "DRBD": (_NO_DRBD, _NO_DRBD),
    "LUKS": (_no_tool("cryptsetup --version"),),
    "NVME": (_no_tool("modprobe nvmet_rdma"), _no_tool("modprobe nvme_rdma")),
    "WRITECACHE": (_no_tool("modprobe dm-writecache"),),
    "CACHE": (_no_tool("modprobe dm-cache"),),
    "BCACHE": (_no_tool("modprobe bcache"),),
}
_OFFLINE_LAYER_CHECKS = {"DRBD": 2, "LUKS": 1, "NVME": 1, "WRITECACHE": 1, "CACHE": 1, "BCACHE": 1}


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value:
        out[key] = value


def sorted_props(props: dict[str, str]) -> dict[str, str]:
    """Props in the controller's order: a TreeMap by key (String order = code points for BMP keys)."""
    return dict(sorted(props.items()))


# AutoSelectFilter's fields in the order the controller's Jackson class writes them
FILTER_FIELDS = (
    "place_count",
    "additional_place_count",
    "node_name_list",
    "storage_pool",
    "storage_pool_list",
    "storage_pool_diskless_list",
    "not_place_with_rsc",
    "not_place_with_rsc_regex",
    "replicas_on_same",
    "replicas_on_different",
    "x_replicas_on_different_map",
    "layer_stack",
    "provider_list",
    "diskless_on_remaining",
    "diskless_type",
    "overprovision",
    "port_count",
)


def filter_json(select_filter: dict[str, Any]) -> dict[str, Any]:
    """A select filter with its fields in the controller's order."""
    return {key: select_filter[key] for key in FILTER_FIELDS if key in select_filter}


def layer_data(layers: list[str], drbd: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`layer_data` for a layer stack; the DRBD entry carries `drbd` when given."""
    return [
        {"type": layer, "data": drbd} if layer == "DRBD" and drbd else {"type": layer} for layer in layers
    ]


def node_json(node: Node) -> dict[str, Any]:
    """`Node` (SPEC): what its satellite reported while ONLINE, placeholders while OFFLINE (#173, #181)."""
    out: dict[str, Any] = {"name": node.name, "type": node.node_type}
    _put(out, "flags", node.flags)
    _put(out, "props", dict(sorted(node.props.items())))
    netifs = node.net_interfaces or [_default_netif(node)]
    active = next((i for i, n in enumerate(netifs) if n.get("satellite_port") is not None), None)
    out["net_interfaces"] = [{**netif, "is_active": i == active} for i, netif in enumerate(netifs)]
    for netif in out["net_interfaces"]:
        netif["uuid"] = netif.pop("uuid")  # Jackson writes is_active before uuid
    out["connection_status"] = "ONLINE" if node.online else "OFFLINE"
    out["uuid"] = node.uuid
    if node.online:
        providers, layers = node.providers or PROVIDERS_DRBD, node.layers or LAYERS_DRBD
        missing_providers = {k: list(v) for k, v in _PROVIDER_REASONS.items() if k not in providers}
        missing_layers = {k: list(v) for k, v in _LAYER_REASONS.items() if k not in layers}
    else:
        providers, layers = OFFLINE_PROVIDERS, ["STORAGE"]
        missing_providers = {k: [_NO_INFO] * len(v) for k, v in _PROVIDER_REASONS.items()}
        missing_layers = {k: [_NO_INFO] * count for k, count in _OFFLINE_LAYER_CHECKS.items()}
    out["storage_providers"] = list(providers)
    out["resource_layers"] = list(layers)
    _put(out, "unsupported_providers", missing_providers)
    _put(out, "unsupported_layers", missing_layers)
    if not node.online and node.eviction_timestamp is not None:
        out["eviction_timestamp"] = node.eviction_timestamp
    return out


def _default_netif(node: Node) -> dict[str, Any]:
    # nodes seeded (or saved) before net interfaces were kept: one PLAIN interface on the default port
    return {
        "name": "default",
        "address": node.address,
        "satellite_port": 3366,
        "satellite_encryption_type": "PLAIN",
        "uuid": node.uuid[:-4] + "0001",
    }


def not_connected_report(node_name: str) -> dict[str, Any]:
    """ResponseUtils.makeNotConnectedWarning as a raw entry (no masks, no obj_refs; #177)."""
    return rc.entry(rc.WARN_NOT_CONNECTED, not_connected_message(node_name), details=NOT_CONNECTED_DETAILS)


def not_connected_message(node_name: str) -> str:
    """The message of the "no active connection" warning."""
    return f"No active connection to satellite '{node_name}'"


def pool_traits(provider: str, supports_snapshots: bool) -> dict[str, str]:
    """`static_traits` of a pool: thin or fat provisioning, snapshot support (#177, #182)."""
    snapshots = {"SupportsSnapshots": str(supports_snapshots).lower()}
    if provider == "DISKLESS":
        return snapshots
    return {"Provisioning": "Thin" if provider.endswith("_THIN") else "Fat", **snapshots}


def pool_json(pool: StoragePool, node: Node) -> dict[str, Any]:
    """`StoragePool` (SPEC): capacities in KiB while the node is ONLINE, a `reports` warning while not."""
    out: dict[str, Any] = {
        "storage_pool_name": pool.name,
        "node_name": node.name,
        "provider_kind": pool.provider,
    }
    _put(out, "props", dict(sorted(pool.props.items())))
    out["static_traits"] = pool_traits(pool.provider, pool.supports_snapshots)
    if node.online:
        diskless = pool.provider == "DISKLESS"
        # a thin volume takes space only once written, and nothing writes here (#182: the recorded pool's
        # free space stays put while 1 GiB volumes are deployed in it)
        taken = pool.used_kib + (0 if pool.provider.endswith("_THIN") else pool.allocated_kib)
        out["free_capacity"] = _UNLIMITED_KIB if diskless else pool.total_kib - taken
        out["total_capacity"] = _UNLIMITED_KIB if diskless else pool.total_kib
    out["free_space_mgr_name"] = pool.shared_space or f"{node.name};{pool.name}"
    out["uuid"] = pool.uuid
    if not node.online:
        out["reports"] = [not_connected_report(node.name)]
    out["supports_snapshots"] = pool.supports_snapshots
    out["external_locking"] = pool.external_locking
    return out


def rg_json(rg: ResourceGroup) -> dict[str, Any]:
    """`ResourceGroup` (SPEC); empty select_filter/props are omitted."""
    out: dict[str, Any] = {"name": rg.name}
    _put(out, "description", rg.description)
    _put(out, "props", sorted_props(rg.props))
    _put(out, "select_filter", filter_json(rg.select_filter))
    out["uuid"] = rg.uuid
    if rg.peer_slots is not None:
        out["peer_slots"] = rg.peer_slots
    return out


def vd_json(vd: VolumeDefinition, layers: list[str] | None = None) -> dict[str, Any]:
    """`VolumeDefinition` (SPEC); layer data only once the RD has resources (`layers` given)."""
    out: dict[str, Any] = {"volume_number": vd.number, "size_kib": vd.size_kib}
    _put(out, "props", sorted_props(vd.props))
    _put(out, "flags", vd.flags)
    if layers:
        out["layer_data"] = layer_data(layers, {"minor_number": vd.minor})
    out["uuid"] = vd.uuid
    return out


def rd_json(rd: ResourceDefinition, with_vds: bool = False) -> dict[str, Any]:
    """`ResourceDefinition` (SPEC); layer_data once resources exist, volume_definitions only when asked for
    and non-empty (§2.4, controller-api.jsonl: an RD without resources has no layer_data)."""
    out: dict[str, Any] = {"name": rd.name}
    _put(out, "external_name", rd.external_name)
    _put(out, "props", sorted_props(rd.props))
    _put(out, "flags", rd.flags())
    layers = rd_layers(rd)
    shown = layers if rd.layer_data_shown else None
    if not rd.resources and rd.requested_layers:
        shown = rd.requested_layers
    if shown:
        drbd = {
            "peer_slots": 7,
            "al_stripes": 1,
            "al_stripe_size_kib": 32,
            "port": rd.port if rd.resources else rd.requested_port,
            "transport_type": "IP",
            "secret": rd.uuid.replace("-", "")[:20],
            "down": False,
        }
        out["layer_data"] = layer_data(shown, drbd)
    out["uuid"] = rd.uuid
    out["resource_group_name"] = rd.rg
    if with_vds and rd.vds:
        out["volume_definitions"] = [vd_json(rd.vds[nr], layers) for nr in sorted(rd.vds)]
    return out


def rd_layers(rd: ResourceDefinition) -> list[str] | None:
    """The RD's layer stack once it has resources, else None (no layer data yet)."""
    return rd.layers if rd.resources else None


def resource_json(
    rd: ResourceDefinition, rsc: Resource, *, volumes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`Resource`, or `ResourceWithVolumes` when `volumes` is given."""
    out: dict[str, Any] = {"name": rd.name, "node_name": rsc.node}
    _put(out, "props", sorted_props(rsc.props))
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
    _put(out, "props", sorted_props({**snap.rd_props, **snap.props}))
    _put(out, "snapshot_definition_props", sorted_props(snap.props))
    _put(out, "resource_definition_props", sorted_props(snap.rd_props))
    _put(out, "flags", snap.flags)
    volumes = []
    for nr, size in snap.volumes:
        volume: dict[str, Any] = {"volume_number": nr, "size_kib": size}
        _put(volume, "volume_definition_props", sorted_props(snap.vd_props.get(nr, {})))
        volumes.append(volume)
    _put(out, "volume_definitions", volumes)
    out["uuid"] = snap.uuid
    out["snapshots"] = []
    for node in snap.nodes:
        copy: dict[str, Any] = {
            "snapshot_name": snap.name,
            "node_name": node,
            "create_timestamp": snap.create_timestamp,
            "uuid": snap.uuid,
        }
        if node.upper() in snap.node_pools:
            copy["resource_props"] = {"StorPoolName": snap.node_pools[node.upper()]}
        if snap.volumes:
            copy["snapshot_volumes"] = [{"uuid": snap.uuid, "vlm_nr": nr} for nr, _ in snap.volumes]
        out["snapshots"].append(copy)
    return out
