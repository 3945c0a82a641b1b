"""Resource definitions: their handlers, and make_rd for a create, spawn or clone (§2.4)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from app.emulator import prop_rules, rc
from app.emulator.common import (
    Reply,
    checked_modify,
    checked_props,
    modified_entry,
    page,
    props_entries,
    set_keys_message,
)
from app.emulator.loaders import check_rd_name, get_rd_ctx, not_found, rd_ctx, vd_ctx
from app.emulator.model import ResourceDefinition
from app.emulator.names import apply_props, name_problem, parse_filters, props_match
from app.emulator.satellite import volume_events
from app.emulator.shapes import rd_json
from app.emulator.store import DEFAULT_RG, EmulatorState, new_uuid
from app.emulator.vd_ops import check_vd, new_vd


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
    check_rd_free(state, name, context)
    clean = checked_props(context, props)
    rd = ResourceDefinition(
        name=name, uuid=new_uuid(), rg=rg.name, port=state.alloc_port(), props=clean, external_name=external
    )
    entries = []
    if clean:
        code = rc.ctx(rc.CREATED, rc.MASK_CRT, rc.MASK_RSC_DFN)
        entries.append(
            rc.entry(code, set_keys_message(clean), obj_refs=spawn_context.refs if spawn_context else None)
        )
    for nr, size in enumerate(vd_sizes):
        check_vd(vd_ctx(rc.MASK_CRT, name, nr), rd, nr, size)
        rd.vds[nr] = new_vd(state, nr, size, {})
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


def check_rd_free(state: EmulatorState, name: str, context: rc.Ctx) -> None:
    """FAIL_EXISTS_RSC_DFN, without an error report, when an RD of that name exists (create, spawn, clone)."""
    if name.upper() in state.rds:
        raise context.err(
            rc.FAIL_EXISTS_RSC_DFN,
            f"A resource definition with the name '{name}' already exists",
            cause="The ResourceDefinition already exists",
            report=False,
        )


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
                raise not_found(context, rc.FAIL_NOT_FOUND_RSC_GRP, "resource group", new_rg)
            rd.rg = rg.name
        apply_props(rd.props, override, delete, spaces)
        entries = props_entries(context, body.get("override_props") or {}, body.get("delete_props") or [])
        entries.append(modified_entry(context, f"Resource definition '{rd.name}'", rd.uuid))
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


def _flag(query: list[tuple[str, str]], key: str) -> bool:
    return any(k == key and v.lower() == "true" for k, v in query)


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
