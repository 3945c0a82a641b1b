"""Serve an ASGI app over real HTTP on 127.0.0.1 from a background thread, for end-to-end tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from app.emulator.server import threaded


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(app: Any, port: int | None = None, **options: Any) -> Iterator[str]:
    """Run `app` under uvicorn in a thread (extra uvicorn.Config `options`, e.g. TLS); yields its base URL."""
    port = port or free_port()
    settings: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "on", **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **settings)
    scheme = "https" if options.get("ssl_certfile") else "http"
    with threaded(uvicorn.Server(config)):
        yield f"{scheme}://127.0.0.1:{port}"
