"""Resource definitions and volume definitions (linstor-rest-api.md §2.4, §2.5)."""

from __future__ import annotations

from typing import Any, TypeVar

from app.emulator import rc
from app.emulator.model import ResourceDefinition, VolumeDefinition, rd_json, vd_json
from app.emulator.names import PropError, apply_props, check_props, name_problem, parse_filters, props_match
from app.emulator.store import DEFAULT_RG, EmulatorState, new_uuid

Reply = tuple[int, Any]


T = TypeVar("T")


def rd_ctx(op: int, name: str) -> rc.Ctx:
    """The RD context of CtrlRscDfnApiCallHandler (§3.2)."""
    return rc.Ctx(op, rc.MASK_RSC_DFN, {rc.KEY_RSC_DFN: name}, f"Resource definition: {name}")


def check_rd_name(name: str, context: rc.Ctx | None = None) -> None:
    """FAIL_INVLD_RSC_NAME, raw on GET paths and masked inside an operation (§4.1)."""
    problem = name_problem(name, rd=True)
    if problem is None:
        return
    message = f"The specified resource name '{name}' is invalid."
    if context is None:
        raise rc.raw_error(rc.FAIL_INVLD_RSC_NAME, message, cause=problem)
    raise context.err(rc.FAIL_INVLD_RSC_NAME, message, cause=problem, report=False)


def prop_error(context: rc.Ctx, exc: PropError) -> rc.ApiError:
    """FAIL_INVLD_PROP in the given context (CtrlPropsHelper, §4.2)."""
    return context.err(rc.FAIL_INVLD_PROP, exc.message, cause=exc.cause, details=exc.details)


def checked_props(context: rc.Ctx, props: dict[str, str]) -> dict[str, str]:
    """The props of a create body, validated and sanitized (FAIL_INVLD_PROP in `context`, §4.2)."""
    return checked_modify(context, {"override_props": props})[0]


def checked_modify(context: rc.Ctx, body: dict[str, Any]) -> tuple[dict[str, str], list[str], list[str]]:
    """override_props, delete_props, delete_namespaces of a modify body, validated before anything applies."""
    try:
        return check_props(
            body.get("override_props") or {},
            body.get("delete_props") or [],
            body.get("delete_namespaces") or [],
        )
    except PropError as exc:
        raise prop_error(context, exc) from None


def get_rd_raw(state: EmulatorState, name: str) -> ResourceDefinition:
    """The RD or a raw 404 (RequestHelper.notFoundResponse, §1.5)."""
    check_rd_name(name)
    rd = state.rds.get(name.upper())
    if rd is None:
        raise rc.raw_error(rc.FAIL_NOT_FOUND_RSC_DFN, f"Resource definition '{name}' not found.")
    return rd


def get_rd_ctx(state: EmulatorState, name: str, context: rc.Ctx) -> ResourceDefinition:
    """The RD or a masked 404 with cause/correction (CtrlApiDataLoader, §2.4 modify)."""
    check_rd_name(name, context)
    rd = state.rds.get(name.upper())
    if rd is None:
        raise context.err(
            rc.FAIL_NOT_FOUND_RSC_DFN,
            f"Resource definition '{name}' not found.",
            cause=f"The specified resource definition '{name}' could not be found in the database",
            correction=f"Create a resource definition with the name '{name}' first.",
        )
    return rd


def list_rds(state: EmulatorState, query: list[tuple[str, str]], *, one: str | None = None) -> Reply:
    """GET /v1/resource-definitions[/{rd}]: name and props filters, then offset/limit (§5)."""
    names = [v for k, v in query if k == "resource_definitions"] if one is None else [one]
    for name in names:
        check_rd_name(name)
    filters = parse_filters([v for k, v in query if k == "props"]) if one is None else []
    with_vds = one is None and _flag(query, "with_volume_definitions")
    wanted = {n.upper() for n in names}
    with state.lock:
        rds = state.rds
        keys = [k for k in state.rd_keys() if k in wanted] if wanted else state.rd_keys()
        # §5.3: a linear scan with the filter checked before any JSON object is built
        if filters:
            hits = [rd for key in keys if props_match((rd := rds[key]).props, filters)]
        else:
            hits = [rds[key] for key in keys]
        hits = page(hits, query)
        out = [rd_json(rd, with_vds) for rd in hits]
    if one is not None:
        if not out:
            raise rc.raw_error(rc.FAIL_NOT_FOUND_RSC_DFN, f"Resource definition '{one}' not found.")
        return 200, out[0]
    return 200, out


