"""Request bodies read as the controller's Jackson ObjectMapper reads them, with its exception texts.

The controller answers a body it cannot read with `details` = the exception's getMessage(): the reason, then
"\\n at [Source: REDACTED (...); line: L, column: C]" and, for a field of its DTO it does not know, the
reference chain (controller-api.jsonl #22, #23, #36, #78, #79, #142). Jackson reads token by token, so the
first problem in document order wins, and content after the root value is ignored (FAIL_ON_TRAILING_TOKENS
is off by default). Columns count UTF-16 units from 1, as Jackson's ReaderBasedJsonParser does.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.emulator.rc import java_hash
from app.emulator.schemas import JSON_TYPES, Schema

_SOURCE = "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: {}, column: {}]"
_VALUE_LIST = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z0-9_$]+")
_LITERALS = {"true": True, "false": False, "null": None}
_MAX_DESC_LENGTH = 1000  # PropertyBindingException truncates the known-property list past this length


class JsonProblem(Exception):
    """A body Jackson refuses; `details` is what the controller puts in the RC entry."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def read(text: str, schema: Schema | None) -> Any:
    """The body's value; raises JsonProblem for a syntax error or a field the DTO `schema` does not know."""
    reader = _Reader(text)
    start = reader.skip_ws()
    if start >= len(text):
        # ObjectMapper._initForReading: no token at all; the location is the token's, still at the start
        raise JsonProblem("No content to map due to end-of-input\n at " + _SOURCE.format(1, 1))
    return reader.value(start, schema, [])


def known_properties(schema: Schema) -> list[str]:
    """The DTO's property names in Jackson's BeanPropertyMap order (its hash table, not declaration)."""
    names = list(schema["fields"])
    size = _find_size(len(names))
    slots: list[str | None] = [None] * (size + (size >> 1))
    spill: list[str] = []
    for name in names:
        slot = java_hash(name) & (size - 1)
        if slots[slot] is None:
            slots[slot] = name
        elif slots[size + (slot >> 1)] is None:
            slots[size + (slot >> 1)] = name
        else:
            spill.append(name)
    return [name for name in slots if name is not None] + spill


def _find_size(count: int) -> int:
    if count <= 5:
        return 8
    if count <= 12:
        return 16
    needed, size = count + (count >> 2), 32
    while size < needed:
        size += size
    return size


def _char_desc(char: str) -> str:
    """ParserMinimalBase._getCharDesc."""
    code = ord(char)
    if code < 0x20:
        return f"(CTRL-CHAR, code {code})"
    if code > 255:
        return f"'{char}' (code {code} / 0x{code:x})"
    return f"'{char}' (code {code})"


