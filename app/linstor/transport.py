"""The session under the LINSTOR client: failover, retries, deadlines, error mapping and decoding, above an
exchange that only carries bytes (exchange.py: h1.py's connections in production, an injected httpx
transport in tests). Every call takes the same path, whichever exchange carries it.

Calls fail over to the next controller on connection errors (the request never reached a controller, so
this is safe for every method, as golinstor does), and retry with backoff on operational errors for
idempotent methods only (GET, PUT, DELETE). Answers become decoded JSON or a typed LinstorError.

Deadlines, not retries multiplied by timeouts: the calls of one operation (`linstor_operation`, opened where
a domain operation starts) share its deadline, counted from its start. An operation has the read deadline
until it sends its first mutation, then the write deadline; a read never waits longer than the read
deadline, even inside a write. Every attempt's timeout is cut to the time left and no retry starts past
the deadline, so a hung controller costs a request at most its deadline, whatever the retries.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Any, NoReturn, Protocol, Self, TypeVar
from urllib.parse import urlencode

import httpx
import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.linstor.config import ConnectionConfig
from app.linstor.errors import (
    LinstorAccessDenied,
    LinstorError,
    LinstorOperationalError,
    LinstorProtocolError,
    LinstorServerError,
    LinstorTimeout,
    LinstorUnavailable,
    error_for,
)
from app.linstor.exchange import AttemptTimeout, Exchange, HttpxExchange
from app.linstor.h1 import H1Exchange
from app.linstor.models import ApiCallRc

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
READS = frozenset({"GET", "HEAD"})
USER_AGENT = "linstor-names/0.1"
# Answers bigger than this are decoded in a worker thread so that a full sync of a large cluster never
# stalls the event loop (a thread hop costs ~0.1 ms).
OFFLOAD_BYTES = 256 * 1024

_rc_list = TypeAdapter(list[ApiCallRc])
# query parameters as (name, value) pairs: LINSTOR repeats `props`, `resource_definitions`, ...
Params = Sequence[tuple[str, str | int]] | None


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed per call kind: connecting, reading (GET), and mutations (which block on satellites)."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 300.0

    def for_attempt(self, method: str, left: float, controllers: int) -> AttemptTimeout:
        """The timeouts of one attempt, cut to the `left` seconds of its deadline.

        Connecting (and waiting for a free connection) gets its share of the time left among the
        `controllers` still to try, so that one black-holed controller cannot use up the deadline before
        failover reaches the next.
        """
        read = self.read if method == "GET" else self.write
        connect = min(self.connect, left / max(controllers, 1))
        return AttemptTimeout(connect=connect, read=min(read, left), pool=connect, total=left)


@dataclass(frozen=True)
class Deadlines:
    """Seconds the LINSTOR work of one operation may take in all, retries included."""

    read: float = 5.0  # an operation that only reads, and every single read
    write: float = 600.0  # an operation once it has sent a mutation: spawns, clones, restores block long


@dataclass(slots=True)
class Operation:
    """The LINSTOR work of one domain operation: when it started, whether it wrote, an explicit end."""

    started: float
    wrote: bool = False
    ends: float | None = None


_operation: ContextVar[Operation | None] = ContextVar("linstor_operation", default=None)


@contextmanager
def linstor_operation() -> Iterator[Operation]:
    """The LINSTOR calls inside are one operation's and share its deadline; a nested one joins the outer."""
    current = _operation.get()
    if current is not None:
        yield current
        return
    op = Operation(started=time.monotonic())
    token = _operation.set(op)
    try:
        yield op
    finally:
        _operation.reset(token)


@contextmanager
def linstor_deadline(seconds: float) -> Iterator[None]:
    """The LINSTOR calls inside end within `seconds` from now, or an outer explicit deadline if sooner.

    It replaces the read and write deadlines: shorter for a probe (/readyz), longer for a background job
    that reads the whole cluster.
    """
    now = time.monotonic()
    outer = _operation.get()
    ends = now + seconds
    if outer is not None and outer.ends is not None:
        ends = min(ends, outer.ends)
    op = replace(outer, ends=ends) if outer is not None else Operation(started=now, ends=ends)
    token = _operation.set(op)
    try:
        yield
    finally:
        _operation.reset(token)


