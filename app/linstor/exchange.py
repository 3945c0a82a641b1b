"""What the LINSTOR session needs of HTTP: one request out, its status and body back, within set timeouts.

The session (transport.py) holds every rule of a call: failover, retries, deadlines, error mapping,
decoding. Below it an exchange only carries bytes, gives up on an attempt after `total` seconds in all
(TimeoutError or an httpx.TimeoutException), and raises the httpx exception of a failure, which the session
maps: ConnectError or ConnectTimeout when the request cannot have reached the controller (safe to
fail over), PoolTimeout when no connection came free in time, any other TransportError once it may have.
Two implement it: h1.py's on asyncio and httptools (production: no httpx object per call), and
HttpxExchange for an httpx transport injected by tests (ASGITransport to an in-process emulator,
MockTransport, respx).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NamedTuple, Protocol

import httpx


class AttemptTimeout(NamedTuple):
    """Seconds one attempt may spend connecting, waiting for each read, waiting for a free connection, and
    in all (the time left of the call's deadline)."""

    connect: float
    read: float
    pool: float
    total: float


class Exchange(Protocol):
    """Sends one request and reads its whole answer."""

    async def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: AttemptTimeout
    ) -> tuple[int, bytes]:
        """The status and body of the answer to `method url`; an httpx.TransportError when none came."""
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


class HttpxExchange:
    """An httpx transport as an exchange: the request built as httpx builds it, its timeouts as extensions."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: AttemptTimeout
    ) -> tuple[int, bytes]:
        """One request on the transport, its answer read whole and decoded (Content-Encoding)."""
        # as httpx.Timeout(read, connect=, pool=).as_dict(): writes get the read timeout
        phases = {
            "connect": timeout.connect,
            "read": timeout.read,
            "write": timeout.read,
            "pool": timeout.pool,
        }
        request = httpx.Request(method, url, headers=headers, content=body, extensions={"timeout": phases})
        # httpx's timeouts bound each phase (and each read); this bounds the whole attempt
        async with asyncio.timeout(timeout.total):
            response = await self._transport.handle_async_request(request)
            response.request = request
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response.status_code, response.content

    async def aclose(self) -> None:
        """Close the transport."""
        await self._transport.aclose()
