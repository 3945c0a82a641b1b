"""Name and property-key rules of the controller (linstor-rest-api.md §4)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_LETTER = re.compile(r"[A-Za-z]")
_FIRST = re.compile(r"[A-Za-z_]")
_INNER = re.compile(r"[A-Za-z0-9_-]")
_RESERVED_RD = frozenset({"ALL", "PROXY"})
PATH_MAX_LENGTH = 256


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
        # §4.1: `all` and `proxy` are DRBD keywords; the exact upstream wording is not in the reference
        return f"Invalid name: Name '{name}' is a reserved DRBD keyword"
    return None


def sanitize_key(key: str) -> str:
    """PropsContainer.sanitizePath: drop empty path segments (`Aux//a/` -> `Aux/a`, §4.2)."""
    return "/".join(part for part in key.split("/") if part)


def _choice(*values: str) -> Callable[[str], bool]:
    return lambda value: value in values


def _int_range(low: int, high: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return low <= int(value) <= high
        except ValueError:
            return False

    return check


def _regex(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda value: compiled.fullmatch(value) is not None


def _quorum(value: str) -> bool:
    return value in ("off", "majority", "all") or _int_range(1, 32)(value)


# §10.3: a small whitelist of non-Aux keys the project sets, each with its value rule (description, check)
WHITELIST: dict[str, tuple[str, Callable[[str], bool]]] = {
    "DrbdOptions/Net/allow-two-primaries": ("Allowed values: yes, no", _choice("yes", "no")),
    "DrbdOptions/ExactSize": ("Allowed values: true, false", _choice("true", "false")),
    "DrbdOptions/Resource/on-no-quorum": (
        "Allowed values: io-error, suspend-io",
        _choice("io-error", "suspend-io"),
    ),
    "DrbdOptions/Resource/quorum": ("Allowed values: off, majority, all, 1-32", _quorum),
    "DrbdOptions/auto-verify-alg": ("Name of a kernel hash algorithm", _regex(r"[A-Za-z0-9()_-]{1,64}")),
    "DrbdOptions/auto-diskful": ("Minutes (-1 disables)", _int_range(-1, 2**31 - 1)),
    "DrbdOptions/auto-add-quorum-tiebreaker": ("Allowed values: true, false", _choice("true", "false")),
    "DrbdOptions/Disk/rs-discard-granularity": ("Allowed range: 0 - 1048576", _int_range(0, 1048576)),
    "StorPoolName": ("Storage pool name", _regex(r"[a-zA-Z0-9_][a-zA-Z0-9_-]{2,47}")),
}


class PropError(Exception):
    """A rejected property key or value: message, cause and details as CtrlPropsHelper builds them."""

    def __init__(self, message: str, cause: str | None = None, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.details = details


def check_key(raw: str, *, value: str | None = None) -> str:
    """Validate one key (and value when setting); returns the sanitized key or raises PropError (§4.2)."""
    sanitized = sanitize_key(raw)
    if len(raw) > PATH_MAX_LENGTH or len(sanitized) > PATH_MAX_LENGTH - 1:
        raise PropError(f"Invalid key: {raw}", "The key is longer than 255 characters.")
    # §4.2: the ignored-prefix test runs on the raw key and is case-sensitive (`/Aux/x`, `aux/x` are rejected)
    if raw.startswith("Aux/"):
        if not sanitized.startswith("Aux/"):
            raise PropError(f"Invalid key: {raw}")
        return sanitized
    rule = WHITELIST.get(raw)
    if rule is None:
        raise PropError(f"Invalid property key: {raw}", f"The key '{raw}' is not whitelisted.")
    if value is not None and not rule[1](value):
        raise PropError(f"Invalid property({raw}) value: {value}", details=rule[0])
    return sanitized


def check_props(
    override: dict[str, str], delete: Sequence[str] = (), namespaces: Sequence[str] = ()
) -> tuple[dict[str, str], list[str], list[str]]:
    """Validate a whole override/delete/delete-namespaces request before applying (one transaction)."""
    new = {check_key(key, value=value): value for key, value in override.items()}
    gone = [check_key(key) for key in delete]
    spaces = [sanitize_key(ns) for ns in namespaces]
    return new, gone, spaces


def apply_props(
    props: dict[str, str], override: dict[str, str], delete: list[str], namespaces: list[str]
) -> None:
    """Override, then delete keys, then delete namespaces — in that order (§2.4 modify)."""
    props.update(override)
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