# LINSTOR's fixed path words; any other segment is a name. After a collection of NAMED, a segment is a name
# whatever it reads (an RD may be called "snapshots"), and becomes its placeholder.
NAMED = {
    "resource-groups": "{rg}",
    "resource-definitions": "{rd}",
    "snapshots": "{snapshot}",
    "clone": "{clone}",
    "snapshot-rollback": "{snapshot}",
    "snapshot-restore-volume-definition": "{snapshot}",
    "snapshot-restore-resource": "{snapshot}",
    "volume-definitions": "{volume}",
    "resources": "{node}",
    "nodes": "{node}",
    "storage-pools": "{pool}",
}
WORDS = frozenset(NAMED) | {"v1", "controller", "version", "view", "spawn", "autoplace"}


@lru_cache(maxsize=4096)  # paths repeat (the same few RDs looked up again); the cache bounds its memory
def endpoint_template(path: str) -> str:
    """`path` with its names replaced by placeholders: /v1/resource-definitions/{rd}/snapshots/{snapshot}."""
    out: list[str] = []
    for segment in path.split("/"):
        previous = out[-1] if out else ""
        if previous in NAMED and segment:
            out.append(NAMED[previous])
        elif segment and segment not in WORDS:
            out.append("{name}")  # unknown words too: a metric label must never carry a name
        else:
            out.append(segment)
    return "/".join(out)


class CallObserver(Protocol):
    """Told of each LINSTOR call when it ends, retries included; app/metrics.py counts them."""

    def linstor_call(self, method: str, endpoint: str, seconds: float, error: LinstorError | None) -> None:
        """One call of `method` on the `endpoint` template took `seconds`; `error` when it failed."""
        ...


