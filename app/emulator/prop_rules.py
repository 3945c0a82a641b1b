"""LINBIT's property rules, checked as linstor-server 1.33.3 checks them (WhitelistProps, CtrlPropsHelper)."""

# The table is python-linstor's `linstor.properties.properties`, generated from linstor-common like the
# controller's GeneratedPropertyRules; python-linstor is GPL-3.0 and comes only with the
# `linstor-names[emulator]` extra. Refusals are worded as the controller words them: `#n` cites a line of
# /work/shared/linstor/transcripts/linstor-1.33.3-controller-api.jsonl unless another file is named.

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any

from app.emulator import rc

MISSING_DEPENDENCY = (
    "The LINSTOR emulator checks properties with LINBIT's rule table from python-linstor (GPL-3.0), "
    "which is not installed: pip install 'linstor-names[emulator]'"
)
# fail when the emulator is imported (its start), not on the first request; the service never imports it
if importlib.util.find_spec("linstor") is None:
    raise ImportError(MISSING_DEPENDENCY)

EXACT_SIZE = "DrbdOptions/ExactSize"
AUX = "Aux/"
EBS_TAGS = "EBS/Tags/"
PATH_MAX_LENGTH = 256  # PropsContainer.PATH_MAX_LENGTH
VALUE_MAX_LENGTH = 4096  # the PROPS_CONTAINERS value column: #136 stores 4096 characters, #137 fails at 5000
FAIL_SQL = 100 | rc.MASK_ERROR
MASK_NODE = 0x3C0000
MASK_STOR_POOL = 0x140000
MASK_VLM = 0x2C0000
_DB_FAILURE = "ApiDatabaseException. com.linbit.linstor.dbdrivers.DatabaseException: DatabaseException"
_JAVA_BLANK = "".join(chr(code) for code in range(33))  # what String.trim() strips


class Kind(StrEnum):
    """The object whose props are checked (LinStorObject)."""

    CONTROLLER = "controller"
    NODE = "node"
    STORAGE_POOL = "storagepool"
    RESOURCE_GROUP = "resource-group"
    RESOURCE_DEFINITION = "resource-definition"
    VOLUME_DEFINITION = "volume-definition"
    RESOURCE = "resource"
    VOLUME = "volume"
    SNAPSHOT = "snapshot"


# CtrlRscGrpApiCallHandler checks RG props against LinStorObject.RSC_DFN, the RD table itself (no union);
# snapshot definitions (SNAP_DFN) have no generated rules, so only the ignored prefixes pass there
_TABLE: dict[Kind, str | None] = {Kind.RESOURCE_GROUP: "resource-definition", Kind.SNAPSHOT: None}
# the call sites that add `EBS/Tags/` to the ignored prefixes (resources, volumes and pools do not)
_EBS_TAG_KINDS = frozenset(
    {
        Kind.CONTROLLER,
        Kind.NODE,
        Kind.RESOURCE_GROUP,
        Kind.RESOURCE_DEFINITION,
        Kind.VOLUME_DEFINITION,
        Kind.SNAPSHOT,
    }
)
_KIND_OF_MASK = {
    rc.MASK_CTRL_CONF: Kind.CONTROLLER,
    MASK_NODE: Kind.NODE,
    MASK_STOR_POOL: Kind.STORAGE_POOL,
    rc.MASK_RSC_GRP: Kind.RESOURCE_GROUP,
    rc.MASK_RSC_DFN: Kind.RESOURCE_DEFINITION,
    rc.MASK_VLM_DFN: Kind.VOLUME_DEFINITION,
    rc.MASK_RSC: Kind.RESOURCE,
    MASK_VLM: Kind.VOLUME,
    rc.MASK_SNAPSHOT: Kind.SNAPSHOT,
}
_NOUNS = {rc.MASK_CRT: "Creation", rc.MASK_MOD: "Modification", rc.MASK_DEL: "Deletion"}


@dataclass(frozen=True, slots=True)
class Rule:
    """One whitelisted key: its value check, its canonical form and getErrMsg()."""

    key: str
    type: str
    valid: Callable[[str], bool]
    error: str
    normalize: Callable[[str], str] = str


