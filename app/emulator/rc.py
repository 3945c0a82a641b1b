"""ApiCallRc ret_code constants and builders, as LINSTOR's controller writes them (linstor-rest-api.md §3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# linstor-rest-api.md §3.2: bit layout, from python-linstor's sharedconsts.py
MASK_ERROR = 0xC000000000000000
MASK_WARN = 0x8000000000000000
MASK_INFO = 0x4000000000000000
MASK_BITS_CODE = 0x7FFF
MASK_BITS_OP = 0x03000000
MASK_BITS_OBJ = 0x007C0000

MASK_CRT = 0x01000000
MASK_MOD = 0x02000000
MASK_DEL = 0x03000000

MASK_RSC_GRP = 0x440000
MASK_NODE = 0x3C0000
MASK_RSC_DFN = 0x380000
MASK_RSC = 0x340000
MASK_VLM_DFN = 0x300000
MASK_CTRL_CONF = 0x100000
MASK_SNAPSHOT = 0x0C0000
MASK_VLM = 0x2C0000

CREATED = 1
DELETED = 2
MODIFIED = 3

FAIL_INVLD_RSC_NAME = 202 | MASK_ERROR
FAIL_INVLD_VLM_NR = 205 | MASK_ERROR
FAIL_INVLD_VLM_SIZE = 206 | MASK_ERROR
FAIL_INVLD_STOR_POOL_NAME = 208 | MASK_ERROR
FAIL_INVLD_PROP = 213 | MASK_ERROR
FAIL_INVLD_SNAPSHOT_NAME = 218 | MASK_ERROR
FAIL_INVLD_PLACE_COUNT = 219 | MASK_ERROR
FAIL_INVLD_LAYER_KIND = 224 | MASK_ERROR
FAIL_INVLD_VLM_SIZES = 228 | MASK_ERROR
FAIL_INVLD_RSC_GRP_NAME = 237 | MASK_ERROR
FAIL_NOT_FOUND_NODE = 300 | MASK_ERROR
FAIL_NOT_FOUND_RSC_DFN = 301 | MASK_ERROR
FAIL_NOT_FOUND_RSC = 302 | MASK_ERROR
FAIL_NOT_FOUND_VLM_DFN = 303 | MASK_ERROR
FAIL_NOT_FOUND_STOR_POOL = 310 | MASK_ERROR
FAIL_NOT_FOUND_SNAPSHOT_DFN = 313 | MASK_ERROR
FAIL_NOT_FOUND_SNAPSHOT = 315 | MASK_ERROR
FAIL_NOT_FOUND_RSC_GRP = 317 | MASK_ERROR
FAIL_EXISTS_RSC_DFN = 501 | MASK_ERROR
FAIL_EXISTS_RSC = 502 | MASK_ERROR
FAIL_EXISTS_VLM_DFN = 503 | MASK_ERROR
FAIL_EXISTS_SNAPSHOT_DFN = 514 | MASK_ERROR
FAIL_EXISTS_RSC_GRP = 522 | MASK_ERROR
FAIL_MISSING_EXT_NAME = 606 | MASK_ERROR
FAIL_NOT_CONNECTED = 995 | MASK_ERROR
FAIL_NOT_ENOUGH_NODES = 996 | MASK_ERROR
FAIL_IN_USE = 997 | MASK_ERROR
FAIL_UNKNOWN_ERROR = 998 | MASK_ERROR
WARN_NOT_CONNECTED = 1002 | MASK_WARN
WARN_NOT_FOUND = 3000 | MASK_WARN
INFO_NO_RSC_SPAWNED = 10000 | MASK_INFO
INFO_PARTIAL_SPAWN = MASK_INFO  # "automatically assume partial mode" (service-traffic.jsonl #22)
API_CALL_PARSE_ERROR = 0x0FFFFFFFFFFFFFFD | MASK_ERROR

KEY_RSC_DFN = "RscDfn"
KEY_RSC_GRP = "RscGrp"
KEY_SNAPSHOT = "Snapshot"
KEY_UUID = "UUID"
KEY_VLM_NR = "VlmNr"
KEY_NODE = "Node"


def signed(value: int) -> int:
    """The Java `long` view of an unsigned 64-bit ret_code (errors and warnings are negative in JSON)."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def now_iso() -> str:
    """ISO-8601 timestamp with offset, like Java's ISO_OFFSET_DATE_TIME (linstor-rest-api.md §3.1)."""
    return datetime.now(UTC).astimezone().isoformat()


def entry(
    ret_code: int,
    message: str,
    *,
    cause: str | None = None,
    details: str | None = None,
    correction: str | None = None,
    obj_refs: dict[str, str] | None = None,
    error_report: bool = False,
) -> dict[str, Any]:
    """One ApiCallRc object; null strings and empty maps are omitted (NON_EMPTY, §1.2)."""
    out: dict[str, Any] = {"ret_code": signed(ret_code), "message": message}
    if cause is not None:
        out["cause"] = cause
    if details is not None:
        out["details"] = details
    if correction is not None:
        out["correction"] = correction
    if error_report:
        out["error_report_ids"] = [_next_report_id()]
    if obj_refs:
        out["obj_refs"] = obj_refs
    out["created_at"] = now_iso()
    return out


def ctx(code: int, op: int, obj: int) -> int:
    """OR the context's operation and object masks into a code, like addContext (§3.2)."""
    if code & MASK_BITS_OP == 0:
        code |= op
    if code & MASK_BITS_OBJ == 0:
        code |= obj
    return code


