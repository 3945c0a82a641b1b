"""LINBIT's property table compiled into rules: one value check per key, as the controller's Property classes
check values (RegexProperty, RangeProperty, ...)."""

# The table is python-linstor's `linstor.properties.properties`, generated from linstor-common like the
# controller's GeneratedPropertyRules; python-linstor is GPL-3.0 and comes only with the
# `linstor-names[emulator]` extra.

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

MISSING_DEPENDENCY = (
    "The LINSTOR emulator checks properties with LINBIT's rule table from python-linstor (GPL-3.0), "
    "which is not installed: pip install 'linstor-names[emulator]'"
)
# fail when the emulator is imported (its start), not on the first request; the service never imports it
if importlib.util.find_spec("linstor") is None:
    raise ImportError(MISSING_DEPENDENCY)

_JAVA_BLANK = "".join(chr(code) for code in range(33))  # what String.trim() strips


@dataclass(frozen=True, slots=True)
class Rule:
    """One whitelisted key: its value check, its canonical form and getErrMsg()."""

    key: str
    type: str
    valid: Callable[[str], bool]
    error: str
    normalize: Callable[[str], str] = str


@cache
def tables() -> dict[str, dict[str, Rule]]:
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