def create_rd(state: EmulatorState, body: dict[str, Any]) -> Reply:
    """POST /v1/resource-definitions → 201; props validated in the same transaction (§2.4 create)."""
    spec: dict[str, Any] = body.get("resource_definition") or {}
    name = spec.get("name") or ""
    external = spec.get("external_name")
    if not name:
        if not external:
            context = rd_ctx(rc.MASK_CRT, "")
            raise context.err(
                rc.FAIL_MISSING_EXT_NAME,
                "The resource name generation for the creation of a new resource definition failed",
            )
        name = _name_from_external(state, external)
    with state.lock:
        entries = make_rd(
            state, name, spec.get("resource_group_name") or DEFAULT_RG, spec.get("props") or {}, external
        )
    return 201, entries


def make_rd(
    state: EmulatorState, name: str, rg_name: str, props: dict[str, str], external: str | None = None
) -> list[dict[str, Any]]:
    """Create one RD (caller holds the lock); returns the success entries (props entry first, §10.7)."""
    context = rd_ctx(rc.MASK_CRT, name)
    check_rd_name(name, context)
    rg = state.rgs.get(rg_name.upper())
    if rg is None:
        raise context.err(rc.FAIL_NOT_FOUND_RSC_GRP, f"Resource group '{rg_name}' could not be found.")
    if name.upper() in state.rds:
        raise context.err(
            rc.FAIL_EXISTS_RSC_DFN,
            f"A resource definition with the name '{name}' already exists",
            cause="The ResourceDefinition already exists",
            report=False,
        )
    clean = checked_props(context, props)
    rd = ResourceDefinition(
        name=name, uuid=new_uuid(), rg=rg.name, port=state.alloc_port(), props=clean, external_name=external
    )
    state.put_rd(rd)
    entries = []
    if clean:
        entries.append(rc.entry(rc.ctx(rc.CREATED, rc.MASK_CRT, rc.MASK_RSC_DFN), _set_msg(clean)))
    entries.append(
        context.ok(
            rc.CREATED,
            f"New resource definition '{name}' created.",
            details=f"Resource definition '{name}' UUID is: {rd.uuid}",
            refs={rc.KEY_UUID: rd.uuid},
        )
    )
    return entries


def modify_rd(state: EmulatorState, name: str, body: dict[str, Any]) -> Reply:
    """PUT /v1/resource-definitions/{rd}: override → delete_props → delete_namespaces (§2.4 modify)."""
    context = rd_ctx(rc.MASK_MOD, name)
    with state.lock:
        rd = get_rd_ctx(state, name, context)
        override, delete, spaces = checked_modify(context, body)
        new_rg = body.get("resource_group")
        if new_rg:
            rg = state.rgs.get(new_rg.upper())
            if rg is None:
                raise context.err(rc.FAIL_NOT_FOUND_RSC_GRP, f"Resource group '{new_rg}' could not be found.")
            rd.rg = rg.name
        apply_props(rd.props, override, delete, spaces)
        entries = []
        if override:
            entries.append(context.ok(rc.ctx(rc.CREATED, rc.MASK_CRT, 0), _set_msg(override)))
        if delete:
            entries.append(
                context.ok(
                    rc.ctx(rc.DELETED, rc.MASK_DEL, 0),
                    "Successfully deleted property key(s): " + ",".join(delete),
                )
            )
        entries.append(
            context.ok(
                rc.MODIFIED,
                f"Resource definition '{rd.name}' modified.",
                details=f"Resource definition '{rd.name}' UUID is: {rd.uuid}",
                refs={rc.KEY_UUID: rd.uuid},
            )
        )
    return 200, entries