class LinstorSession:
    """Sends LINSTOR API calls and decodes their answers (the base of LinstorClient)."""

    def __init__(
        self,
        config: ConnectionConfig | None = None,
        *,
        timeouts: Timeouts | None = None,
        deadlines: Deadlines | None = None,
        retries: int = 3,
        backoff: float = 0.1,
        max_connections: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        config = config or ConnectionConfig()
        self._observer = observer
        self._controllers = list(config.urls)
        self._timeouts = timeouts or Timeouts()
        self._deadlines = deadlines or Deadlines()
        self._retries = retries
        self._backoff = backoff
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        if config.username:  # HTTP Basic wins over a token, as httpx's auth= did
            basic = f"{config.username}:{config.password or ''}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(basic).decode()}"
        self._headers = headers
        self._json_headers = {**headers, "Content-Type": "application/json"}
        # No proxy from the environment, no redirects, no cookies: golinstor and python-linstor reach the
        # controller directly too, and LINSTOR sends neither redirects nor cookies.
        self._exchange: Exchange
        if transport is None:
            # httpx's own pool collapses under concurrency (encode/httpx#3215), and its Request, URL and
            # Response objects cost more CPU than the rest of a call; aiohttp's client cost more than the
            # rest of a mutation (h1.py): prebuilt bytes on asyncio's connections, parsed by httptools
            self._exchange = H1Exchange(ssl_context=config.ssl_context, max_connections=max_connections)
        else:
            self._exchange = HttpxExchange(transport)

    @property
    def controller(self) -> str:
        """The controller currently in use."""
        return self._controllers[0]

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._exchange.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send_once(
        self, method: str, path: str, params: Params, body: Any, ends: float
    ) -> tuple[int, bytes, str]:
        """Send to the first controller that accepts a connection before `ends`; move it to the front.

        The status and body of its answer, and which controller gave it.
        """
        content = orjson.dumps(body) if body is not None else None
        headers = self._json_headers if content is not None else self._headers
        # encoded as httpx encodes params: LINSTOR repeats `props`, and a filter holds / = & +
        target = f"{path}?{urlencode(params)}" if params else path
        last: Exception | None = None
        controllers = list(self._controllers)
        for i, base in enumerate(controllers):
            left = ends - time.monotonic()
            if left <= 0:
                raise LinstorTimeout(
                    f"{method} {path}: no time left of the request's deadline", controller=base
                ) from last
            timeout = self._timeouts.for_attempt(method, left, len(controllers) - i)
            try:
                # the exchange's timeouts bound each phase, each read, and the whole attempt (`left`)
                status, answer = await self._exchange.send(method, base + target, content, headers, timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc
                log.warning("LINSTOR controller %s unreachable: %s", base, exc)
                continue
            except (httpx.TimeoutException, TimeoutError) as exc:
                raise LinstorTimeout(
                    f"{method} {path}: LINSTOR did not answer in time", controller=base
                ) from exc
            except httpx.TransportError as exc:
                raise LinstorUnavailable(f"{method} {path}: {exc!r}", controller=base) from exc
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s%s: %d", method, base, target, status)
            if base != self._controllers[0]:
                self._controllers.remove(base)
                self._controllers.insert(0, base)
            return status, answer, base
        raise LinstorUnavailable(
            f"no LINSTOR controller reachable ({', '.join(self._controllers)}): {last}"
        ) from last

    def _ends(self, op: Operation, method: str) -> float:
        """When a call of `op` must be done: the deadline this call and its retries share."""
        if op.ends is not None:
            return op.ends
        if method not in READS:
            op.wrote = True
        ends = op.started + (self._deadlines.write if op.wrote else self._deadlines.read)
        if method in READS:
            ends = min(ends, time.monotonic() + self._deadlines.read)
        return ends

    async def _request(
        self,
        method: str,
        path: str,
        decode: Callable[[bytes], T],
        *,
        params: Params = None,
        body: Any = None,
    ) -> T:
        """One API call: its 2xx answer's body through `decode` (a LinstorProtocolError if it does not
        fit), or a typed LinstorError."""
        if self._observer is None:
            return await self._decoded(method, path, params, body, decode)
        started = time.perf_counter()
        try:
            data = await self._decoded(method, path, params, body, decode)
        except LinstorError as exc:
            self._observer.linstor_call(method, endpoint_template(path), time.perf_counter() - started, exc)
            raise
        self._observer.linstor_call(method, endpoint_template(path), time.perf_counter() - started, None)
        return data

    async def _decoded(
        self, method: str, path: str, params: Params, body: Any, decode: Callable[[bytes], T]
    ) -> T:
        content = await self._attempts(method, path, params, body)
        if len(content) > OFFLOAD_BYTES:
            # a list of 100k RDs is tens of MB: parse it off the event loop
            return await asyncio.to_thread(decode, content)
        return decode(content)

    async def _attempts(self, method: str, path: str, params: Params, body: Any) -> bytes:
        """The attempts of one call, within its operation's deadline: the body of its 2xx answer."""
        # a call outside any operation is an operation of its own (no context needed: nothing nests in it)
        op = _operation.get() or Operation(started=time.monotonic())
        ends = self._ends(op, method)
        attempt = 0
        while True:
            try:
                status, content, controller = await self._send_once(method, path, params, body, ends)
                if status < 300:
                    return content
                self._refuse(method, path, status, content, controller)
            except LinstorOperationalError as exc:
                delay = self._backoff * 2**attempt
                retry = method in IDEMPOTENT and attempt < self._retries
                if not retry or time.monotonic() + delay >= ends:
                    # asking again sooner than one read deadline would likely meet the same controller
                    exc.retry_after = self._deadlines.read
                    raise
                attempt += 1
                log.warning(
                    "retry %d/%d of %s %s in %.2fs: %s", attempt, self._retries, method, path, delay, exc
                )
                await asyncio.sleep(delay)

    def _refuse(self, method: str, path: str, status: int, content: bytes, controller: str) -> NoReturn:
        """Raise the error of an answer that is not 2xx (3xx too: the session never follows a redirect,
        and LINSTOR sends none)."""
        try:
            data = orjson.loads(content) if content else None
        except orjson.JSONDecodeError as exc:
            denied = error_for([], status=status, controller=controller)
            if isinstance(denied, LinstorAccessDenied):
                raise denied from exc
            if status >= 500:
                raise LinstorServerError(
                    f"{method} {path}: LINSTOR answered {status} with a body that is not JSON",
                    status=status,
                    controller=controller,
                ) from exc
            raise LinstorProtocolError(
                f"{method} {path}: answer {status} is not JSON", controller=controller
            ) from exc
        err = error_for(self._error_rcs(data), status=status, controller=controller)
        if err is not None:
            raise err
        if status >= 500:
            raise LinstorServerError(
                f"{method} {path}: LINSTOR answered {status}", status=status, controller=controller
            )
        raise LinstorProtocolError(
            f"{method} {path}: LINSTOR answered {status} without an ApiCallRc error", controller=controller
        )

    def _error_rcs(self, data: Any) -> list[ApiCallRc]:
        """The ApiCallRc entries of an error answer: an RC list, or the `messages` of a CloneStarted."""
        if isinstance(data, list):
            return self._rcs(data)
        if isinstance(data, dict) and isinstance(data.get("messages"), list):
            return self._rcs(data["messages"])
        return []

    def _rcs(self, data: Any) -> list[ApiCallRc]:
        try:
            return _rc_list.validate_python(data)
        except ValidationError as exc:
            raise LinstorProtocolError(f"malformed ApiCallRc list: {exc.error_count()} errors") from exc

    async def _json(self, method: str, path: str, *, params: Params = None, body: Any = None) -> Any:
        """A call whose 2xx answer is any JSON (None when empty)."""
        return await self._request(method, path, partial(_loads, method, path), params=params, body=body)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        body: Any = None,
    ) -> list[ApiCallRc]:
        """A mutating call that answers with an ApiCallRc list; raises on any error entry."""
        data = await self._json(method, path, params=params, body=body)
        rcs = self._rcs(data if data is not None else [])
        err = error_for(rcs, status=200)
        if err is not None:
            raise err
        return rcs

    async def _get(self, model: type[M], path: str, *, params: Params = None) -> M:
        """A GET whose answer is one `model`, validated straight from the body's bytes."""
        return await self._request(
            "GET", path, partial(_validated, model.model_validate_json, path), params=params
        )

    async def _list(self, adapter: TypeAdapter[list[M]], path: str, *, params: Params = None) -> list[M]:
        """A GET whose answer is a list of models, validated straight from the body's bytes."""
        return await self._request(
            "GET", path, partial(_validated, adapter.validate_json, path), params=params
        )

    async def _get_decoded(self, path: str, decode: Callable[[bytes], T], *, params: Params = None) -> T:
        """A GET whose 2xx body `decode` reads (a full sync's pages, decoded leaner by msgspec); deadline,
        failover, retries and the errors of any other answer are those of every call."""
        return await self._request("GET", path, decode, params=params)


def _loads(method: str, path: str, content: bytes) -> Any:
    """A 2xx answer's JSON; None for an empty body."""
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError as exc:
        raise LinstorProtocolError(f"{method} {path}: answer is not JSON") from exc


def _validated(validate: Callable[[bytes], T], path: str, content: bytes) -> T:
    """`validate` (pydantic's validate_json) of a 2xx answer; another shape is a LinstorProtocolError."""
    try:
        return validate(content)
    except ValidationError as exc:
        raise LinstorProtocolError(f"GET {path}: unexpected answer: {exc.error_count()} errors") from exc