def http_status(entries: list[dict[str, Any]], success: int) -> int:
    """HTTP status from the first error entry, as ApiCallRcRestUtils.toResponse does (§1.7)."""
    for item in entries:
        rc = int(item["ret_code"]) & 0xFFFFFFFFFFFFFFFF
        if rc & MASK_ERROR == MASK_ERROR:
            code = rc & MASK_BITS_CODE
            if 300 <= code <= 399:
                return 404
            if 400 <= code <= 499:
                return 403
            return 500
    return success


_report_counter = 0


def _next_report_id() -> str:
    global _report_counter
    _report_counter += 1
    return f"6712BBF1-00000-{_report_counter:06d}"


def java_hash_order(keys: list[str]) -> list[str]:
    """`keys` in the iteration order of a Java HashSet<String> (buckets by String.hashCode, then insertion
    order): the controller lists deleted property keys this way (service-traffic.jsonl #126)."""
    unique = list(dict.fromkeys(keys))
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2
    return _bucket_order(unique, capacity)


def java_refs(refs: dict[str, str]) -> dict[str, str]:
    """obj_refs in the controller's order: a HashMap copied from a TreeMap, so sorted keys regrouped by hash
    bucket of a table sized for them (holds for all 587 obj_refs of the transcripts)."""
    wanted = int(len(refs) / 0.75 + 1.0)
    capacity = 1
    while capacity < wanted:
        capacity *= 2
    return {key: refs[key] for key in _bucket_order(sorted(refs), capacity)}


def _bucket_order(keys: list[str], capacity: int) -> list[str]:
    """`keys` as a Java hash table of `capacity` buckets iterates them (one bucket keeps insertion order)."""

    def bucket(key: str) -> int:
        code = java_hash(key)
        return (code ^ (code >> 16)) & (capacity - 1)

    return sorted(keys, key=bucket)


def java_hash(text: str) -> int:
    """String.hashCode() as an unsigned 32-bit value (over UTF-16 code units)."""
    code = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        code = (31 * code + int(unit, 16)) & 0xFFFFFFFF
    return code


class ApiError(Exception):
    """Aborts a handler with an RC list; the status follows §1.7 unless given explicitly."""

    def __init__(self, entries: list[dict[str, Any]], status: int | None = None) -> None:
        super().__init__(entries[0]["message"] if entries else "error")
        self.entries = entries
        self.status = status if status is not None else http_status(entries, 500)


class Ctx:
    """An operation context (op + object masks, obj_refs, details), like addContext (§3.2)."""

    __slots__ = ("details", "obj", "op", "refs")

    def __init__(self, op: int, obj: int, refs: dict[str, str], details: str | None = None) -> None:
        self.op = op
        self.obj = obj
        self.refs = refs
        self.details = details

    def ok(
        self,
        code: int,
        message: str,
        *,
        details: str | None = None,
        refs: dict[str, str] | None = None,
        order: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """A success/info/warning entry with the context's masks and obj_refs (keys in `order` first:
        each controller call site puts its references in its own order, as the transcripts show)."""
        merged = {**self.refs, **(refs or {})}
        if order:
            merged = {**{k: merged[k] for k in order if k in merged}, **merged}
        return entry(ctx(code, self.op, self.obj), message, details=details, obj_refs=merged)

    def err(
        self,
        code: int,
        message: str,
        *,
        cause: str | None = None,
        correction: str | None = None,
        details: str | None = None,
        report: bool = True,
    ) -> ApiError:
        """An exception entry: masks, `details` = object description, obj_refs, error report."""
        item = entry(
            ctx(code, self.op, self.obj),
            message,
            cause=cause,
            details=details if details is not None else self.details,
            correction=correction,
            obj_refs=self.refs,
            error_report=report,
        )
        return ApiError([item])


def note(
    context: Ctx,
    code: int,
    message: str,
    *,
    details: str | None = None,
    refs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`context.ok` with obj_refs (plus `refs`) in HashMap order, as the node, pool and resource handlers
    answer."""
    return Ctx(context.op, context.obj, java_refs({**context.refs, **(refs or {})})).ok(
        code, message, details=details
    )


def fail(
    context: Ctx,
    code: int,
    message: str,
    *,
    cause: str | None = None,
    details: str | None = None,
    correction: str | None = None,
    report: bool = False,
    describe: bool = True,
) -> ApiError:
    """An exception as ResponseConverter renders it: masks, obj_refs in HashMap order and (with `describe`)
    the object's description appended to the details; an error report unless the controller skips it."""
    joined = "\n".join(part for part in (details, context.details if describe else None) if part)
    plain = Ctx(context.op, context.obj, java_refs(context.refs))
    return plain.err(code, message, cause=cause, details=joined or None, correction=correction, report=report)


def not_found_texts(noun: str, name: str) -> tuple[str, str, str]:
    """CtrlApiDataLoader's message, cause and correction when the `noun` named `name` does not exist."""
    return (
        f"{noun.capitalize()} '{name}' not found.",
        f"The specified {noun} '{name}' could not be found in the database",
        f"Create a {noun} with the name '{name}' first.",
    )


def loader_not_found(code: int, noun: str, name: str) -> ApiError:
    """CtrlApiDataLoader's 404 escaping doInScope: message, cause and correction, no context
    (controller-api.jsonl #179, #220)."""
    message, cause, correction = not_found_texts(noun, name)
    return ApiError([entry(code, message, cause=cause, correction=correction)])


def raw_error(code: int, message: str, *, cause: str | None = None) -> ApiError:
    """A raw entry as doInScope/notFoundResponse write it: no masks, no obj_refs (§1.8)."""
    return ApiError([entry(code, message, cause=cause)])
