"""Serve an ASGI app over real HTTP on 127.0.0.1 from a background thread, for end-to-end tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


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


@contextmanager
def threaded(server: uvicorn.Server) -> Iterator[None]:
    """Run a uvicorn server in a daemon thread for the duration of the block."""
    thread = threading.Thread(target=server.run, name=f"uvicorn-{server.config.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {server.config.port} did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
