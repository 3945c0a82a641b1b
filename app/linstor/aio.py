"""The production exchange of the LINSTOR session: one aiohttp pool a process, no httpx objects on the way.

httpx 0.28's own pool (httpcore) spends most of its time on pool bookkeeping once requests run side by side
(encode/httpx#3215): against the emulator it made 905 calls/s alone, 433 with 16 at once and 235 with 64
(p99 1.2 s), where aiohttp made 2.4k, 5k and 3.8k. An httpx transport on aiohttp (the first step) fixed the
pool but left httpx's Request, URL and Response objects, ~0.08 ms of CPU a call. This exchange takes the
session's URL string, body bytes and prebuilt headers and gives back the status and the body bytes; it keeps
the contracts the session relies on (exchange.py), which a generic adapter does not (httpx-aiohttp 0.2 maps
a server that hangs up before answering to ConnectTimeout, on which the session fails a POST over):

* The timeouts of each attempt: `total` bounds the whole of it (aiohttp's own total timer: an
  asyncio.timeout around the call cost ~9 us of CPU a call), `connect` the TCP and TLS handshake (aiohttp's
  sock_connect), `read` each wait for data, headers and body alike (sock_read), `pool` the wait for a free
  connection (`max_connections` slots here, so it raises PoolTimeout, never ConnectTimeout). No
  timeout is rounded up to a whole second (aiohttp's ceil_threshold): a deadline ends when it says. aiohttp
  has no write timeout: `total` bounds a whole attempt anyway.
* One attempt is one request: aiohttp's own silent resend of an idempotent request is off.
* aiohttp's errors become the httpx exceptions httpx's own transport raises for the same failure, decided
  once, in `_map_errors`: ConnectError or ConnectTimeout only when nothing was sent (refused, DNS, TLS
  handshake or certificate), everything after that a ReadTimeout, ReadError or RemoteProtocolError.
* A gzip or deflate answer (the session asks for them) comes back decoded.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import aiohttp
import httpx
from yarl import URL

from app.linstor.exchange import AttemptTimeout

_NEVER = float("inf")
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
def _map_errors() -> Iterator[None]:
    """aiohttp's errors as the httpx errors of the same failure, with the original as their cause."""
    try:
        yield
    except aiohttp.ClientError as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc
        raise  # pragma: no cover - ClientError is the last entry


class _Slots:
    """`size` connections at most: a freed slot goes to the longest waiter; a waiter gives up after its
    timeout with PoolTimeout. An asyncio.Semaphore under asyncio.timeout did this for ~5 us more a wait."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def acquire_now(self) -> bool:
        """Take a free slot if there is one."""
        if self._free:  # a slot is only ever free while nobody waits: release() hands it over
            self._free -= 1
            return True
        return False

    async def acquire(self, seconds: float) -> None:
        """Wait at most `seconds` for a slot."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot, then cancelled before it could run: pass the slot on
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give a slot back: to the longest waiter still waiting, or to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # not timed out nor cancelled
                waiter.set_result(None)
                return
        self._free += 1


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.PoolTimeout("no free connection in time"))


class AiohttpExchange:
    """Sends the session's requests over one aiohttp ClientSession: HTTP/1.1, kept alive, max_connections
    at most."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, max_connections: int = 32, keepalive: float = 5.0
    ) -> None:
        # None: aiohttp's default, a context that verifies with the system CAs
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._keepalive = keepalive
        self._slots = _Slots(max_connections)
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
                cookie_jar=aiohttp.DummyCookieJar(),  # LINSTOR sets none, and a jar costs every call
                skip_auto_headers=("Accept-Encoding", "User-Agent"),  # the session's own are sent
            )
            # aiohttp sends an idempotent request again, silently, when a kept-alive connection drops it;
            # retries are the session's alone (bounded by its settings, one log line each). No public switch.
            self._session._retry_connection = False
        return self._session

    async def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: AttemptTimeout
    ) -> tuple[int, bytes]:
        """One request within `timeout`; its status and whole (decoded) body."""
        total = timeout.total
        if not self._slots.acquire_now():  # the time spent waiting for a connection is the attempt's too
            started = asyncio.get_running_loop().time()
            await self._slots.acquire(timeout.pool)
            total -= asyncio.get_running_loop().time() - started
        try:
            with _map_errors():
                async with self._client().request(
                    method,
                    # sent as the session escaped it, as httpx sent it (yarl would unescape / ? in the query)
                    URL(url, encoded=True),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=total,
                        sock_connect=timeout.connect,
                        # a read timeout as long as the attempt's is the total's already: without it, each
                        # read does not cancel and re-arm a timer (2-3 a call, ~10% of a call's CPU at c64)
                        sock_read=timeout.read if timeout.read < total else None,
                        ceil_threshold=_NEVER,
                    ),
                ) as response:
                    return response.status, await response.read()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None
