"""The recording proxy: forwards requests to a LINSTOR controller, appends each exchange to a transcript."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Self
from urllib.parse import parse_qsl

import httpx
import orjson
from starlette.types import Receive, Scope, Send

from app.transcripts.format import Exchange, write_exchanges

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0

# Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, not to the exchange. httpx sets
# content-length for the body actually sent (0 for an empty POST/PUT/PATCH). accept-encoding is replaced so
# that the controller answers uncompressed: the transcript holds the raw response text.
_NOT_FORWARDED = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"content-length",
        b"accept-encoding",
    }
)
# httpx has already decoded any content-encoding, and uvicorn frames the body itself
_NOT_RETURNED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"content-encoding",
    }
)


@dataclass(frozen=True)
class Upstream:
    """The controller to record: base URL, optional CA file and client certificate, timeout of each wait."""

    url: str
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"upstream {self.url!r}: give an http:// or https:// URL")
        if self.client_key and not self.client_cert:
            raise ValueError("a client key needs its client certificate")
        if self.timeout <= 0:
            raise ValueError("the timeout must be positive")

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server with: the system CAs, or a context with our CA and client cert."""
        if not (self.ca_file or self.client_cert):
            return True
        # httpx 0.28 deprecates verify=<path> and cert=: an SSLContext is its one supported form
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


class Recorder:
    """ASGI app: answers every request with the upstream's answer and appends the exchange to `sink`.

    The sink is owned by the caller (opened before, closed after); the httpx client is opened by the ASGI
    lifespan, or by `start()`/`stop()` (`async with`) when the app is driven without one.
    """

    def __init__(
        self, upstream: Upstream, sink: IO[str], *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.upstream = upstream
        self._sink = sink
        self._transport = transport
        self._base = httpx.URL(upstream.url)
        self._base_path = self._base.raw_path.rstrip(b"/")
        self._client: httpx.AsyncClient | None = None
        self._write_lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the one shared client to the upstream."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                verify=self.upstream.verify(),
                timeout=httpx.Timeout(self.upstream.timeout),
                follow_redirects=False,
            )

    async def stop(self) -> None:
        """Close the client; the sink stays open (its owner closes it)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._proxy(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: a bad CA or cert file
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self._client
        if client is None:
            raise RuntimeError("the recorder is not started: run it with a lifespan or call start()")
        body = await _read_body(receive)
        if body is None:
            return  # the client left before its request was whole: nothing to forward, nobody to answer
        request = self._upstream_request(scope, body)
        started = time.perf_counter()
        try:
            response = await client.send(request)
        except httpx.TimeoutException as exc:
            await _send(send, 504, *_failure(f"no answer within {self.upstream.timeout:g}s", request, exc))
            return
        except httpx.TransportError as exc:
            await _send(send, 502, *_failure("could not reach it", request, exc))
            return
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        query: bytes = scope.get("query_string", b"")
        exchange = Exchange(
            method=scope["method"],
            path=scope["path"],
            query=parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True),
            body=body.decode("utf-8", "replace"),
            status=response.status_code,
            response=response.content.decode("utf-8", "replace"),
            ms=elapsed_ms,
        )
        # The line is written and flushed before the client has its answer: whatever a client sends after
        # an answer is recorded after it, so the transcript's order is the order clients could observe. The
        # lock keeps concurrent lines whole and in one order; the thread keeps file I/O off the event loop.
        async with self._write_lock:
            await asyncio.to_thread(write_exchanges, self._sink, [exchange])
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _NOT_RETURNED]
        await _send(send, response.status_code, headers, response.content)

    def _upstream_request(self, scope: Scope, body: bytes) -> httpx.Request:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        target = self._base.copy_with(raw_path=self._base_path + raw_path + (b"?" + query if query else b""))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _NOT_FORWARDED]
        headers.append((b"accept-encoding", b"identity"))
        # httpx.Request, not client.build_request: the client's default headers (its User-Agent, Accept)
        # would be merged in, and the controller must see the client's own
        return httpx.Request(scope["method"], target, headers=headers, content=body or None)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client disconnects first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


FAIL_UNKNOWN_ERROR = -4611686018427386906  # 998 | MASK_ERROR, as a Java long


def _failure(problem: str, request: httpx.Request, exc: Exception) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a LINSTOR-style error answer for an exchange the controller never answered."""
    controller = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
    log.warning("%s %s: %s: %s (not recorded)", request.method, request.url.path, problem, exc)
    # FAIL_UNKNOWN_ERROR: LINSTOR clients (ours included) treat it as an operational error worth a retry.
    # Built here, not with the emulator's helpers: the proxy must run without the emulator's extra.
    entry = {
        "ret_code": FAIL_UNKNOWN_ERROR,
        "message": f"The recording proxy got no answer from the LINSTOR controller at {controller}: "
        f"{problem}.",
        "cause": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        "details": "This exchange is not recorded.",
        "created_at": datetime.now(UTC).isoformat(),
    }
    return [(b"content-type", b"application/json")], orjson.dumps([entry])


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