def delete_rd(state: EmulatorState, name: str) -> Reply:
    """DELETE /v1/resource-definitions/{rd}: idempotent, refused while snapshots exist (§2.4 delete)."""
    context = rd_ctx(rc.MASK_DEL, name)
    with state.lock:
        check_rd_name(name, context)
        rd = state.rds.get(name.upper())
        if rd is None:
            return 200, [
                rc.entry(
                    rc.ctx(rc.WARN_NOT_FOUND, rc.MASK_DEL, rc.MASK_RSC_DFN),
                    f"Resource definition: {name} not found.",
                    details=context.details,
                    obj_refs=context.refs,
                    error_report=True,
                )
            ]
        if rd.snapshots:
            raise context.err(
                rc.FAIL_EXISTS_SNAPSHOT_DFN,
                f"Cannot delete resource definition '{rd.name}' because it has snapshots.",
            )
        entries = []
        if rd.resources:
            entries.append(context.ok(rc.DELETED, f"Resource definition '{rd.name}' marked for deletion."))
            for rsc in rd.resources.values():
                entries.append(
                    context.ok(
                        rc.DELETED, f"Deleted '{rd.name}' on '{rsc.node}'", refs={rc.KEY_NODE: rsc.node}
                    )
                )
        state.drop_rd(name.upper())
        entries.append(
            context.ok(
                rc.DELETED,
                f"Resource definition '{rd.name}' deleted.",
                details=f"Resource definition '{rd.name}' UUID was: {rd.uuid}",
            )
        )
    return 200, entries


# -- volume definitions --------------------------------------------------------------------------------------


def vd_ctx(op: int, rd: str, nr: int | str | None = None) -> rc.Ctx:
    """The VD context (MASK_VLM_DFN, RscDfn + VlmNr)."""
    refs = {rc.KEY_RSC_DFN: rd}
    if nr is not None:
        refs[rc.KEY_VLM_NR] = str(nr)
    return rc.Ctx(
        op, rc.MASK_VLM_DFN, refs, f"Volume definition with number '{nr}' of resource definition '{rd}'"
    )


def list_vds(state: EmulatorState, rd_name: str, nr: str | None = None) -> Reply:
    """GET …/volume-definitions[/{nr}] (offset/limit not implemented upstream, §2.5)."""
    with state.lock:
        rd = get_rd_raw(state, rd_name)
        if nr is None:
            return 200, [vd_json(rd.vds[n]) for n in sorted(rd.vds)]
        vd = rd.vds.get(_int_or(nr, -1))
        if vd is None:
            raise rc.raw_error(rc.FAIL_NOT_FOUND_VLM_DFN, f"Volume definition '{nr}' not found.")
        return 200, vd_json(vd)


def create_vd(state: EmulatorState, rd_name: str, body: dict[str, Any]) -> Reply:
    """POST …/volume-definitions → 200 (not the SPEC's 201, §11)."""
    spec: dict[str, Any] = body.get("volume_definition") or {}
    with state.lock:
        rd = get_rd_ctx(state, rd_name, vd_ctx(rc.MASK_CRT, rd_name))
        nr = spec.get("volume_number")
        if nr is None:
            nr = next(n for n in range(len(rd.vds) + 1) if n not in rd.vds)
        entries = add_vd(state, rd, int(nr), int(spec.get("size_kib") or 0), spec.get("props") or {})
    return 200, entries


