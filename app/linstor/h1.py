"""The production exchange of the LINSTOR session: HTTP/1.1 on asyncio's own connections, parsed by httptools.

A LINSTOR call is one small request and one answer on a kept-alive connection. aiohttp's client spent
0.15-0.20 ms of CPU on each inside the service, 58-66% of a mutation's CPU (tests/benchmarks/bench_split.py),
on redirects, cookies, tracing, multidicts, payload objects and timers that the session never uses. Here a
call is one write of prebuilt bytes, and httptools' C parser (llhttp, the parser uvicorn reads requests
with) reads the answer. The contracts the session relies on (exchange.py) hold:

* The timeouts of each attempt: `total` bounds the whole of it, `connect` the TCP and TLS handshake, `read`
  each wait for data, headers and body alike, `pool` the wait for a free connection (`max_connections`
  slots: PoolTimeout, never ConnectTimeout). One timer a request: it fires at the earlier of the attempt's
  end and the last data plus `read`, and re-arms itself while data keeps coming.
* One attempt is one request: nothing is ever sent again here; retries are the session's.
* Failures are the httpx exceptions that httpx's own transport raises for them: ConnectError or
  ConnectTimeout only when nothing was sent (refused, DNS, TLS handshake or certificate), then ReadTimeout,
  ReadError (a reset) or RemoteProtocolError (a hang-up before the whole answer, an answer that is not HTTP).
* A gzip or deflate answer (the session asks for them) comes back decoded, in a thread when it is large.
* A connection is reused only while the controller keeps it open, the last answer allowed it, and it has
  been idle less than `keepalive` seconds: 3, under the 5 s after which uvicorn (the emulator) closes an
  idle connection, so that a request is not sent on one the server is closing (a POST lost that way is
  not sent again). A timed-out, cancelled or broken connection is dropped at once.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import httptools
import httpx

from app.linstor.exchange import AttemptTimeout
from app.linstor.slots import Slots

# a header value with a line break would end the head early: refused when the session's headers are first seen
_FORBIDDEN = frozenset("\r\n\0")
# a compressed body larger than this is decompressed in a thread (10-20x larger once decompressed)
INLINE_DECODE_BYTES = 64 * 1024


class _Answer(NamedTuple):
    """An answer as it came: its status, its body and the body's Content-Encoding."""

    status: int
    body: bytes
    encoding: bytes


class _Origin(NamedTuple):
    """Where a controller URL connects, and the Host header its requests carry."""

    host: str
    port: int
    ssl: ssl.SSLContext | None
    host_header: str


class _Connection(asyncio.Protocol):
    """One kept-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[_Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._chunks: list[bytes] = []
        self._encoding = b""
        self._framed = False  # Content-Length or Transfer-Encoding: the body does not end at the close
        self._head_read = False
        self._received = False
        self._last_data = 0.0
        self.keep = True  # False once the controller closed it, the answer said so, or it broke
        self.idle_since = 0.0

    # ---- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio's: the connection is up."""
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of asyncio's

    def data_received(self, data: bytes) -> None:
        """asyncio's: bytes of the answer."""
        if self._answer is None:  # nothing was asked: the connection is out of step, never reuse it
            self.keep = False
            return
        self._received = True
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(httpx.RemoteProtocolError(f"the answer is not HTTP/1.1 as expected: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio's: the connection is gone; a pending answer is complete or failed."""
        self.keep = False
        if self._answer is None or self._answer.done():
            return
        if exc is not None:
            self._fail(httpx.ReadError(str(exc) or type(exc).__name__))
        elif self._head_read and not self._framed:
            self.on_message_complete()  # a body that ends where the connection does
        elif self._received:
            self._fail(httpx.RemoteProtocolError("peer closed connection without sending complete message"))
        else:
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))

    # ---- httptools' callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """An answer starts: one that nobody asked for puts the connection out of step for good."""
        if self._answer is None or self._answer.done():
            self.keep = False

    def on_header(self, name: bytes, value: bytes) -> None:
        """A header field of the answer: only its framing and its encoding matter here."""
        name = name.lower()
        if name == b"content-encoding":
            self._encoding = value.strip().lower()
        elif name in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        """The head is read; the body, if any, follows."""
        self._head_read = True

    def on_body(self, body: bytes) -> None:
        """A piece of the body, de-chunked."""
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        """An answer is in: the final one completes the request; a 1xx one is skipped."""
        if self._answer is None or self._answer.done():
            return
        status = self._parser.get_status_code()
        if status < 200:
            self._new_answer()
            return
        self.keep = self.keep and self._parser.should_keep_alive()
        self._answer.set_result(_Answer(status, b"".join(self._chunks), self._encoding))

    # ---- the exchange's side ---------------------------------------------------------------------------

    async def request(self, data: bytes, read: float, ends: float) -> _Answer:
        """Send one request; its answer, each wait for data within `read` seconds, all of it by loop time
        `ends`."""
        assert self._transport is not None
        answer: asyncio.Future[_Answer] = self._loop.create_future()
        self._answer = answer
        self._new_answer()
        self._received = False
        self._transport.write(data)
        self._last_data = now = self._loop.time()
        self._timer = self._loop.call_at(min(now + read, ends), self._check, read, ends)
        try:
            return await answer
        except BaseException:
            self.close()  # timed out, cancelled or broken: the connection's state is unknown
            raise
        finally:
            self._timer.cancel()  # the latest: _check re-arms it
            self._answer = None

    def _new_answer(self) -> None:
        """Forget what was read of an answer: a request's starts afresh, and so does one after a 1xx."""
        self._chunks, self._encoding, self._framed, self._head_read = [], b"", False, False

    def _check(self, read: float, ends: float) -> None:
        """The request's timer: time out, or wait on while data keeps coming within `read` seconds."""
        now = self._loop.time()
        due = min(self._last_data + read, ends)
        if now < due:
            self._timer = self._loop.call_at(due, self._check, read, ends)
            return
        what = "the attempt's time is up" if now >= ends else f"no data for {read:g} s"
        self._fail(httpx.ReadTimeout(f"LINSTOR did not answer in time: {what}"))

    def _fail(self, exc: httpx.TransportError) -> None:
        self.keep = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)

    def reusable(self, now: float, keepalive: float) -> bool:
        """Fit to carry another request."""
        transport = self._transport
        return (
            self.keep
            and now - self.idle_since < keepalive
            and transport is not None
            and not transport.is_closing()
        )

    def close(self) -> None:
        """Drop the connection at once."""
        self.keep = False
        if self._transport is not None:
            self._transport.abort()


