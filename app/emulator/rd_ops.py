"""Resource definitions and volume definitions (linstor-rest-api.md §2.4, §2.5)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from app.emulator import prop_rules, rc
from app.emulator.model import ResourceDefinition, VolumeDefinition, rd_json, rd_layers, vd_json
from app.emulator.names import PropError, apply_props, check_props, name_problem, parse_filters, props_match
from app.emulator.satellite import current_gi, volume_events
from app.emulator.store import DEFAULT_RG, EmulatorState, new_uuid

Reply = tuple[int, Any]


T = TypeVar("T")


def rd_ctx(op: int, name: str) -> rc.Ctx:
    """The RD context of CtrlRscDfnApiCallHandler (§3.2)."""
    return rc.Ctx(op, rc.MASK_RSC_DFN, {rc.KEY_RSC_DFN: name}, f"Resource definition: {name}")


def check_rd_name(name: str, context: rc.Ctx | None = None, *, report: bool = False) -> None:
    """FAIL_INVLD_RSC_NAME, raw on GET paths and masked inside an operation (§4.1)."""
    problem = name_problem(name, rd=True)
    if problem is None:
        return
    message = f"The specified resource name '{name}' is invalid."
    if context is None:
        raise rc.raw_error(rc.FAIL_INVLD_RSC_NAME, message)
    raise context.err(rc.FAIL_INVLD_RSC_NAME, message, cause=problem, report=report)


def prop_error(context: rc.Ctx, exc: PropError) -> rc.ApiError:
    """The refusal of a property in the given context (CtrlPropsHelper, §4.2)."""
    return prop_rules.api_error(context, exc)


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
            kind=prop_rules.kind_of(context),
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
    """The RD or a masked 404 with cause and correction (CtrlApiDataLoader, §2.4 modify)."""
    # the 404 has no error report (controller-api.jsonl #139, #156), an invalid name has one (#140)
    check_rd_name(name, context, report=True)
    rd = state.rds.get(name.upper())
    if rd is None:
        raise context.err(
            rc.FAIL_NOT_FOUND_RSC_DFN,
            f"Resource definition '{name}' not found.",
            cause=f"The specified resource definition '{name}' could not be found in the database",
            correction=f"Create a resource definition with the name '{name}' first.",
            report=False,
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
        if external is None:
            context = rd_ctx(rc.MASK_CRT, "")
            raise context.err(
                rc.FAIL_MISSING_EXT_NAME,
                "The resource name generation for the creation of a new resource definition failed",
                cause=_NO_EXT_NAME_CAUSE,
                correction=_NO_EXT_NAME_CORRECTION,
            )
        name = _name_from_external(state, external)
    # the create reports an invalid name (controller-api.jsonl #62-#69), a spawn does too (make_rd)
    check_rd_name(name, rd_ctx(rc.MASK_CRT, name), report=True)
    with state.lock:
        entries = make_rd(
            state, name, spec.get("resource_group_name") or DEFAULT_RG, spec.get("props") or {}, external
        )
        rd = state.rds[name.upper()]
        requested = [str(item.get("type", "")).upper() for item in spec.get("layer_data") or []]
        if body.get("drbd_port") is not None:
            rd.requested_port = int(body["drbd_port"])
            requested = requested or ["DRBD"]
        rd.requested_layers = requested or None
    return 201, entries


def make_rd(
    state: EmulatorState,
    name: str,
    rg_name: str,
    props: dict[str, str],
    external: str | None = None,
    *,
    spawn_context: rc.Ctx | None = None,
    vd_sizes: list[int] = (),  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """Create one RD, and its VDs when spawned (caller holds the lock); returns the success entries in the
    controller's order: props, VDs, RD (controller-api.jsonl #56, service-traffic.jsonl #22)."""
    context = spawn_context or rd_ctx(rc.MASK_CRT, name)
    check_rd_name(name, context, report=spawn_context is not None)
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
    entries = []
    if clean:
        code = rc.ctx(rc.CREATED, rc.MASK_CRT, rc.MASK_RSC_DFN)
        entries.append(
            rc.entry(code, _set_msg(clean), obj_refs=spawn_context.refs if spawn_context else None)
        )
    for nr, size in enumerate(vd_sizes):
        _check_vd(vd_ctx(rc.MASK_CRT, name, nr), rd, nr, size)
        rd.vds[nr] = _new_vd(state, nr, size, {})
        entries.append(
            context.ok(
                rc.ctx(rc.CREATED, 0, rc.MASK_VLM_DFN),
                # the double space is the controller's
                f"Volume definition with number '{nr}' successfully  created in resource definition "
                f"'{name}'.",
                refs={rc.KEY_VLM_NR: str(nr)},
                order=(rc.KEY_RSC_GRP, rc.KEY_RSC_DFN),
            )
        )
    state.put_rd(rd)
    entries.append(
        context.ok(
            rc.ctx(rc.CREATED, 0, rc.MASK_RSC_DFN),
            f"New resource definition '{name}' created.",
            details=f"Resource definition '{name}' UUID is: {rd.uuid}",
            refs={rc.KEY_UUID: rd.uuid},
            order=(rc.KEY_RSC_GRP, rc.KEY_UUID),
        )
    )
    return entries


