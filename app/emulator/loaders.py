"""Contexts of RDs, VDs and snapshots, and lookups of RDs, nodes and snapshots with the controller's
not-found answers (RequestHelper.notFoundResponse on GET paths, CtrlApiDataLoader inside an operation)."""

from __future__ import annotations

from app.emulator import rc
from app.emulator.model import Node, ResourceDefinition, SnapshotDefinition
from app.emulator.names import name_problem
from app.emulator.store import EmulatorState


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
        raise not_found(context, rc.FAIL_NOT_FOUND_RSC_DFN, "resource definition", name)
    return rd


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


def snap_ctx(op: int, rd: str, snap: str) -> rc.Ctx:
    """The snapshot context (MASK_SNAPSHOT + RscDfn, Snapshot; CtrlSnapshotApiCallHandler)."""
    refs = {rc.KEY_RSC_DFN: rd, rc.KEY_SNAPSHOT: snap}
    return rc.Ctx(op, rc.MASK_SNAPSHOT, refs, f"Resource: {rd}, Snapshot: {snap}")


def get_rd_raw_ctx(state: EmulatorState, name: str) -> ResourceDefinition:
    """The RD as clone (its source) and GET …/resources load it: a missing one escapes the flux as a 404 RC
    list with the loader's cause and correction but no context (controller-api.jsonl #179, #220)."""
    check_rd_name(name, rd_ctx(rc.MASK_CRT, name))
    rd = state.rds.get(name.upper())
    if rd is None:
        raise rc.loader_not_found(rc.FAIL_NOT_FOUND_RSC_DFN, "resource definition", name)
    return rd


def get_node(state: EmulatorState, context: rc.Ctx, name: str) -> Node:
    """CtrlApiDataLoader.loadNode(name, true): a skip-report 404 with cause and correction."""
    node = state.nodes.get(name.upper())
    if node is None:
        raise not_found(context, rc.FAIL_NOT_FOUND_NODE, "node", name, java_order=True)
    return node


def get_snap(rd: ResourceDefinition, name: str, context: rc.Ctx) -> SnapshotDefinition:
    """The RD's snapshot definition or a masked 404 without an error report."""
    snap = rd.snapshots.get(name.upper())
    if snap is None:
        # controller-api.jsonl #209-211: the wording is the same whatever the context
        raise context.err(
            rc.FAIL_NOT_FOUND_SNAPSHOT_DFN,
            f"Snapshot '{name}' of resource '{rd.name}' not found.",
            report=False,
        )
    return snap


def not_found(context: rc.Ctx, code: int, noun: str, name: str, *, java_order: bool = False) -> rc.ApiError:
    """CtrlApiDataLoader's 404 inside an operation: message, cause and correction, no error report;
    `java_order` renders it as rc.fail does (the node, pool and resource handlers)."""
    message, cause, correction = rc.not_found_texts(noun, name)
    if java_order:
        return rc.fail(context, code, message, cause=cause, correction=correction)
    return context.err(code, message, cause=cause, correction=correction, report=False)