async def _decoded(answer: _Answer) -> bytes:
    """The answer's body undone of its Content-Encoding: in a thread when it is large, as the session
    decodes a large JSON body, so that the loop keeps serving."""
    if not answer.encoding or answer.encoding == b"identity":
        return answer.body
    try:
        if len(answer.body) > INLINE_DECODE_BYTES:
            return await asyncio.to_thread(_decompress, answer.encoding, answer.body)
        return _decompress(answer.encoding, answer.body)
    except (zlib.error, ValueError) as exc:
        raise httpx.RemoteProtocolError(f"the answer's body cannot be decoded: {exc}") from exc


def _decompress(encoding: bytes, body: bytes) -> bytes:
    if encoding in (b"gzip", b"x-gzip"):
        return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
    if encoding == b"deflate":  # zlib-wrapped, as RFC 9110 says; some servers send it raw
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, wbits=-zlib.MAX_WBITS)
    raise ValueError(f"unknown content encoding {encoding.decode(errors='replace')!r}")


class H1Exchange:
    """Sends the session's requests over kept-alive HTTP/1.1 connections, `max_connections` at most."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, max_connections: int = 32, keepalive: float = 3.0
    ) -> None:
        # None: a context that verifies with the system CAs, made at the first https request
        self._ssl_context = ssl_context
        self._keepalive = keepalive
        self._slots = Slots(max_connections)
        self._origins: dict[str, _Origin] = {}
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: AttemptTimeout
    ) -> tuple[int, bytes]:
        """One request within `timeout`; its status and whole (decoded) body."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that made them (asyncio.run per test)
            self._idle.clear()
            self._busy.clear()
            self._loop = loop
        ends = loop.time() + timeout.total
        # the session's URLs: a controller's origin, then the path and query as the session escaped them
        cut = url.find("/", url.find("//") + 2)
        base, target = (url[:cut], url[cut:]) if cut >= 0 else (url, "/")
        origin = self._origin(base)
        data = self._request(method, target, origin, body, headers)
        if not self._slots.acquire_now():  # the time spent waiting for a connection is the attempt's too
            await self._slots.acquire(min(timeout.pool, timeout.total))
        try:
            connection = self._reuse(origin, loop.time())
            if connection is None:
                connection = await self._connect(loop, origin, min(timeout.connect, ends - loop.time()))
            self._busy.add(connection)
            try:
                answer = await connection.request(data, timeout.read, ends)
            finally:
                self._busy.discard(connection)
            if connection.keep:
                connection.idle_since = loop.time()
                self._idle.setdefault(origin, []).append(connection)
            else:
                connection.close()
        finally:
            self._slots.release()
        return answer.status, await _decoded(answer)

    def _origin(self, base: str) -> _Origin:
        origin = self._origins.get(base)
        if origin is None:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise httpx.UnsupportedProtocol(f"not an http(s) URL: {base!r}")
            secure = parts.scheme == "https"
            if secure and self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            port = parts.port or (443 if secure else 80)
            host = parts.hostname.encode("idna").decode("ascii")
            shown = f"[{host}]" if ":" in host else host  # an IPv6 address
            header = shown if parts.port is None else f"{shown}:{port}"
            origin = _Origin(host, port, self._ssl_context if secure else None, header)
            self._origins[base] = origin
        return origin

    def _request(
        self, method: str, target: str, origin: _Origin, body: bytes | None, headers: Mapping[str, str]
    ) -> bytes:
        """The bytes of a request: its head, then its body. The header lines are built once per set."""
        key = (origin.host_header, tuple(headers.items()))
        lines = self._heads.get(key)
        if lines is None:
            fields = [("Host", origin.host_header), *headers.items()]
            for name, value in fields:
                if _FORBIDDEN.intersection(name + value) or ":" in name:
                    raise httpx.LocalProtocolError(f"header {name!r} cannot be sent as it is")
            lines = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("latin-1")
            self._heads[key] = lines
        start = f"{method} {target} HTTP/1.1\r\n".encode("ascii")
        if body is None:
            return (
                start
                + lines
                + (b"Content-Length: 0\r\n\r\n" if method in ("POST", "PUT", "PATCH") else b"\r\n")
            )
        return b"%s%sContent-Length: %d\r\n\r\n%s" % (start, lines, len(body), body)

    def _reuse(self, origin: _Origin, now: float) -> _Connection | None:
        """The most recently used idle connection to `origin` that can still carry a request."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.reusable(now, self._keepalive):
                return connection
            connection.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, origin: _Origin, seconds: float) -> _Connection:
        """A new connection (TCP, then TLS for https) within `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl is not None else None,
                )
        except TimeoutError as exc:
            where = f"{origin.host}:{origin.port}"
            raise httpx.ConnectTimeout(f"no connection to {where} in {seconds:g} s") from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), the TLS handshake (SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return connection

    async def aclose(self) -> None:
        """Close every connection, idle or busy."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.close()
