"""What the handler modules share: the reply type, paging, props checked in a call's context, and the entries
several handlers write alike (props set or deleted, object modified, satellite not connected)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from app.emulator import prop_rules, rc
from app.emulator.names import PropError, check_props
from app.emulator.shapes import NOT_CONNECTED_DETAILS, not_connected_message

Reply = tuple[int, Any]

T = TypeVar("T")


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
        # CtrlPropsHelper's refusal in the handler's context (§4.2)
        raise prop_rules.api_error(context, exc) from None


def set_keys_message(keys: Iterable[str]) -> str:
    """The controller's "Successfully set property key(s): a,b" (keys as the request sent them)."""
    return "Successfully set property key(s): " + ",".join(keys)


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
        entries.append(context.ok(rc.ctx(rc.CREATED, rc.MASK_CRT, obj), set_keys_message(override)))
    if delete:
        message = "Successfully deleted property key(s): " + ",".join(rc.java_hash_order(list(delete)))
        entries.append(context.ok(rc.ctx(rc.DELETED, rc.MASK_DEL, obj), message))
    return entries


def modified_entry(context: rc.Ctx, desc: str, uuid: str) -> dict[str, Any]:
    """The "<object> modified." entry that closes a modify, with the object's UUID."""
    return context.ok(
        rc.MODIFIED,
        f"{desc} modified.",
        details=f"{desc} UUID is: {uuid}",
        refs={rc.KEY_UUID: uuid},
        order=(rc.KEY_UUID,),
    )


def not_connected(context: rc.Ctx, node_name: str) -> dict[str, Any]:
    """ResponseUtils.makeNotConnectedWarning in a call's context (controller-api.jsonl #172)."""
    return rc.note(
        context, rc.WARN_NOT_CONNECTED, not_connected_message(node_name), details=NOT_CONNECTED_DETAILS
    )


def int_or(text: str, default: int) -> int:
    """`text` as an int, or `default` when it is not one (query values and path numbers)."""
    try:
        return int(text)
    except ValueError:
        return default


def page(items: list[T], query: list[tuple[str, str]]) -> list[T]:
    """`skip(offset).limit(limit)` when limit > 0, else everything (offset alone is ignored, §5.2)."""
    values = dict(query)
    offset = max(int_or(values.get("offset", "0"), 0), 0)
    limit = int_or(values.get("limit", "0"), 0)
    return items[offset : offset + limit] if limit > 0 else items
