"""The default exchange (app/linstor/aio.py) against real sockets on 127.0.0.1: timeouts, refusals, drops,
and the bytes it puts on the wire.

The session's failure tests (test_client_failures.py) inject httpx exceptions through a MockTransport; these
check that the exchange it really uses raises them, each within its timeout, not the deadline.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest

from app.linstor import LinstorClient, LinstorTimeout, LinstorUnavailable
from app.linstor.config import ConnectionConfig
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
async def controller(reply: Reply, heads: list[bytes] | None = None) -> AsyncIterator[tuple[str, list[str]]]:
    """A fake controller on 127.0.0.1: `reply(n, ...)` answers its n-th request (from 1) and says whether to
    keep the connection; yields its URL and the request lines it read (whole heads into `heads`)."""
    seen: list[str] = []
    handlers: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
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


# ---- timeouts ----------------------------------------------------------------------------------------


async def test_read_timeout_against_a_hung_controller() -> None:
    """httpx's read timeout, not the (much longer) deadline, ends a wait for an answer that never comes."""
    async with controller(hang) as (url, seen), client(url, read=0.3) as c:
        error, seconds = await timed(c.controller_version())
    assert isinstance(error, LinstorTimeout), error
    assert isinstance(error.__cause__, httpx.ReadTimeout)
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
        error, seconds = await timed(c.list_resource_definitions())
    assert isinstance(error, LinstorTimeout), error
    assert isinstance(error.__cause__, httpx.ReadTimeout)
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
        error, seconds = await timed(c.controller_version())
        hung.cancel()
    assert isinstance(error, LinstorTimeout), error
    assert isinstance(error.__cause__, httpx.PoolTimeout)
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
        error, _ = await timed(c.controller_version())
    assert isinstance(error, LinstorUnavailable), error
    assert isinstance(error.__cause__, httpx.ConnectError)


async def drop_the_second(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Answer the first request on a kept-alive connection, hang up on the second without an answer."""
    if n == 2:
        return False
    writer.write(ok())
    await writer.drain()
    return True


async def test_a_dropped_request_is_not_sent_again_behind_the_session() -> None:
    """aiohttp resends a GET dropped on a kept-alive connection; retries are the session's (none here)."""
    async with controller(drop_the_second) as (url, seen), client(url) as c:
        await c.controller_version()
        error, _ = await timed(c.controller_version())
    assert isinstance(error, LinstorUnavailable), error
    assert isinstance(error.__cause__, httpx.RemoteProtocolError)
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