def add_vd(
    state: EmulatorState, rd: ResourceDefinition, nr: int, size_kib: int, props: dict[str, str]
) -> list[dict[str, Any]]:
    """Create one VD (caller holds the lock) and allocate it on the RD's diskful resources."""
    context = vd_ctx(rc.MASK_CRT, rd.name, nr)
    if not 0 <= nr <= 65534:
        raise context.err(rc.FAIL_INVLD_VLM_NR, f"The specified volume number '{nr}' is invalid.")
    if size_kib < 1:
        raise context.err(rc.FAIL_INVLD_VLM_SIZE, f"The specified volume size '{size_kib}' is invalid.")
    if nr in rd.vds:
        raise context.err(
            rc.FAIL_EXISTS_VLM_DFN,
            f"A volume definition with the number {nr} already exists in resource definition '{rd.name}'.",
            report=False,
        )
    clean = checked_props(context, props)
    vd = VolumeDefinition(
        number=nr, size_kib=size_kib, uuid=new_uuid(), minor=state.alloc_minor(), props=clean
    )
    rd.vds[nr] = vd
    state.resize_allocations(rd, size_kib)
    return [
        context.ok(
            rc.CREATED,
            f"New volume definition with number '{nr}' of resource definition '{rd.name}' created.",
            details=f"Volume definition with number '{nr}' of resource definition '{rd.name}' "
            f"UUID is: {vd.uuid}",
            refs={rc.KEY_UUID: vd.uuid},
        )
    ]


def modify_vd(state: EmulatorState, rd_name: str, nr_text: str, body: dict[str, Any]) -> Reply:
    """PUT …/volume-definitions/{nr}: size and props (`delete_namespaces` is ignored upstream, §2.5)."""
    nr = _int_or(nr_text, -1)
    context = vd_ctx(rc.MASK_MOD, rd_name, nr_text)
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        vd = rd.vds.get(nr)
        if vd is None:
            raise context.err(
                rc.FAIL_NOT_FOUND_VLM_DFN,
                f"Volume definition with number '{nr_text}' of resource definition '{rd.name}' not found.",
            )
        # VolumeDefinitionModify.delete_namespaces is ignored by the controller (§2.5)
        override, delete, _ = checked_modify(context, {**body, "delete_namespaces": []})
        size = body.get("size_kib")
        if size is not None:
            if int(size) < 1:
                raise context.err(rc.FAIL_INVLD_VLM_SIZE, f"The specified volume size '{size}' is invalid.")
            state.resize_allocations(rd, int(size) - vd.size_kib)
            vd.size_kib = int(size)
        apply_props(vd.props, override, delete, [])
        message = f"Volume definition with number '{nr}' of resource definition '{rd.name}' modified."
        return 200, [context.ok(rc.MODIFIED, message, refs={rc.KEY_UUID: vd.uuid})]


def delete_vd(state: EmulatorState, rd_name: str, nr_text: str) -> Reply:
    """DELETE …/volume-definitions/{nr}; a missing VD is a WARN_NOT_FOUND with 200."""
    nr = _int_or(nr_text, -1)
    context = vd_ctx(rc.MASK_DEL, rd_name, nr_text)
    with state.lock:
        rd = get_rd_ctx(state, rd_name, context)
        vd = rd.vds.get(nr)
        desc = f"Volume definition with number '{nr_text}' of resource definition '{rd.name}'"
        if vd is None:
            return 200, [context.ok(rc.WARN_NOT_FOUND, f"{desc} not found.")]
        state.resize_allocations(rd, -vd.size_kib)
        del rd.vds[nr]
        return 200, [context.ok(rc.DELETED, f"{desc} deleted.", details=f"{desc} UUID was: {vd.uuid}")]


def _set_msg(props: dict[str, str]) -> str:
    return "Successfully set property key(s): " + ",".join(props)


def _flag(query: list[tuple[str, str]], key: str) -> bool:
    return any(k == key and v.lower() == "true" for k, v in query)


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def page(items: list[T], query: list[tuple[str, str]]) -> list[T]:
    """`skip(offset).limit(limit)` when limit > 0, else everything (offset alone is ignored, §5.2)."""
    values = dict(query)
    offset = max(_int_or(values.get("offset", "0"), 0), 0)
    limit = _int_or(values.get("limit", "0"), 0)
    return items[offset : offset + limit] if limit > 0 else items


def _name_from_external(state: EmulatorState, external: str) -> str:
    # §4.1: LINSTOR derives a valid name from the external name; keep the allowed characters, then dedupe
    base = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in external)[:40]
    if not base or not (base[0].isalpha() or base[0] == "_"):
        base = "rsc_" + base
    base = base[:44]
    name, counter = base, 1
    while name.upper() in state.rds:
        name = f"{base}_{counter}"
        counter += 1
    return name