class _Reader:
    """One pass over the text; `pos` indexes the next unread character (Jackson's `_inputPtr`)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.end = 0  # the index after the value read last

    def location(self, pos: int) -> str:
        """Jackson's location text of the character at `pos` (line and column from 1)."""
        before = self.text[:pos]
        line = before.count("\n") + 1
        column = len(before[before.rfind("\n") + 1 :].encode("utf-16-le")) // 2 + 1
        return _SOURCE.format(line, column)

    def fail(self, message: str, pos: int) -> JsonProblem:
        return JsonProblem(f"{message}\n at {self.location(pos)}")

    def unexpected(self, pos: int, comment: str) -> JsonProblem:
        # _reportUnexpectedChar points at the character itself (_currentLocationMinusOne)
        char = self.text[pos]
        if char == "/":  # _skipComment refuses it wherever white space may come
            comment = (
                "maybe a (non-standard) comment? (not recognized as one since Feature 'ALLOW_COMMENTS' "
                "not enabled for parser)"
            )
        return self.fail(f"Unexpected character ({_char_desc(char)}): {comment}", pos)

    def eof(self, reason: str) -> JsonProblem:
        return self.fail(f"Unexpected end-of-input{reason}", len(self.text))

    def skip_ws(self, pos: int = 0) -> int:
        """The index of the next token's first character (len(text) at the end)."""
        text = self.text
        while pos < len(text) and text[pos] <= " ":
            if text[pos] not in " \t\r\n":
                message = (
                    f"Illegal character ({_char_desc(text[pos])}): only regular white space "
                    "(\\r, \\n, \\t) is allowed between tokens"
                )
                raise self.fail(message, pos + 1)
            pos += 1
        return pos

    def token_end(self, pos: int) -> int:
        """Where Jackson's pointer stands once nextToken() returned the value starting at `pos`."""
        # past a bracket or a string's opening quote, past a whole number or literal (checked on the way)
        char = self.text[pos]
        if char in '{["':
            return pos + 1
        if char == "-" or "0" <= char <= "9":
            return self.number(pos)[1]
        return self.literal(pos)[1]

    def value(self, pos: int, schema: Schema | None, chain: list[str]) -> Any:
        """The value starting at `pos` (a token, not white space); sets `self.end` past it."""
        char = self.text[pos]
        if char == "{":
            return self.object(pos, schema, chain)
        if char == "[":
            return self.array(pos, schema, chain)
        if char == '"':
            result, self.end = self.string(pos)
            return result
        if char == "-" or "0" <= char <= "9":
            number, self.end = self.number(pos)
            return number
        literal, self.end = self.literal(pos)
        return literal

    def object(self, start: int, schema: Schema | None, chain: list[str]) -> dict[str, Any]:
        fields: dict[str, Any] | None = schema.get("fields") if schema else None
        out: dict[str, Any] = {}
        close = f": expected close marker for Object (start marker at {self.location(start)})"
        pos = self.skip_ws(start + 1)
        if pos < len(self.text) and self.text[pos] == "}":
            self.end = pos + 1
            return out
        while True:
            if pos >= len(self.text):
                raise self.eof(close if not out else " within/between Object entries")
            if self.text[pos] != '"':
                raise self.unexpected(pos, "was expecting double-quote to start field name")
            name, pos = self.string(pos, " in field name")
            pos = self.skip_ws(pos)
            if pos >= len(self.text):
                raise self.eof(" within/between Object entries")
            if self.text[pos] != ":":
                raise self.unexpected(pos, "was expecting a colon to separate field name and value")
            pos = self.skip_ws(pos + 1)
            if pos >= len(self.text):
                raise self.eof(" within/between Object entries")
            here = [*chain, f'{JSON_TYPES}{schema["class"]}["{name}"]'] if schema else chain
            if fields is not None and name not in fields:
                assert schema is not None
                raise self.unknown_field(name, schema, here, self.token_end(pos))
            nested = fields.get(name) if fields else None
            out[name] = self.value(pos, nested, here)
            pos = self.skip_ws(self.end)
            if pos >= len(self.text):
                raise self.eof(close)
            if self.text[pos] == "}":
                self.end = pos + 1
                return out
            if self.text[pos] != ",":
                raise self.unexpected(pos, "was expecting comma to separate Object entries")
            pos = self.skip_ws(pos + 1)

    def array(self, start: int, schema: Schema | None, chain: list[str]) -> list[Any]:
        item_schema: Schema | None = schema.get("list_of") if schema else None
        out: list[Any] = []
        close = f": expected close marker for Array (start marker at {self.location(start)})"
        pos = self.skip_ws(start + 1)
        if pos < len(self.text) and self.text[pos] == "]":
            self.end = pos + 1
            return out
        while True:
            if pos >= len(self.text):
                raise self.eof(close if not out else " within/between Array entries")
            here = [*chain, f"java.util.ArrayList[{len(out)}]"] if item_schema else chain
            out.append(self.value(pos, item_schema, here))
            pos = self.skip_ws(self.end)
            if pos >= len(self.text):
                raise self.eof(close)
            if self.text[pos] == "]":
                self.end = pos + 1
                return out
            if self.text[pos] != ",":
                raise self.unexpected(pos, "was expecting comma to separate Array entries")
            pos = self.skip_ws(pos + 1)

    def string(
        self, start: int, eof_reason: str = ": was expecting closing quote for a string value"
    ) -> tuple[str, int]:
        """(the decoded string, the index after its closing quote)."""
        text, pos = self.text, start + 1
        while True:
            if pos >= len(text):
                raise self.eof(eof_reason)
            char = text[pos]
            if char == '"':
                decoded: str = json.loads(text[start : pos + 1])
                return decoded, pos + 1
            if char == "\\":
                if pos + 1 >= len(text):
                    raise self.eof(eof_reason)
                escape = text[pos + 1]
                if escape not in '"\\/bfnrtu':
                    message = f"Unrecognized character escape {_char_desc(escape)}"
                    raise self.fail(message, pos + 2)
                if escape == "u" and not re.fullmatch(r"[0-9A-Fa-f]{4}", text[pos + 2 : pos + 6]):
                    raise self.fail("Unexpected character in escape sequence: expected a hex-digit", pos + 2)
                pos += 6 if escape == "u" else 2
                continue
            if char < " ":
                message = (
                    f"Illegal unquoted character ({_char_desc(char)}): has to be escaped using backslash "
                    "to be included in string value"
                )
                raise self.fail(message, pos + 1)
            pos += 1

    def number(self, start: int) -> tuple[int | float, int]:
        text = self.text
        match = _NUMBER.match(text, start)
        if match is None:
            # only a minus sign, or one followed by something other than a digit
            after = start + 1
            if after >= len(text):
                raise self.eof(" in a Number value")
            comment = "expected digit (0-9) to follow minus sign, for valid numeric value"
            raise self.fail(
                f"Unexpected character ({_char_desc(text[after])}) in numeric value: {comment}", after
            )
        if "0" <= text[match.end() : match.end() + 1] <= "9":
            raise self.fail("Invalid numeric value: Leading zeroes not allowed", match.end())
        literal = match.group()
        number = int(literal) if re.fullmatch(r"-?[0-9]+", literal) else float(literal)
        return number, match.end()

    def literal(self, start: int) -> tuple[Any, int]:
        word = _WORD.match(self.text, start)
        if word is None:
            raise self.unexpected(start, f"expected a valid value {_VALUE_LIST}")
        if word.group() not in _LITERALS:
            message = f"Unrecognized token '{word.group()}': was expecting {_VALUE_LIST}"
            raise self.fail(message, word.end())
        return _LITERALS[word.group()], word.end()

    def unknown_field(self, name: str, schema: Schema, chain: list[str], pos: int) -> JsonProblem:
        """UnrecognizedPropertyException: located where the parser stands after the value's first token."""
        names = known_properties(schema)
        if len(names) == 1:
            known = f'(one known property: "{names[0]}"])'
        else:
            known = f" ({len(names)} known properties: "
            for index, known_name in enumerate(names):
                known += f'"{known_name}"'
                if len(known) > _MAX_DESC_LENGTH:
                    known += " [truncated]"
                    break
                if index < len(names) - 1:
                    known += ", "
            known = known[1:] + "])"
        owner = f"{JSON_TYPES}{schema['class']}"
        message = f'Unrecognized field "{name}" (class {owner}), not marked as ignorable {known}'
        where = f"{self.location(pos)} (through reference chain: {'->'.join(chain)})"
        return JsonProblem(f"{message}\n at {where}")
