"""Schemathesis hooks of tests/api/test_schemathesis.py: the two rules no schema can state, and their counts.

Loaded by `st run` through SCHEMATHESIS_HOOKS; each hook counts what it changed into the JSON file named by
ST_HOOK_REPORT, which the test prints beside schemathesis's own figures.
"""

from __future__ import annotations

import atexit
import json
import os
import uuid
from collections import Counter
from typing import Any

import schemathesis
from pydantic import TypeAdapter
from schemathesis import Case, HookContext

from app.api.idempotency import KEY_RE
from app.api.schemas import SIZE_STRING_RE, Size
from app.errors import InvalidInput
from app.naming import MAX_VOLUME_BYTES

COUNTS: Counter[str] = Counter()
SIZE: TypeAdapter[int] = TypeAdapter(Size)


@atexit.register
def _report() -> None:
    path = os.environ.get("ST_HOOK_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(dict(COUNTS), out)


def _size_out_of_range(value: object) -> bool:
    """A size string of the documented form whose number is not 1 byte to 1 PiB, as the service reads it."""
    if not isinstance(value, str) or not SIZE_STRING_RE.fullmatch(value):
        return False
    try:
        number = SIZE.validate_python(value)  # the service's own reading (app/api/schemas.py)
    except InvalidInput:
        return True
    return not 1 <= number <= MAX_VOLUME_BYTES


@schemathesis.hook
def filter_case(ctx: HookContext, case: Case[Any]) -> bool:
    """EXCLUSION 1: a create whose size string stands for 0 or more than 1 PiB ("0.1B", "2EiB").

    JSON Schema can state the form of a size string (SIZE_STRING_RE) but not bound the number it stands for;
    the OpenAPI document says the bound in words, and tests/api/test_input_limits.py tests it (422
    invalid_size). Without this, such cases are "schema-valid but refused".
    """
    body = case.body
    if isinstance(body, dict) and _size_out_of_range(body.get("size")):
        COUNTS["size_string_out_of_range_dropped"] += 1
        return False
    return True


@schemathesis.hook
def before_call(ctx: HookContext, case: Case[Any], kwargs: dict[str, Any]) -> None:
    """EXCLUSION 2: every well-formed Idempotency-Key is made unique to its request, in every phase.

    The draft (and the README) ask a client for a key unique to each request, and answer the same key with
    another request 422 `idempotency_key_reused` by design; schemathesis draws short keys ("0") over and
    over for different requests, and no schema can say "unique". Malformed keys are sent as drawn.
    """
    headers = case.headers
    key = headers.get("Idempotency-Key") if headers is not None else None
    if headers is not None and isinstance(key, str) and KEY_RE.fullmatch(key):
        headers["Idempotency-Key"] = f'"{uuid.uuid4()}"'
        COUNTS["idempotency_keys_made_unique"] += 1
