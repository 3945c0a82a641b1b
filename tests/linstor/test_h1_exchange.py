"""The default exchange (app/linstor/h1.py) against real sockets on 127.0.0.1: timeouts, refusals, drops,
and the bytes it puts on the wire.

The session's failure tests (test_client_failures.py) inject httpx exceptions through a MockTransport; these
check that the exchange it really uses raises them, each within its timeout, not the deadline.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
import uvicorn

from app.linstor import LinstorClient, LinstorTimeout, LinstorUnavailable
from app.linstor.config import ConnectionConfig
from app.linstor.exchange import AttemptTimeout
from app.linstor.h1 import INLINE_DECODE_BYTES, H1Exchange
from app.linstor.transport import Deadlines, Timeouts
from tests.support.server import free_port

VERSION = b'{"version":"1.34.0","git_hash":"x","build_time":"now","rest_api_version":"1.28.0"}'
# far longer than any timeout below: an answer that takes this long is one the timeout did not cut
DEADLINE = 10.0

Reply = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


def ok(body: bytes = VERSION) -> bytes:
    """An HTTP/1.1 200 answer with a JSON body, kept alive."""
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


@asynccontextmanager
async def controller(
    reply: Reply, heads: list[bytes] | None = None, opened: list[int] | None = None
) -> AsyncIterator[tuple[str, list[str]]]:
    """A fake controller on 127.0.0.1: `reply(n, ...)` answers its n-th request (from 1) and says whether to
    keep the connection; yields its URL and the request lines it read (whole heads into `heads`, and the
    number of requests read before each connection was opened into `opened`)."""
    seen: list[str] = []
    handlers: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        if opened is not None:
            opened.append(len(seen))
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                seen.append(head.split(b"\r\n", 1)[0].decode())
                if heads is not None:
                    heads.append(head)
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.lower().split(b"\r\n")
                        if b"content-length" in line
                    ),
                    0,
                )
                await reader.readexactly(length)
                if not await reply(len(seen), reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        for task in handlers:  # the hung ones
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Every request answered at once."""
    writer.write(ok())
    await writer.drain()
    return True


