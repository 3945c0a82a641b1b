"""Validate every emulator answer against LINBIT's OpenAPI spec, with the deviations of deviations.py."""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from referencing import Registry, Resource, Specification

from tests.conformance.deviations import DEVIATIONS, NO_JSON, Deviation, Exchange, Observed

SPEC_ENV = "LINSTOR_NAMES_SPEC"
SPEC_URI = "urn:linstor:rest_v1_openapi.yaml"
# A verbatim copy of linstor-server's docs/rest_v1_openapi.yaml (REST API 1.28.0, sha256 38a23338…15a6f, the
# file ../shared/linstor/ holds): the tests must pass on a machine that has only this repository.
DEFAULT_SPEC = Path(__file__).resolve().parent / "linstor" / "rest_v1_openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Path parameters the controller declares as `{name : .*}` (they may contain '/').
GREEDY_PARAMS = frozenset({"key", "extFileName"})
_PARAM = re.compile(r"\{([^}/]+)\}")
_MAX_ERRORS = 3
_EXCERPT = 300

try:  # the C loader parses the 287 KB spec ~10x faster
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Template:
    """One path template of the spec with its regex and its JAX-RS-like specificity."""

    template: str
    regex: re.Pattern[str]
    # Lower sorts first: literal segments beat parameters, left to right; greedy templates come last.
    rank: tuple[int, tuple[int, ...]]


def _compile_template(template: str) -> Template:
    """A regex for `template` (parameters match one segment, greedy ones the rest of the path)."""
    pattern, segments, greedy = "", [], 0
    for segment in template.strip("/").split("/"):
        param = _PARAM.fullmatch(segment)
        segments.append(1 if param else 0)
        if param and param.group(1) in GREEDY_PARAMS:
            pattern, greedy = pattern + "/.+", 1
        elif param:
            pattern += "/[^/]+"
        else:
            pattern += "/" + re.escape(segment)
    return Template(template, re.compile(pattern), (greedy, tuple(segments)))


def _inline_refs(document: dict[str, Any]) -> dict[str, Any]:
    """The spec with its `$ref`s replaced by their (shared) targets, except recursive ones (ResourceLayer)."""
    done: dict[str, Any] = {}

    def target(ref: str, trail: tuple[str, ...]) -> Any:
        if ref in trail:  # left for the registry to resolve at validation time
            return {"$ref": ref}
        if ref not in done:
            done[ref] = walk(_pointer(document, ref), (*trail, ref))
        return done[ref]

    def walk(node: Any, trail: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                return target(node["$ref"], trail)
            return {key: walk(value, trail) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, trail) for value in node]
        return node

    resolved: dict[str, Any] = walk(document, ())
    return resolved


def _strict(schema: Any, seen: dict[int, Any], document: dict[str, Any]) -> Any:
    """Forbid undocumented fields: the controller's DTOs (JsonGenTypes.java) are generated from this spec."""
    if id(schema) in seen:
        return seen[id(schema)]
    if isinstance(schema, list):
        out_list: list[Any] = []
        seen[id(schema)] = out_list
        out_list.extend(_strict(item, seen, document) for item in schema)
        return out_list
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    seen[id(schema)] = out
    for key, value in schema.items():
        # Data, not schemas: keep examples/defaults/enums verbatim.
        out[key] = value if key in ("example", "default", "enum") else _strict(value, seen, document)
    if isinstance(schema.get("allOf"), list):
        # Each branch may only be closed by the union of all branches' properties (draft-4 semantics).
        names: set[str] = set(schema.get("properties", {}))
        branches = []
        for branch in schema["allOf"]:
            raw = _pointer(document, branch["$ref"]) if "$ref" in branch else branch
            names.update(raw.get("properties", {}))
            loose = dict(_strict(raw, seen, document))
            if "additionalProperties" not in raw:
                loose.pop("additionalProperties", None)
            branches.append(loose)
        out["allOf"] = branches
        out["properties"] = {name: {} for name in sorted(names)} | out.get("properties", {})
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def _pointer(document: Any, pointer: str) -> Any:
    """The node at a local JSON pointer such as `#/components/schemas/ApiCallRc`."""
    node = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class SpecValidator:
    """Checks emulator answers (ExchangeRecords) against rest_v1_openapi.yaml and the deviation table."""

    def __init__(
        self,
        document: dict[str, Any],
        *,
        deviations: tuple[Deviation, ...] = DEVIATIONS,
        strict_properties: bool = True,
    ) -> None:
        self.raw = document
        # Inlined refs make validation ~several times faster than resolving them through the registry.
        strict_document = _strict(document, {}, document) if strict_properties else document
        self.document = _inline_refs(strict_document)
        resource: Resource[Any] = Specification.OPAQUE.create_resource(strict_document)
        self._registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.deviations = deviations
        self.strict_properties = strict_properties
        self.templates = sorted(
            (_compile_template(path) for path in self.raw["paths"]), key=lambda t: (t.rank, t.template)
        )
        self.template_names = frozenset(t.template for t in self.templates)
        self._validators: dict[str, OAS30ReadValidator] = {}
        self._lock = threading.Lock()
        self._failures: list[str] = []
        self.hits: Counter[str] = Counter()
        self.checked = 0
        self._match = lru_cache(maxsize=8192)(self._match_uncached)

    @classmethod
    def load(cls, path: Path | str | None = None) -> SpecValidator:
        """Parse the spec file (argument, env LINSTOR_NAMES_SPEC, or the vendored copy)."""
        spec_path = Path(path or os.environ.get(SPEC_ENV) or DEFAULT_SPEC)
        with spec_path.open("rb") as fh:
            document = yaml.load(fh, Loader=_Loader)
        return cls(document)

    # -- the spec ---------------------------------------------------------------------------------

    def _match_uncached(self, path: str) -> str | None:
        for template in self.templates:
            if template.regex.fullmatch(path):
                return template.template
        return None

    def match(self, path: str) -> str | None:
        """The most specific spec path template matching `path`, or None."""
        return self._match(path)

    def responses(self, route: str | None, method: str) -> Mapping[str, Any] | None:
        """The raw (unresolved) `responses` of an operation, or None if the spec lacks the operation."""
        if route is None:
            return None
        operation = self.raw["paths"].get(route, {}).get(method.lower())
        return None if operation is None else operation.get("responses", {})

    def resolve(self, pointer: str) -> Any:
        """The ref-free node at a JSON pointer such as `#/components/schemas/ApiCallRc`."""
        return _pointer(self.document, pointer)

    def validator(self, pointer: str) -> OAS30ReadValidator:
        """A compiled OAS 3.0 response validator for the schema at `pointer` (cached)."""
        found = self._validators.get(pointer)
        if found is None:
            found = OAS30ReadValidator(
                self.resolve(pointer),
                format_checker=oas30_format_checker,
                registry=self._registry,
                _resolver=self._registry.resolver(base_uri=SPEC_URI),
            )
            self._validators[pointer] = found
        return found

    # -- checking ---------------------------------------------------------------------------------

    def observe(self, record: Exchange) -> None:
        """Validate one answer now and keep failures for take_failures(); never raises (server thread)."""
        try:
            failures = self.check(record)
        except Exception as exc:  # a validator bug must surface as a failure, not kill the server thread
            failures = [f"{record.method} {record.path} -> {record.status}: validator crashed: {exc!r}"]
        with self._lock:
            self.checked += 1
            self._failures.extend(failures)

    def take_failures(self) -> list[str]:
        """The failures collected since the last call (and forget them)."""
        with self._lock:
            failures, self._failures = self._failures, []
        return failures

    def check(self, record: Exchange) -> list[str]:
        """All the ways `record` breaks the spec (with the deviation table applied); [] if it conforms."""
        where = f"{record.method} {record.path} -> {record.status}"
        problems: list[str] = []
        route = self.match(record.path)
        if record.route is not None:
            if record.route not in self.template_names:
                return [f"{where}: route {record.route!r} is not a path of the spec"]
            if route != record.route:
                problems.append(f"{where}: routed as {record.route!r} but the spec's best match is {route!r}")
                route = record.route
        responses = self.responses(route, record.method)
        body = self._parse(record)
        observed = Observed(record=record, route=route, responses=responses, body=body)
        matched = [d for d in self.deviations if d.matches(observed)]
        with self._lock:
            self.hits.update(d.name for d in matched)
        for deviation in matched:
            if deviation.normalize is not None and body is not NO_JSON:
                body = deviation.normalize(body)

        pointer, source = self._expected(observed, matched)
        if pointer is None:
            return [*problems, f"{where}: {source}"]
        if pointer == "":  # documented without content
            if record.response_body.strip():
                problems.append(f"{where}: {source} documents no body, got {self._excerpt(record)}")
            return problems
        if not record.content_type.startswith("application/json"):
            problems.append(f"{where}: Content-Type {record.content_type!r}, not application/json")
        if body is NO_JSON:
            return [*problems, f"{where}: body is not JSON: {self._excerpt(record)}"]
        validator = self.validator(pointer)
        if not validator.is_valid(body):
            for error in itertools.islice(validator.iter_errors(body), _MAX_ERRORS):
                # oneOf/anyOf only say "not valid under any"; the innermost error names the field.
                while error.context:
                    error = max(error.context, key=lambda e: len(e.absolute_path))
                at = "/".join(str(p) for p in error.absolute_path) or "<body>"
                problems.append(f"{where}: [{source}] {at}: {error.message[:_EXCERPT]}")
        return problems

    def _expected(self, observed: Observed, matched: list[Deviation]) -> tuple[str | None, str]:
        """(schema pointer, why): the deviation's schema, else the spec's; '' = no body; None = failure."""
        status = observed.record.status
        for deviation in matched:
            pointer = deviation.schemas.get(status)
            if pointer is not None:
                return pointer, f"deviation {deviation.name}"
        if observed.route is None:
            return None, "path is not in the spec (and no deviation names it)"
        if observed.responses is None:
            return None, f"the spec has no {observed.record.method} on {observed.route} (and no deviation)"
        key = str(status) if str(status) in observed.responses else "default"
        if key not in observed.responses:
            documented = ", ".join(sorted(observed.responses))
            return None, f"status {status} not in the spec (documents {documented}) and no deviation names it"
        base = (
            f"#/paths/{observed.route.replace('~', '~0').replace('/', '~1')}/{observed.record.method.lower()}"
        )
        pointer = f"{base}/responses/{key}"
        content = self.resolve(pointer).get("content")
        if not content:
            return "", f"spec {key}"
        if "application/json" not in content:
            return None, f"spec {key} documents {sorted(content)}, not JSON"
        return f"{pointer}/content/application~1json/schema", f"spec {key}"

    @staticmethod
    def _parse(record: Exchange) -> Any:
        try:
            return orjson.loads(record.response_body) if record.response_body else NO_JSON
        except orjson.JSONDecodeError:
            return NO_JSON

    @staticmethod
    def _excerpt(record: Exchange) -> str:
        text = record.response_body[:_EXCERPT].decode("utf-8", "replace")
        return repr(text) + ("..." if len(record.response_body) > _EXCERPT else "")