def modify_rd(state: EmulatorState, name: str, body: dict[str, Any]) -> Reply:
    """PUT /v1/resource-definitions/{rd}: override → delete_props → delete_namespaces (§2.4 modify)."""
    context = rd_ctx(rc.MASK_MOD, name)
    with state.lock:
        rd = get_rd_ctx(state, name, context)
        refusal = prop_rules.exact_size_refusal(body.get("override_props") or {}, len(rd.resources))
        if refusal is not None:
            raise context.err(rc.FAIL_INVLD_PROP, refusal, report=False)
        override, delete, spaces = checked_modify(context, body)
        new_rg = body.get("resource_group")
        if new_rg:
            rg = state.rgs.get(new_rg.upper())
            if rg is None:  # controller-api.jsonl #144
                raise context.err(
                    rc.FAIL_NOT_FOUND_RSC_GRP,
                    f"Resource group '{new_rg}' not found.",
                    cause=f"The specified resource group '{new_rg}' could not be found in the database",
                    correction=f"Create a resource group with the name '{new_rg}' first.",
                    report=False,
                )
            rd.rg = rg.name
        apply_props(rd.props, override, delete, spaces)
        entries = props_entries(context, body.get("override_props") or {}, body.get("delete_props") or [])
        entries.append(
            context.ok(
                rc.MODIFIED,
                f"Resource definition '{rd.name}' modified.",
                details=f"Resource definition '{rd.name}' UUID is: {rd.uuid}",
                refs={rc.KEY_UUID: rd.uuid},
                order=(rc.KEY_UUID,),
            )
        )
        # the satellites apply the change to every deployed volume (service-traffic.jsonl #57)
        entries += volume_events(state, rd, context, rc.MODIFIED, "resized")
    return 200, entries