class PropError(Exception):
    """A refused key or value before the handler's context is added (CtrlPropsHelper's ApiRcException)."""

    # `details` is the rule's own line (the context's description is appended when rendered); `op` pins the
    # operation mask where the controller sets it itself; `unhandled` marks an exception the controller did
    # not catch, reported as "<Operation> of <object> failed due to an unhandled exception of type <message>"
    def __init__(
        self,
        message: str,
        cause: str | None = None,
        details: str | None = None,
        *,
        code: int = rc.FAIL_INVLD_PROP,
        op: int = 0,
        report: bool = True,
        unhandled: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.details = details
        self.code = code
        self.op = op
        self.report = report
        self.unhandled = unhandled


def kind_of(context: rc.Ctx) -> Kind:
    """The kind whose rules apply in `context` (a spawn's RG context checks RD props with the RD table)."""
    return _KIND_OF_MASK[context.obj]


def rules(kind: Kind) -> Mapping[str, Rule]:
    """The whitelist of `kind`: key -> rule."""
    table = _TABLE.get(kind, kind.value)
    return _tables().get(table, {}) if table is not None else {}


def is_ignored(kind: Kind, key: str) -> bool:
    """Keys under `Aux/` (and `EBS/Tags/` where the call site says so) skip the whitelist, any value."""
    return key.startswith(AUX) or (kind in _EBS_TAG_KINDS and key.startswith(EBS_TAGS))


def sanitize_key(key: str) -> str:
    """PropsContainer.sanitizePath: drop empty path segments (`Aux//a/` -> `Aux/a`, bare `Aux/` -> `Aux`)."""
    return "/".join(part for part in key.split("/") if part)


def check_set(kind: Kind, key: str, value: str) -> tuple[str, str]:
    """One override: whitelist and value rule, then key and value length; the stored key and value."""
    rule = rules(kind).get(key)
    if not is_ignored(kind, key):
        if rule is None:
            raise _not_whitelisted(kind, key)
        if not rule.valid(value):
            raise _invalid_value(kind, key, value, rule)
    stored = sanitize_key(key)
    if _too_long(key, stored):
        raise _invalid_key(kind, key)
    if _java_length(value) > VALUE_MAX_LENGTH:
        raise _db_failure(kind, key, value)
    return stored, rule.normalize(value) if rule is not None else value


def check_delete(kind: Kind, key: str) -> str:
    """One delete_props key: whitelisted or ignored (any value), then a key PropsContainer accepts."""
    if not is_ignored(kind, key) and key not in rules(kind):
        if kind is Kind.CONTROLLER:
            raise PropError(f"The key '{key}' is not whitelisted", op=rc.MASK_DEL)
        raise PropError("Invalid property key", f"The key '{key}' is not whitelisted.")
    stored = sanitize_key(key)
    if _too_long(key, stored):
        if kind is Kind.CONTROLLER:
            raise PropError(f"Invalid key: {key}")
        failure = f"InvalidKeyException. Used key is invalid: {key}"
        raise PropError(failure, code=rc.FAIL_UNKNOWN_ERROR, unhandled=True)
    return stored


def exact_size_refusal(override: Mapping[str, str], resources: int, *, clone: bool = False) -> str | None:
    """ExactSize=true is refused while the RD has resources (service-traffic.jsonl #156); a clone always."""
    if not _java_true(override.get(EXACT_SIZE)) or (resources == 0 and not clone):
        return None
    return (
        f"The property '{EXACT_SIZE}' cannot be set to True while there are currently deployed "
        f"resources({resources})."
    )


def resize_refusal(rd_props: Mapping[str, str]) -> str | None:
    """Growing a VD is refused while its RD has ExactSize=true (golinstor-traffic.jsonl #21)."""
    if not _java_true(rd_props.get(EXACT_SIZE)):
        return None
    # the empty key name is the controller's own wording
    return "Volume definition must not be resized while the resource-definition has the property '' set!"


def api_error(context: rc.Ctx, exc: PropError) -> rc.ApiError:
    """The RC entry as ResponseConverter renders `exc` in `context` (masks, details, obj_refs, report)."""
    description = context.details
    if description is None and context.obj == rc.MASK_CTRL_CONF:
        description = "Controller"  # CtrlConfApiCallHandler.makeCtrlConfContext
    message = exc.message
    if exc.unhandled:
        noun = _NOUNS.get(context.op, "Operation")
        message = f"{noun} of {_inline(context)} failed due to an unhandled exception of type {message}"
    details = "\n".join(part for part in (exc.details, description) if part is not None)
    return context.err(
        exc.code | exc.op,
        message,
        cause=exc.cause,
        details=details or None,
        report=exc.report,
    )


def _not_whitelisted(kind: Kind, key: str) -> PropError:
    if kind is Kind.CONTROLLER:
        # CtrlConfApiCallHandler.setProp: no cause, no error report (#7)
        return PropError(f"The key '{key}' is not whitelisted", op=rc.MASK_CRT, report=False)
    return PropError(f"Invalid property key: {key}", f"The key '{key}' is not whitelisted.")


def _invalid_value(kind: Kind, key: str, value: str, rule: Rule) -> PropError:
    if kind is Kind.CONTROLLER:
        return PropError(
            f"The value '{value}' is not valid.", details=rule.error, op=rc.MASK_CRT, report=False
        )
    return PropError(
        f"Invalid property({key}) value: {value}",
        f"The value '{value}' is not valid for the key '{key}'",
        rule.error,
    )


def _invalid_key(kind: Kind, key: str) -> PropError:
    if kind is Kind.CONTROLLER:
        return PropError(f"Invalid key: {key}", op=rc.MASK_CRT, report=False)
    # the exception's own message is joined to the cause (ResponseConverter.exceptionToResponse, #131)
    return PropError(f"Invalid key: {key}", f"The key '{key}' is invalid.\nUsed key is invalid: {key}")


def _db_failure(kind: Kind, key: str, value: str) -> PropError:
    if kind is Kind.CONTROLLER:
        action = (
            f"Persisting controller config prop with key '{key}' in namespace 'null' with value '{value}'"
        )
        return PropError(f"A database error occurred while {action}.", code=FAIL_SQL, op=rc.MASK_CRT)
    return PropError(_DB_FAILURE, code=rc.FAIL_UNKNOWN_ERROR, unhandled=True)


def _inline(context: rc.Ctx) -> str:
    """getObjectDescriptionInline() of the controller's contexts."""
    refs = context.refs
    rd, nr = refs.get(rc.KEY_RSC_DFN, ""), refs.get(rc.KEY_VLM_NR, "")
    inline = {
        rc.MASK_CTRL_CONF: "controller",
        rc.MASK_RSC_GRP: f"resource group '{refs.get(rc.KEY_RSC_GRP, '')}'",
        rc.MASK_RSC_DFN: f"resource definition '{rd}'",
        rc.MASK_VLM_DFN: f"volume definition with number '{nr}' of resource definition '{rd}'",
        rc.MASK_RSC: f"resource '{rd}' on node '{refs.get(rc.KEY_NODE, '')}'",
        rc.MASK_SNAPSHOT: f"snapshot '{refs.get(rc.KEY_SNAPSHOT, '')}' of resource '{rd}'",
        MASK_NODE: f"node '{refs.get(rc.KEY_NODE, '')}'",
    }
    return inline.get(context.obj, context.details or "")


def _too_long(key: str, stored: str) -> bool:
    # sanitizePath refuses a raw key over 256 chars; splitPath a stored path of 256 or more
    return _java_length(key) > PATH_MAX_LENGTH or _java_length(stored) + 1 > PATH_MAX_LENGTH


def _java_length(text: str) -> int:
    """String.length(): UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _java_true(value: str | None) -> bool:
    """Boolean.parseBoolean: only `true`, any case (`yes` is not)."""
    return value is not None and value.lower() == "true"


# -- the rule table ------------------------------------------------------------------------------------------


@cache
def _tables() -> dict[str, dict[str, Rule]]:
    """python-linstor's table, compiled once into rules per object table name."""
    try:
        from linstor.properties import properties
    except ImportError as exc:
        raise ImportError(MISSING_DEPENDENCY) from exc
    table: dict[str, list[dict[str, Any]]] = properties
    return {name: {entry["key"]: _rule(entry) for entry in entries} for name, entries in table.items()}


def _rule(entry: Mapping[str, Any]) -> Rule:
    """PropertyBuilder.build(): the Property subclass for the entry's type."""
    key: str = entry["key"]
    kind = str(entry["type"]).lower().replace("-", "_")
    unit: str | None = entry.get("unit")
    if kind in ("regex", "symbol", "handler"):
        pattern = _java_literal(entry["value"]) if kind == "regex" else _enum_regex(entry["values"])
        compiled = re.compile(pattern, re.ASCII)
        return Rule(key, "regex", _matches(compiled), _match_error(pattern, unit))
    if kind in ("range", "numeric"):
        low, high = int(entry["min"]), int(entry["max"])
        return Rule(key, "range", _long_between(low, high), _match_error(f"({low} - {high})", unit))
    if kind == "range_float":
        low_f, high_f = float(entry["min_float"]), float(entry["max_float"])
        span = f"({_java_double(low_f)} - {_java_double(high_f)})"
        return Rule(key, "range-float", _double_between(low_f, high_f), _match_error(span, unit))
    if kind == "numeric_or_symbol":
        low, high = int(entry["min"]), int(entry["max"])
        symbols = _enum_regex(entry["values"])
        check = _long_or_symbol(low, high, re.compile(symbols, re.ASCII))
        return Rule(key, "numeric-or-symbol", check, _match_error(f"({low} - {high}) or {symbols}", unit))
    if kind == "boolean":
        yes_no = re.compile(r"(?i)(?:yes|no)", re.ASCII)
        return Rule(key, kind, _matches(yes_no), "This value must be either 'yes' or 'no'.", str.lower)
    if kind == "boolean_true_false":
        true_false = re.compile(r"(?i)(?:true|false|yes|no)", re.ASCII)
        error = "This value must be either 'yes', 'no', 'true' or 'false'."
        return Rule(key, kind, _matches(true_false), error, _true_false)
    if kind == "long":
        error = "This value has to be of type Long."
        if unit is not None:
            error = f"This value contains {unit} and has to be of type Long."
        return Rule(key, kind, lambda value: _java_long(value) is not None, error)
    if kind == "string":
        return Rule(key, kind, lambda value: True, "This value has no restrictions.")
    raise ValueError(f"unknown property type {entry['type']!r} for {key}")


def _match_error(value: str, unit: str | None) -> str:
    # the doubled space is the controller's (RegexProperty/RangeProperty.getErrorMsg)
    if unit is None:
        return f"This value has to match {value}."
    return f"This value  has to match {value} {unit}."


def _enum_regex(values: list[str]) -> str:
    """buildValuesEnumRegex over the values genproperties.py writes sorted into the Java source."""
    return "(?:" + "|".join(_java_literal(v) for v in sorted(values)) + ")"


def _java_literal(text: str) -> str:
    # genproperties.py pastes the JSON string into a Java literal, so `\\d` in the table is `\d` at run time
    escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), text)


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.fullmatch(value) is not None