async def hang(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Read the request, never answer."""
    await asyncio.sleep(3600)
    return False


def client(*urls: str, connect: float = 5.0, read: float = 5.0, **kw: object) -> LinstorClient:
    """A client of `urls` on the default transport, no retries, deadlines far longer than its timeouts."""
    kw.setdefault("retries", 0)
    return LinstorClient(
        ConnectionConfig(urls=urls),
        timeouts=Timeouts(connect=connect, read=read, write=read),
        deadlines=Deadlines(read=DEADLINE, write=DEADLINE),
        **kw,  # type: ignore[arg-type]
    )


async def timed(call: Awaitable[object]) -> tuple[BaseException | None, float]:
    """What `call` raised (None if nothing) and the seconds it took."""
    started = time.monotonic()
    try:
        await call
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


async def fails(call: Awaitable[object], kind: type[Exception], cause: type[BaseException]) -> float:
    """The seconds `call` took to fail with `kind`, caused by `cause` (both asserted)."""
    error, seconds = await timed(call)
    assert isinstance(error, kind), error
    assert isinstance(error.__cause__, cause)
    return seconds


# ---- timeouts ----------------------------------------------------------------------------------------


async def test_read_timeout_against_a_hung_controller() -> None:
    """httpx's read timeout, not the (much longer) deadline, ends a wait for an answer that never comes."""
    async with controller(hang) as (url, seen), client(url, read=0.3) as c:
        seconds = await fails(c.controller_version(), LinstorTimeout, httpx.ReadTimeout)
    assert 0.25 < seconds < 1.5, seconds
    assert seen == ["GET /v1/controller/version HTTP/1.1"]


@pytest.mark.parametrize("size", [200, 1 << 20], ids=["small", "streamed"])
async def test_read_timeout_in_the_middle_of_a_body(size: int) -> None:
    """Headers came, then half the body, then nothing: read at once (small) or streamed (large) alike."""

    async def half(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % size
        )
        writer.write(b"[" + b" " * (size // 2))
        await writer.drain()
        await asyncio.sleep(3600)
        return False

    async with controller(half) as (url, _), client(url, read=0.3) as c:
        seconds = await fails(c.list_resource_definitions(), LinstorTimeout, httpx.ReadTimeout)
    assert seconds < 1.5, seconds


async def test_a_trickling_answer_is_cut_at_the_deadline() -> None:
    """A byte every 50 ms never lets the 5 s read timeout fire: the deadline bounds the whole attempt."""

    async def trickle(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n[")
        for _ in range(200):
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b" ")
        return False

    async with (
        controller(trickle) as (url, _),
        LinstorClient(ConnectionConfig(urls=(url,)), retries=0, deadlines=Deadlines(read=0.5)) as c,
    ):
        error, seconds = await timed(c.list_resource_definitions())
    assert isinstance(error, LinstorTimeout), error
    assert 0.45 < seconds < 1.0, seconds


async def test_pool_timeout_when_every_connection_is_busy() -> None:
    """One connection allowed and held by a hung call: the next call waits `connect` seconds for it, then
    fails with a pool timeout (504), without opening a second connection or failing over."""
    async with controller(hang) as (url, seen), client(url, connect=0.3, read=5.0, max_connections=1) as c:
        hung = asyncio.create_task(c.controller_version())
        while not seen:
            await asyncio.sleep(0.01)
        seconds = await fails(c.controller_version(), LinstorTimeout, httpx.PoolTimeout)
        hung.cancel()
    assert 0.25 < seconds < 1.5, seconds
    assert len(seen) == 1


@contextmanager
def black_hole() -> Iterator[str]:
    """A listening socket whose accept queue is full: the kernel drops further SYNs, so connecting hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # a backlog of 0 still queues a connection or two
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_connect_timeout_fails_over_to_the_next_controller() -> None:
    """A controller that takes no connection costs `connect` seconds; the next one then answers."""
    with black_hole() as dead:
        async with controller(answer) as (url, seen), client(dead, url, connect=0.3) as c:
            error, seconds = await timed(c.controller_version())
            assert c.controller == url
    assert error is None, repr(error)
    assert 0.1 < seconds < 1.5, seconds
    assert seen == ["GET /v1/controller/version HTTP/1.1"]


# ---- refused and dropped connections -----------------------------------------------------------------


async def test_refused_connection_fails_over_at_once() -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    async with controller(answer) as (url, _), client(refused, url) as c:
        error, seconds = await timed(c.controller_version())
        assert c.controller == url
    assert error is None, repr(error)
    assert seconds < 1.0, seconds


async def test_every_controller_refusing_is_unavailable() -> None:
    async with client(f"http://127.0.0.1:{free_port()}") as c:
        await fails(c.controller_version(), LinstorUnavailable, httpx.ConnectError)


async def drop_the_second(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Answer the first request on a kept-alive connection, hang up on the second without an answer."""
    if n == 2:
        return False
    writer.write(ok())
    await writer.drain()
    return True


async def test_a_dropped_request_is_not_sent_again_behind_the_session() -> None:
    """A GET dropped on a kept-alive connection is not sent again by the exchange (aiohttp did so, silently);
    retries are the session's (none here)."""
    async with controller(drop_the_second) as (url, seen), client(url) as c:
        await c.controller_version()
        await fails(c.controller_version(), LinstorUnavailable, httpx.RemoteProtocolError)
    assert len(seen) == 2


async def test_a_dropped_post_is_not_failed_over() -> None:
    """The POST reached the controller, which may have acted on it: no other controller may get it too."""
    async with (
        controller(drop_the_second) as (first, seen),
        controller(answer) as (second, other),
        client(first, second) as c,
    ):
        await c.controller_version()
        error, _ = await timed(c.create_resource_definition("vol1"))
    assert isinstance(error, LinstorUnavailable), error
    assert error.controller == first
    assert (len(seen), other) == (2, [])


# ---- what goes on the wire, what comes back ----------------------------------------------------------


def header_lines(head: bytes) -> dict[str, str]:
    """The header fields of a request head, names lower-cased."""
    fields = (line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    return {name.strip().lower().decode(): value.strip().decode() for name, value in fields}


async def test_the_session_headers_and_escaped_names_reach_the_controller() -> None:
    """No httpx object builds the request any more: the exchange sends the session's headers, and the path
    and query exactly as escaped (a name holding / or ?, a props filter holding = & +)."""
    heads: list[bytes] = []

    async def empty(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(b"[]"))  # no RD, no ApiCallRc: both calls succeed
        await writer.drain()
        return True

    async with (
        controller(empty, heads) as (url, seen),
        LinstorClient(ConnectionConfig(urls=(url,), bearer_token="tok"), retries=0) as c,
    ):
        await c.list_resource_definitions(names=["a/b?c"], props=["Aux/Incus/type=a+b&c"])
        await c.create_resource_definition("vol1")
    assert seen == [
        "GET /v1/resource-definitions?resource_definitions=a%2Fb%3Fc"
        "&props=Aux%2FIncus%2Ftype%3Da%2Bb%26c HTTP/1.1",
        "POST /v1/resource-definitions HTTP/1.1",
    ]
    get, post = (header_lines(head) for head in heads)
    for headers in (get, post):
        assert headers["authorization"] == "Bearer tok"
        assert headers["user-agent"] == "linstor-names/0.1"
        assert headers["accept"] == "application/json"
    assert "content-type" not in get
    assert post["content-type"] == "application/json"


async def test_a_gzip_answer_is_decoded() -> None:
    """The session asks for gzip (Accept-Encoding); whatever sends it compressed, the session reads JSON."""
    body = gzip.compress(VERSION)

    async def gzipped(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        return True

    async with controller(gzipped) as (url, _), client(url) as c:
        assert (await c.controller_version()).version == "1.34.0"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
async def test_a_deflate_answer_is_decoded(wbits: int) -> None:
    packer = zlib.compressobj(wbits=wbits)
    body = packer.compress(VERSION) + packer.flush()

    async def deflated(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: deflate\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
        return True

    async with controller(deflated) as (url, _), client(url) as c:
        assert (await c.controller_version()).version == "1.34.0"


async def test_a_large_gzip_answer_is_decoded_and_a_broken_one_is_a_protocol_error() -> None:
    """A large one is decompressed in a thread (INLINE_DECODE_BYTES); either way the session reads JSON, and
    a body that is not what its encoding says is refused."""
    noise = os.urandom(INLINE_DECODE_BYTES).hex().encode()  # hex digits: about half compresses away
    large = gzip.compress(VERSION[:-1] + b',"padding":"' + noise + b'"}')
    assert len(large) > INLINE_DECODE_BYTES
    bodies = [large, b"not gzip at all"]

    async def gzipped(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        body = bodies[n - 1]
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        return True

    async with controller(gzipped) as (url, _), client(url) as c:
        assert (await c.controller_version()).version == "1.34.0"
        await fails(c.controller_version(), LinstorUnavailable, httpx.RemoteProtocolError)


async def test_chunked_answers_and_one_that_ends_with_the_connection_are_read_whole() -> None:
    halves = VERSION[:20], VERSION[20:]

    async def framed(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:  # chunked, with a 1xx answer before it, which is not the answer
            writer.write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            writer.write(b"".join(b"%x\r\n%s\r\n" % (len(half), half) for half in halves) + b"0\r\n\r\n")
        else:  # no length: the body ends where the connection does
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + VERSION)
        await writer.drain()
        return n == 1

    async with controller(framed) as (url, seen), client(url) as c:
        assert (await c.controller_version()).version == "1.34.0"
        assert (await c.controller_version()).version == "1.34.0"
    assert len(seen) == 2


async def test_a_kept_alive_connection_carries_the_next_calls() -> None:
    opened: list[int] = []
    async with controller(answer, opened=opened) as (url, seen), client(url) as c:
        for _ in range(3):
            await c.controller_version()
    assert (len(seen), opened) == (3, [0])


async def connections_of_two_calls(reply: Reply) -> list[int]:
    """Two calls, one after the other, to a controller answering with `reply`: the second answered (within a
    1 s read timeout); the requests read before each connection was opened."""
    opened: list[int] = []
    async with controller(reply, opened=opened) as (url, _), client(url, read=1.0) as c:
        await c.controller_version()
        error, _ = await timed(c.controller_version())
    assert error is None, repr(error)
    return opened


async def test_a_connection_the_answer_closes_is_not_used_again() -> None:
    """`Connection: close`, and the controller keeps the socket open but reads no more from it: a next call
    sent on it would hang until its read timeout; it goes on a new connection."""

    async def close_first(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(ok().replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1))
            await writer.drain()
            await asyncio.sleep(3600)
        return await answer(n, reader, writer)

    assert await connections_of_two_calls(close_first) == [0, 1]


async def test_a_connection_with_more_than_the_answer_on_it_is_not_used_again() -> None:
    """The answer, then the start of another nobody asked for, in one write: the connection is out of step
    (the next answer would be read as that one's body); the next call goes on a new connection."""

    async def too_much(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(ok() + b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n[")
            await writer.drain()
            return True
        return await answer(n, reader, writer)

    assert await connections_of_two_calls(too_much) == [0, 1]


async def test_a_connection_idle_past_keepalive_is_not_used_again() -> None:
    opened: list[int] = []
    exchange = H1Exchange(keepalive=0.2)
    limits = AttemptTimeout(connect=1.0, read=1.0, pool=1.0, total=2.0)
    async with controller(answer, opened=opened) as (url, _):
        path = f"{url}/v1/controller/version"
        assert (await exchange.send("GET", path, None, {}, limits))[0] == 200
        assert (await exchange.send("GET", path, None, {}, limits))[0] == 200  # at once: the same connection
        await asyncio.sleep(0.3)
        assert (await exchange.send("GET", path, None, {}, limits))[0] == 200
        await exchange.aclose()
    assert opened == [0, 2]


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    async def garbage(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        return True

    async with controller(garbage) as (url, _), client(url) as c:
        seconds = await fails(c.controller_version(), LinstorUnavailable, httpx.RemoteProtocolError)
    assert seconds < 1.0, seconds


async def test_a_reset_in_the_middle_of_an_answer_is_a_read_error() -> None:
    async def reset(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[")
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        return False

    async with controller(reset) as (url, _), client(url) as c:
        await fails(c.controller_version(), LinstorUnavailable, httpx.ReadError)


async def test_a_cancelled_call_frees_its_connection_slot() -> None:
    """The only connection allowed is hung when its call is cancelled: the next call gets the slot, on a new
    connection (the hung one's state is unknown), and its answer."""

    async def hang_first(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            await asyncio.sleep(3600)
        return await answer(n, reader, writer)

    opened: list[int] = []
    async with (
        controller(hang_first, opened=opened) as (url, seen),
        client(url, connect=0.5, max_connections=1) as c,
    ):
        hung = asyncio.create_task(c.controller_version())
        while not seen:
            await asyncio.sleep(0.01)
        hung.cancel()
        error, _ = await timed(c.controller_version())
    assert error is None, repr(error)
    assert opened == [0, 1]


async def test_a_header_that_would_split_the_request_is_never_sent() -> None:
    async with (
        controller(answer) as (url, seen),
        LinstorClient(ConnectionConfig(urls=(url,), bearer_token="tok\r\nX-Injected: 1"), retries=0) as c,
    ):
        await fails(c.controller_version(), LinstorUnavailable, httpx.LocalProtocolError)
    assert seen == []


def test_an_idle_connection_is_dropped_before_the_emulator_would_close_it() -> None:
    """uvicorn (the emulator's server) closes a connection idle for timeout_keep_alive: a request sent on it
    just then is lost, and a POST is not sent again. The exchange stops reusing one well before."""
    server_closes_after = uvicorn.Config("app.main:create_app").timeout_keep_alive
    assert H1Exchange()._keepalive <= server_closes_after - 1
