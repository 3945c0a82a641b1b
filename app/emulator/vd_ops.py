"""Volume definitions: their handlers, and add_vd for a create or a snapshot restore
(linstor-rest-api.md §2.5)."""

from __future__ import annotations

from typing import Any

from app.emulator import prop_rules, rc
from app.emulator.common import Reply, checked_modify, checked_props, int_or, modified_entry, props_entries
from app.emulator.loaders import get_rd_ctx, get_rd_raw, vd_ctx
from app.emulator.model import ResourceDefinition, VolumeDefinition
from app.emulator.names import apply_props
from app.emulator.satellite import current_gi
from app.emulator.shapes import rd_layers, vd_json
from app.emulator.store import EmulatorState, new_uuid


def list_vds(state: EmulatorState, rd_name: str, nr: str | None = None) -> Reply:
    """GET …/volume-definitions[/{nr}] (offset/limit not implemented upstream, §2.5)."""
    with state.lock:
        rd = get_rd_raw(state, rd_name)
        if nr is None:
            return 200, [vd_json(rd.vds[n], rd_layers(rd)) for n in sorted(rd.vds)]
        vd = rd.vds.get(int_or(nr, -1))
        if vd is None:
            raise rc.raw_error(rc.FAIL_NOT_FOUND_VLM_DFN, f"Volume definition '{nr}' not found.")
        return 200, vd_json(vd, rd_layers(rd))


def create_vd(state: EmulatorState, rd_name: str, body: dict[str, Any]) -> Reply:
    """POST …/volume-definitions → 200 (not the SPEC's 201, §11)."""
    spec: dict[str, Any] = body.get("volume_definition") or {}
    context = vd_ctx(rc.MASK_CRT, rd_name)
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        nr = spec.get("volume_number")
        if nr is None:
            nr = next(n for n in range(len(rd.vds) + 1) if n not in rd.vds)
        _check_vd_nr(context, int(nr))  # before the VD's own context exists (controller-api.jsonl #154)
        entries = add_vd(state, rd, int(nr), int(spec.get("size_kib") or 0), spec.get("props") or {})
    return 200, entries


def modify_vd(state: EmulatorState, rd_name: str, nr_text: str, body: dict[str, Any]) -> Reply:
    """PUT …/volume-definitions/{nr}: size and props (`delete_namespaces` is ignored upstream, §2.5)."""
    nr = int_or(nr_text, -1)
    context = vd_ctx(rc.MASK_MOD, rd_name, nr_text)
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        vd = rd.vds.get(nr)
        if vd is None:  # controller-api.jsonl #168
            raise context.err(
                rc.FAIL_NOT_FOUND_VLM_DFN,
                f"Volume definition '{rd_name}' with volume number '{nr_text}' not found.",
                cause=(
                    f"The specified volume definition '{rd_name}' with volume number '{nr_text}' could not "
                    "be found in the database"
                ),
                correction=f"Create a volume definition with the name '{rd_name}' first.",
                report=False,
            )
        # VolumeDefinitionModify.delete_namespaces is ignored by the controller (§2.5, #166)
        override, delete, _ = checked_modify(context, {**body, "delete_namespaces": []})
        size = body.get("size_kib")
        if size is not None:
            if int(size) < 1:
                raise context.err(rc.FAIL_INVLD_VLM_SIZE, f"The specified volume size '{size}' is invalid.")
            refusal = prop_rules.resize_refusal(rd.props) if int(size) > vd.size_kib else None
            if refusal is not None:  # only growing is refused
                raise context.err(rc.FAIL_INVLD_PROP, refusal, report=False)
            state.resize_allocations(rd, int(size) - vd.size_kib)
            vd.size_kib = int(size)
        apply_props(vd.props, override, delete, [])
        entries = props_entries(context, body.get("override_props") or {}, body.get("delete_props") or [])
        desc = f"Volume definition with number '{nr}' of resource definition '{rd.name}'"
        entries.append(modified_entry(context, desc, vd.uuid))
        return 200, entries


