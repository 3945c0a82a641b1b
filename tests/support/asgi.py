"""The scope of one HTTP request as an ASGI server passes it: for driving an app without a server."""

from __future__ import annotations

from typing import Any


def http_scope(
    method: str, path: str, headers: list[tuple[bytes, bytes]], port: int = 8000
) -> dict[str, Any]:
    """An HTTP/1.1 request of `method` to `path` (no query) on 127.0.0.1:`port`, from 127.0.0.1."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("127.0.0.1", port),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }
