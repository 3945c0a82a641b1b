"""LINBIT's property rules, checked as linstor-server 1.33.3 checks them (WhitelistProps, CtrlPropsHelper)."""

# The rules come from LINBIT's table (prop_table). Refusals are worded as the controller words them: `#n`
# cites a line of /work/shared/linstor/transcripts/linstor-1.33.3-controller-api.jsonl unless another file is
# named.

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from app.emulator import rc
from app.emulator.prop_table import Rule, tables

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
    return tables().get(table, {}) if table is not None else {}


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