def delete_vd(state: EmulatorState, rd_name: str, nr_text: str) -> Reply:
    """DELETE …/volume-definitions/{nr}: marked, then deleted (#169); a missing VD warns with 200 (#170)."""
    nr = int_or(nr_text, -1)
    context = vd_ctx(rc.MASK_DEL, rd_name, nr_text)
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        vd = rd.vds.get(nr)
        if vd is None:
            return 200, [
                context.ok(rc.WARN_NOT_FOUND, f"{context.details} not found.", details=context.details)
            ]
        state.resize_allocations(rd, -vd.size_kib)
        del rd.vds[nr]
        desc = f"Volume definition with number '{nr_text}' of resource definition '{rd.name}'"
        return 200, [
            context.ok(rc.DELETED, f"{desc} marked for deletion.", details=f"{desc} UUID is: {vd.uuid}"),
            context.ok(rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {vd.uuid}"),
        ]


def add_vd(
    state: EmulatorState, rd: ResourceDefinition, nr: int, size_kib: int, props: dict[str, str]
) -> list[dict[str, Any]]:
    """Create one VD (caller holds the lock) and allocate it on the RD's diskful resources."""
    context = _vd_create_ctx(rd.name, nr)
    check_vd(context, rd, nr, size_kib)
    clean = checked_props(context, props)
    vd = new_vd(state, nr, size_kib, clean)
    rd.vds[nr] = vd
    state.resize_allocations(rd, size_kib)
    entries = props_entries(vd_ctx(rc.MASK_CRT, rd.name), props, [])  # names only the RD (#151)
    entries.append(
        context.ok(
            rc.CREATED,
            f"New volume definition with number '{nr}' of resource definition '{rd.name}' created.",
        )
    )
    return entries


def _vd_create_ctx(rd: str, nr: int) -> rc.Ctx:
    """One VD inside a create: its description, then the create's (controller-api.jsonl #152, #155)."""
    one, create = vd_ctx(rc.MASK_CRT, rd, nr), vd_ctx(rc.MASK_CRT, rd)
    return rc.Ctx(rc.MASK_CRT, rc.MASK_VLM_DFN, one.refs, f"{one.details}\n{create.details}")


def _check_vd_nr(context: rc.Ctx, nr: int) -> None:
    if not 0 <= nr <= 65534:
        raise context.err(
            rc.FAIL_INVLD_VLM_NR,
            f"The specified volume number '{nr}' is invalid. Volume numbers have to be in range of "
            "0 - 65534.",
            cause=f"Volume number {nr} is out of range [0 - 65534]",
        )


def check_vd(context: rc.Ctx, rd: ResourceDefinition, nr: int, size_kib: int) -> None:
    """A new VD's number and size, and that the RD has no VD of that number yet."""
    _check_vd_nr(context, nr)
    if size_kib < 1:
        # the RD has no layer stack before it has resources, hence the non-DRBD range (#153)
        raise context.err(
            rc.FAIL_INVLD_VLM_SIZE,
            f"The volume definition with number '{nr}' of resource definition '{rd.name}' has an invalid "
            f"size of '{size_kib}'. Valid sizes range from 4 to 1099511627776.",
            cause=f"Volume size value {size_kib} is out of range [1 - 9223372036854775807] for non-DRBD",
            report=False,
        )
    if nr in rd.vds:
        raise context.err(
            rc.FAIL_EXISTS_VLM_DFN,
            f"A volume definition with the number {nr} already exists in resource definition '{rd.name}'.",
            cause="The VolumeDefinition already exists",
            report=False,
        )


def new_vd(state: EmulatorState, nr: int, size_kib: int, props: dict[str, str]) -> VolumeDefinition:
    """A new VD with its own minor number (not yet added to an RD)."""
    # the controller gives every new volume definition a DRBD current GI (controller-api.jsonl #158)
    return VolumeDefinition(
        number=nr,
        size_kib=size_kib,
        uuid=new_uuid(),
        minor=state.alloc_minor(),
        props={**props, "DrbdCurrentGi": current_gi()},
    )