def delete_rd(state: EmulatorState, name: str) -> Reply:
    """DELETE /v1/resource-definitions/{rd}: idempotent, refused while snapshots exist (§2.4 delete)."""
    context = rd_ctx(rc.MASK_DEL, name)
    with state.lock:
        check_rd_name(name, context, report=True)
        rd = state.rds.get(name.upper())
        if rd is None:
            return 200, [
                rc.entry(
                    rc.ctx(rc.WARN_NOT_FOUND, rc.MASK_DEL, rc.MASK_RSC_DFN),
                    f"Resource definition: {name} not found.",
                    details=context.details,
                    obj_refs=context.refs,
                )
            ]
        if rd.snapshots:
            raise context.err(
                rc.FAIL_EXISTS_SNAPSHOT_DFN,
                f"Cannot delete resource definition '{rd.name}' because it has snapshots.",
            )
        entries = []
        if rd.resources:
            # service-traffic.jsonl #5: marked, the satellites' volume deletions, each resource, then deleted
            entries.append(context.ok(rc.DELETED, f"Resource definition '{rd.name}' marked for deletion."))
            entries += volume_events(state, rd, context, rc.DELETED, "deleted")
            for key in sorted(rd.resources):
                entries.append(
                    context.ok(
                        rc.MODIFIED, f"Resource '{rd.name}' on '{rd.resources[key].node}' marked for deletion"
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
    """The VD context (MASK_VLM_DFN, RscDfn + VlmNr) of one VD, or without `nr` that of a create."""
    # described as "Resource definition: x, Volume number: n" (controller-api.jsonl #165, #168), a create
    # as "Volume definitions for resource definition 'x'" (#154, #156)
    if nr is None:
        return rc.Ctx(
            op, rc.MASK_VLM_DFN, {rc.KEY_RSC_DFN: rd}, f"Volume definitions for resource definition '{rd}'"
        )
    refs = {rc.KEY_RSC_DFN: rd, rc.KEY_VLM_NR: str(nr)}
    return rc.Ctx(op, rc.MASK_VLM_DFN, refs, f"Resource definition: {rd}, Volume number: {nr}")


def _vd_create_ctx(rd: str, nr: int) -> rc.Ctx:
    """One VD inside a create: its description, then the create's (controller-api.jsonl #152, #155)."""
    one, create = vd_ctx(rc.MASK_CRT, rd, nr), vd_ctx(rc.MASK_CRT, rd)
    return rc.Ctx(rc.MASK_CRT, rc.MASK_VLM_DFN, one.refs, f"{one.details}\n{create.details}")


def list_vds(state: EmulatorState, rd_name: str, nr: str | None = None) -> Reply:
    """GET …/volume-definitions[/{nr}] (offset/limit not implemented upstream, §2.5)."""
    with state.lock:
        rd = get_rd_raw(state, rd_name)
        if nr is None:
            return 200, [vd_json(rd.vds[n], rd_layers(rd)) for n in sorted(rd.vds)]
        vd = rd.vds.get(_int_or(nr, -1))
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


def _check_vd_nr(context: rc.Ctx, nr: int) -> None:
    if not 0 <= nr <= 65534:
        raise context.err(
            rc.FAIL_INVLD_VLM_NR,
            f"The specified volume number '{nr}' is invalid. Volume numbers have to be in range of "
            "0 - 65534.",
            cause=f"Volume number {nr} is out of range [0 - 65534]",
        )


def _check_vd(context: rc.Ctx, rd: ResourceDefinition, nr: int, size_kib: int) -> None:
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


def _new_vd(state: EmulatorState, nr: int, size_kib: int, props: dict[str, str]) -> VolumeDefinition:
    # the controller gives every new volume definition a DRBD current GI (controller-api.jsonl #158)
    return VolumeDefinition(
        number=nr,
        size_kib=size_kib,
        uuid=new_uuid(),
        minor=state.alloc_minor(),
        props={**props, "DrbdCurrentGi": current_gi()},
    )


def add_vd(
    state: EmulatorState, rd: ResourceDefinition, nr: int, size_kib: int, props: dict[str, str]
) -> list[dict[str, Any]]:
    """Create one VD (caller holds the lock) and allocate it on the RD's diskful resources."""
    context = _vd_create_ctx(rd.name, nr)
    _check_vd(context, rd, nr, size_kib)
    clean = checked_props(context, props)
    vd = _new_vd(state, nr, size_kib, clean)
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


def modify_vd(state: EmulatorState, rd_name: str, nr_text: str, body: dict[str, Any]) -> Reply:
    """PUT …/volume-definitions/{nr}: size and props (`delete_namespaces` is ignored upstream, §2.5)."""
    nr = _int_or(nr_text, -1)
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
        entries.append(
            context.ok(
                rc.MODIFIED,
                f"{desc} modified.",
                details=f"{desc} UUID is: {vd.uuid}",
                refs={rc.KEY_UUID: vd.uuid},
                order=(rc.KEY_UUID,),
            )
        )
        return 200, entries


def delete_vd(state: EmulatorState, rd_name: str, nr_text: str) -> Reply:
    """DELETE …/volume-definitions/{nr}: marked, then deleted (#169); a missing VD warns with 200 (#170)."""
    nr = _int_or(nr_text, -1)
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


def _set_msg(props: dict[str, str]) -> str:
    return "Successfully set property key(s): " + ",".join(props)


# CtrlPropsHelper's entries carry the mask of the object whose rules it checked: a resource group's props
# are checked as resource-definition props (controller-api.jsonl #30, #34)
_PROPS_ENTRY_OBJ = {rc.MASK_RSC_GRP: rc.MASK_RSC_DFN}


def props_entries(
    context: rc.Ctx, override: Mapping[str, str], delete: Sequence[str]
) -> list[dict[str, Any]]:
    """The "Successfully set/deleted property key(s)" entries of a modify, keys as the request sent them."""
    # `Aux//a` is listed as sent (controller-api.jsonl #126, #127, #133); set keys in request order, deleted
    # keys in Java HashSet order (#30, #34; service-traffic.jsonl #126)
    obj = _PROPS_ENTRY_OBJ.get(context.obj, 0)
    entries = []
    if override:
        message = "Successfully set property key(s): " + ",".join(override)
        entries.append(context.ok(rc.ctx(rc.CREATED, rc.MASK_CRT, obj), message))
    if delete:
        message = "Successfully deleted property key(s): " + ",".join(rc.java_hash_order(list(delete)))
        entries.append(context.ok(rc.ctx(rc.DELETED, rc.MASK_DEL, obj), message))
    return entries


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


# ExternalNameConverter: bytes kept in a name, punctuation replaced by `_`, anything else mapped to a letter
_REPLACEABLE = frozenset(b" !@#$%^&*()+=[]{}:;\"'<>?,./~")
_JAVA_UUID = re.compile(
    r"[0-9a-fA-F]{1,8}-[0-9a-fA-F]{1,4}-[0-9a-fA-F]{1,4}-[0-9a-fA-F]{1,4}-[0-9a-fA-F]{1,12}"
)
_NO_EXT_NAME_CAUSE = (
    "Name generation was selected by specifying a zero-length resource name,\n"
    "but the external name field required for name generation is not present\n"
    "in the API call data"
)
# the missing line break before the second "- Specify" is the controller's (controller-api.jsonl #71)
_NO_EXT_NAME_CORRECTION = (
    "For name generation from an external name\n"
    "- Specify a non-zero-length external name to induce resource name generation\n"
    "  based on the specified external name"
    "- Specify a zero-length external name to induce generation of a random\n"
    "  resource name (Prefix + UUID)\n"
    "or\n"
    "- Specify a non-zero-length resource name to avoid resource name generation"
)


def _name_from_external(state: EmulatorState, external: str) -> str:
    """The RD name ExternalNameConverter.createResourceName derives from an external name."""
    # a UUID gets `LS_`, a valid name is kept, anything else is translated byte by byte ("t8c08aa-ext/ä" ->
    # "t8c08aa-ext_Jo", controller-api.jsonl #80); a taken or impossible name becomes `LS_` + a random UUID
    data = external.encode()
    name: str | None = None
    if 0 < len(data) <= 256:
        head = data[:48].decode(errors="replace")
        if _JAVA_UUID.fullmatch(head):
            parts = [int(part, 16) for part in head.split("-")]
            name = "LS_" + str(uuid.UUID("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}".format(*parts))).upper()
        elif name_problem(head, rd=True) is None:
            name = head
        else:
            name = _translate(data[:48])
    if name is None or name.upper() in state.rds:
        name = f"LS_{uuid.uuid4()}"
    return name


def _translate(data: bytes) -> str | None:
    out = []
    for index, byte in enumerate(data):
        char = chr(byte)
        if char.isascii() and (
            char.isalpha() or char == "_" or (index > 0 and (char.isdigit() or char == "-"))
        ):
            out.append(char)
        elif byte in _REPLACEABLE:
            out.append("_")
        else:
            # Math.abs(b % 52) of the signed Java byte: the same as |b| % 52
            letter = abs(byte - 256 if byte > 127 else byte) % 52
            out.append(chr(ord("A") + letter) if letter < 26 else chr(ord("a") + letter - 26))
    name = "".join(out)
    return name if name_problem(name, rd=True) is None else None