def _true_false(value: str) -> str:
    return "true" if value.lower() in ("true", "yes") else "false"


_LONG = re.compile(r"[+-]?\d+")  # Long.parseLong: a sign, then decimal digits (Unicode digits too)
_DOUBLE = re.compile(r"[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFdD]?", re.ASCII)


def _java_long(text: str) -> int | None:
    if _LONG.fullmatch(text) is None:
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _long_between(low: int, high: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        number = _java_long(value)
        return number is not None and low <= number <= high

    return check


def _long_or_symbol(low: int, high: int, symbols: re.Pattern[str]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        number = _java_long(value)
        # only a NumberFormatException falls back to the symbols; an out-of-range number is refused
        if number is not None:
            return low <= number <= high
        return symbols.fullmatch(value) is not None

    return check


def _double_between(low: float, high: float) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        text = value.strip(_JAVA_BLANK)
        if _DOUBLE.fullmatch(text) is None:
            return False
        number = float(text.rstrip("fFdD").replace("Infinity", "inf"))
        return low <= number <= high  # NaN compares false, as in Java

    return check


def _java_double(value: float) -> str:
    """Double.toString: plain from 10^-3 to 10^7, else `d.dddE±n`."""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)  # Python's shortest repr has no exponent in this range either
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    power = len(digits) - 1 + int(exponent)
    fraction = mantissa[1:] or "0"
    return f"{'-' if sign else ''}{mantissa[0]}.{fraction}E{power}"
