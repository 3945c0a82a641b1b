"""What the satellites report back through the controller: one entry per volume or snapshot volume.

The controller appends its satellites' answers to the ApiCallRc list of the call that changed them, with the
call's operation bit and the volume's (or snapshot's) object mask, e.g. "(server01) Volume number 0 of
resource 'x' [FILE THIN] created" (service-traffic.jsonl #22, #56, #135). Their obj_refs always come in one
order: Snapshot, RscGrp, RscDfn, VlmNr.
"""

from __future__ import annotations

import secrets
from typing import Any

from app.emulator import rc
from app.emulator.model import ResourceDefinition, StoragePool
from app.emulator.store import EmulatorState

_SATELLITE_ORDER = (rc.KEY_SNAPSHOT, rc.KEY_RSC_GRP, rc.KEY_RSC_DFN, rc.KEY_VLM_NR)
# VD props a FILE/FILE_THIN satellite writes once a volume is deployed (service-traffic.jsonl #26)
_FILE_VD_PROPS = {"DrbdOptions/Disk/block-size": "512", "StorDriver/internal/AllocationGranularity": "1"}


def current_gi() -> str:
    """A DRBD current generation id, as the controller stores on every new volume definition."""
    return secrets.token_hex(8).upper()


def provider_label(pool: StoragePool | None) -> str:
    """The bracketed provider name of satellite messages: FILE_THIN -> "FILE THIN"."""
    return (pool.provider if pool else "DISKLESS").replace("_", " ")


def _refs(context: rc.Ctx, volume: int) -> dict[str, str]:
    refs = {**context.refs, rc.KEY_VLM_NR: str(volume)}
    return {key: refs[key] for key in _SATELLITE_ORDER if key in refs}


def _diskful(state: EmulatorState, rd: ResourceDefinition) -> list[tuple[str, StoragePool | None]]:
    """(node, pool) of each diskful resource on an online node, in the controller's node order."""
    out = []
    for key in sorted(rd.resources):
        rsc = rd.resources[key]
        node = state.nodes.get(key)
        if rsc.diskless or node is None or not node.online:
            continue
        out.append((rsc.node, state.pool_of(rsc)))
    return out


def volume_events(
    state: EmulatorState,
    rd: ResourceDefinition,
    context: rc.Ctx,
    change: int,
    verb: str,
    nodes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One "(node) Volume number N of resource 'x' [PROVIDER] <verb>" per deployed volume."""
    out = []
    wanted = {n.upper() for n in nodes} if nodes is not None else None
    for node, pool in _diskful(state, rd):
        if wanted is not None and node.upper() not in wanted:
            continue
        for nr in sorted(rd.vds):
            out.append(
                rc.entry(
                    rc.ctx(change | rc.MASK_VLM, context.op, 0),
                    f"({node}) Volume number {nr} of resource '{rd.name}' [{provider_label(pool)}] {verb}",
                    obj_refs=_refs(context, nr),
                )
            )
    return out


def snapshot_events(
    state: EmulatorState,
    rd: ResourceDefinition,
    context: rc.Ctx,
    snapshot: str,
    change: int,
    verb: str,
    volumes: list[int],
    nodes: list[str],
) -> list[dict[str, Any]]:
    """One "(node) Snapshot [PROVIDER] with name 's' of resource 'x', volume number N <verb>." per volume."""
    out = []
    wanted = {n.upper() for n in nodes}
    for node, pool in _diskful(state, rd) or [(n, None) for n in nodes]:
        if node.upper() not in wanted:
            continue
        for nr in volumes:
            out.append(
                rc.entry(
                    rc.ctx(change | rc.MASK_SNAPSHOT, context.op, 0),
                    f"({node}) Snapshot [{provider_label(pool)}] with name '{snapshot}' of resource "
                    f"'{rd.name}', volume number {nr} {verb}.",
                    obj_refs=_refs(context, nr),
                )
            )
    return out


def deploy_props(state: EmulatorState, rd: ResourceDefinition) -> None:
    """The props satellites add when an RD's volumes are deployed: VD block size on file pools, and
    the controller's automatic quorum setting (off below three resources)."""
    pools = [pool for _, pool in _diskful(state, rd)]
    if any(pool is not None and pool.provider.startswith("FILE") for pool in pools):
        for vd in rd.vds.values():
            vd.props.update(_FILE_VD_PROPS)
    if rd.resources:
        rd.props.setdefault("DrbdOptions/Resource/quorum", "off" if len(rd.resources) < 3 else "majority")
