"""An httpx transport on aiohttp's connection pool: httpx stays the API, aiohttp carries the requests.

httpx 0.28's own pool (httpcore) spends most of its time on pool bookkeeping once requests run side by side
(encode/httpx#3215): against the emulator the client made 905 requests/s alone, 433 with 16 at once and 235
with 64 (p99 1.2 s), where aiohttp made 2.4k, 5k and 3.8k. This transport keeps every httpx contract the
session relies on, which a generic adapter does not (httpx-aiohttp 0.2 maps a server that hangs up before
answering to ConnectTimeout, on which the session fails a POST over to another controller):

* httpx's timeouts, per request: `connect` bounds the TCP and TLS handshake (aiohttp's sock_connect), `read`
  each wait for data, headers and body alike (sock_read), `pool` the wait for a free connection (a
  semaphore of `max_connections` here, so it raises PoolTimeout, never ConnectTimeout). aiohttp has no write
  timeout: the session's deadline bounds a whole attempt anyway.
* One attempt is one request: aiohttp's own silent resend of an idempotent request is off.
* aiohttp's errors become the httpx exceptions httpx's own transport raises for the same failure, decided
  once, in `_map_errors`: ConnectError or ConnectTimeout only when nothing was sent (refused, DNS, TLS
  handshake or certificate), everything after that a ReadTimeout, ReadError or RemoteProtocolError.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx

EAGER_BYTES = 64 * 1024

# (aiohttp error, httpx error), the first match wins: subclasses before their bases
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS handshake and certificate
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # an answer that is not HTTP
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),  # reset or closed after the request went out
    (aiohttp.ClientError, httpx.TransportError),
)


@contextmanager
def _map_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's errors as the httpx errors of the same failure, with the original as their cause."""
    try:
        yield
    except aiohttp.ClientError as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__, request=request) from exc
        raise  # pragma: no cover - ClientError is the last entry


class _Body(httpx.AsyncByteStream):
    """The body of an aiohttp response; closing it gives the connection (and its pool slot) back."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request, slot: asyncio.Semaphore):
        self._response = response
        self._request = request
        self._slot: asyncio.Semaphore | None = slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _map_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()
        if self._slot is not None:
            self._slot.release()
            self._slot = None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests over one aiohttp ClientSession: HTTP/1.1, kept alive, max_connections at most."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, max_connections: int = 32, keepalive: float = 5.0
    ) -> None:
        # None: aiohttp's default, a context that verifies with the system CAs
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._keepalive = keepalive
        self._slots = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # made at the first request: a ClientSession belongs to the running event loop
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,  # the slots cap the connections, so that waiting for one raises PoolTimeout
                ssl=self._ssl,
                keepalive_timeout=self._keepalive,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies, as it would
                auto_decompress=False,  # httpx decodes Content-Encoding
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
            )
            # aiohttp sends an idempotent request again, silently, when a kept-alive connection drops it;
            # retries are the session's alone (bounded by its settings, one log line each). No public switch.
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` within its httpx timeouts; a large or unsized body streams from the connection."""
        timeout = request.extensions.get("timeout", {})
        await self._acquire(request, timeout.get("pool"))
        try:
            with _map_errors(request):
                response = await self._client().request(
                    request.method,
                    str(request.url),
                    headers=request.headers.multi_items(),
                    data=await request.aread() or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                    ),
                    server_hostname=request.extensions.get("sni_hostname"),
                )
                size = response.content_length
                # most answers are small: read at once, they skip httpx's chain of stream iterators
                body = await response.read() if size is not None and size <= EAGER_BYTES else None
        except BaseException:
            self._slots.release()
            raise
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        if body is not None:
            self._slots.release()
            return httpx.Response(
                response.status,
                headers=response.raw_headers,
                content=body,
                request=request,
                extensions=extensions,
            )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request, self._slots),
            request=request,
            extensions=extensions,
        )

    async def _acquire(self, request: httpx.Request, seconds: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(seconds):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection in time", request=request) from exc

    async def aclose(self) -> None:
        """Close every connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None
