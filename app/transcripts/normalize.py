"""What varies from run to run in a controller's answer, replaced by placeholders (transcripts README)."""

from __future__ import annotations

import re
from typing import Any

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# a rollback's safety snapshot has ten random letters and digits (service-traffic.jsonl #135)
_SAFETY_SNAPSHOT = re.compile(r"safety-snap-[A-Za-z0-9]{10}")
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
# keys whose values the controller or its satellite picks anew on each run
_VOLATILE_KEYS = {
    "created_at": "<time>",
    "create_timestamp": "<time>",
    "eviction_timestamp": "<time>",
    "build_time": "<build>",
    "git_hash": "<build>",
    "version": "<build>",
    "rest_api_version": "<build>",
    "port": "<drbd-port>",
    "tcp_port": "<drbd-port>",
    "secret": "<drbd-secret>",
    "DrbdCurrentGi": "<drbd-gi>",
}


def normalize(value: Any) -> Any:
    """A copy of a decoded JSON answer with UUIDs, timestamps, report ids, build info, ports and secrets
    replaced by placeholders; key order and list order are kept (they are compared too)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _VOLATILE_KEYS and not isinstance(item, dict | list):
                out[key] = _VOLATILE_KEYS[key]
            elif key == "error_report_ids" and isinstance(item, list):
                out[key] = ["<report>" for _ in item]
            else:
                out[key] = normalize(item)
        return out
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, str):
        value = _ISO_TIME.sub("<time>", _UUID.sub("<uuid>", value))
        return _SAFETY_SNAPSHOT.sub("safety-snap-<random>", value)
    return value


def ret_codes(value: Any) -> list[int] | None:
    """The ret_code list of an ApiCallRc answer, or None when the answer is not one."""
    if isinstance(value, list) and value and all(isinstance(i, dict) and "ret_code" in i for i in value):
        return [int(item["ret_code"]) for item in value]
    return None
