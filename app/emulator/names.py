"""Name rules of the controller and the props helpers of its handlers (linstor-rest-api.md §4, §5)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.emulator.prop_rules import Kind, PropError, check_delete, check_set, sanitize_key

_LETTER = re.compile(r"[A-Za-z]")
_FIRST = re.compile(r"[A-Za-z_]")
_INNER = re.compile(r"[A-Za-z0-9_-]")
_RESERVED_RD = frozenset({"ALL", "PROXY"})

__all__ = [
    "Kind",
    "PropError",
    "apply_props",
    "check_props",
    "hostname_problem",
    "name_problem",
    "parse_filters",
    "props_match",
    "sanitize_key",
]


def name_problem(name: str, *, rd: bool = False) -> str | None:
    """The InvalidNameException text for `name`, or None if it is valid (Checks.nameCheck 2..48, §4.1)."""
    size = len(name.encode())
    if size < 2:
        return f"Invalid name: Name length {size} is less than minimum length 2"
    if size > 48:
        return f"Invalid name: Name length {size} is greater than maximum length 48"
    if not _LETTER.search(name):
        return "Invalid name: Name must contain at least one character that matches [a-zA-Z]"
    if not _FIRST.fullmatch(name[0]):
        return f"Invalid name: Cannot begin with character '{name[0]}'"
    for char in name[1:]:
        if not _INNER.fullmatch(char):
            return f"Invalid name: Cannot contain character '{char}'"
    if rd and name.upper() in _RESERVED_RD:
        # §4.1: `all` and `proxy` are DRBD keywords (controller-api.jsonl #66, #67)
        return f"The specified name '{name}' cannot be used because it matches a keyword reserved for DRBD."
    return None


def hostname_problem(name: str) -> str | None:
    """Checks.hostNameCheck: the InvalidNameException text, or None for a valid node name."""
    if name.startswith((".", "-")):
        return f"Hostname cannot begin with '{name[0]}'"
    if name.endswith("-"):
        return "Hostname cannot end with '-'"
    size = len(name.encode())
    if not 2 <= size <= 255:
        bound = "minimum length of 2" if size < 2 else "maximum length of 255"
        return f"Hostname length of {size} violates RFC1123 {bound}"
    for label in name.split("."):
        if len(label) > 63:
            return f"Domain name component length of {len(label)} violates RFC1123 maximum length of 63"
        bad = next((c for c in label if not (c.isascii() and (c.isalnum() or c == "-"))), None)
        if bad is not None:
            return f"Domain name cannot contain character '{bad}'"
    return None


def check_props(
    override: dict[str, str],
    delete: Sequence[str] = (),
    namespaces: Sequence[str] = (),
    *,
    kind: Kind,
) -> tuple[dict[str, str], list[str], list[str]]:
    """Validate a modify request by LINBIT's rules for `kind` before anything applies (one transaction)."""
    # request order, first refusal raises PropError; keys come back sanitized, values canonical (yes -> true)
    new = dict(check_set(kind, key, value) for key, value in override.items())
    gone = [check_delete(kind, key) for key in delete]
    spaces = [sanitize_key(ns) for ns in namespaces]
    return new, gone, spaces


RS_DISCARD_GRANULARITY = "DrbdOptions/Disk/rs-discard-granularity"
AUTO_RS_DISCARD_GRANULARITY = "DrbdOptions/auto-rs-discard-granularity"


def apply_props(
    props: dict[str, str], override: dict[str, str], delete: list[str], namespaces: list[str]
) -> None:
    """Override, then delete keys, then delete namespaces — in that order (§2.4 modify)."""
    props.update(override)
    if RS_DISCARD_GRANULARITY in override:
        # linstor-server's PropsChangedListenerBuilder: a user-set rs-discard-granularity turns the automatic
        # one off on the same object (golinstor-traffic.jsonl #4, #5)
        props[AUTO_RS_DISCARD_GRANULARITY] = "False"
    for key in delete:
        props.pop(key, None)
    for space in namespaces:
        prefix = space + "/"
        for key in [k for k in props if k.startswith(prefix) or k == space]:
            del props[key]


def parse_filters(raw: list[str]) -> list[tuple[str, str | None]]:
    """`props` query values: split at the first `=`; key alone means 'is set' (§5.1)."""
    out: list[tuple[str, str | None]] = []
    for item in raw:
        key, sep, value = item.partition("=")
        out.append((sanitize_key(key), value if sep else None))
    return out


def props_match(props: dict[str, str], filters: list[tuple[str, str | None]]) -> bool:
    """AND of all filters; exact, case-sensitive values (§5.1)."""
    for key, value in filters:
        have = props.get(key)
        if have is None or (value is not None and have != value):
            return False
    return True
