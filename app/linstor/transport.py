"""The transport under the LINSTOR client: httpx requests on one aiohttp pool a process (app/linstor/aio.py),
failover, retries, decoding.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Protocol, Self, TypeVar

import httpx
import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.linstor.aio import AiohttpTransport
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
from app.linstor.models import ApiCallRc

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
READS = frozenset({"GET", "HEAD"})
USER_AGENT = "linstor-names/0.1"
# Answers bigger than this are decoded, and lists longer than this validated, in a worker thread so that
# a full sync of a large cluster never stalls the event loop (a thread hop costs ~0.1 ms).
OFFLOAD_BYTES = 256 * 1024
OFFLOAD_ITEMS = 500

_rc_list = TypeAdapter(list[ApiCallRc])
# query parameters as (name, value) pairs: LINSTOR repeats `props`, `resource_definitions`, ...
Params = Sequence[tuple[str, str | int]] | None


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed per call kind: connecting, reading (GET), and mutations (which block on satellites)."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 300.0

    def for_attempt(self, method: str, left: float, controllers: int) -> httpx.Timeout:
        """The httpx timeout of one attempt, cut to the `left` seconds of its deadline.

        Connecting gets its share of the time left among the `controllers` still to try, so that one
        black-holed controller cannot use up the deadline before failover reaches the next.
        """
        read = self.read if method == "GET" else self.write
        connect = min(self.connect, left / max(controllers, 1))
        return httpx.Timeout(min(read, left), connect=connect, pool=connect)


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
        if transport is None:
            # httpx's own pool collapses under concurrency (encode/httpx#3215): aiohttp's carries the calls
            transport = AiohttpTransport(ssl_context=config.ssl_context, max_connections=max_connections)
        self._transport = transport
        # The calls go to the transport directly (_exchange); the client is kept for callers that want
        # httpx's whole API on the same connections, and it closes the transport. No proxy from the
        # environment: golinstor and python-linstor reach the controller directly too.
        self._http = httpx.AsyncClient(
            transport=transport, headers=headers, follow_redirects=False, trust_env=False
        )

    @property
    def controller(self) -> str:
        """The controller currently in use."""
        return self._controllers[0]

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send_once(
        self, method: str, path: str, params: Params, body: Any, ends: float
    ) -> httpx.Response:
        """Send to the first controller that accepts a connection before `ends`; move it to the front."""
        content = orjson.dumps(body) if body is not None else None
        headers = self._json_headers if content is not None else self._headers
        last: Exception | None = None
        controllers = list(self._controllers)
        for i, base in enumerate(controllers):
            left = ends - time.monotonic()
            if left <= 0:
                raise LinstorTimeout(
                    f"{method} {path}: no time left of the request's deadline", controller=base
                ) from last
            timeout = self._timeouts.for_attempt(method, left, len(controllers) - i)
            request = httpx.Request(
                method,
                httpx.URL(base + path, params=params or None),
                headers=headers,
                content=content,
                extensions={"timeout": timeout.as_dict()},
            )
            try:
                # httpx's timeouts bound each phase (and each read); this bounds the whole attempt
                async with asyncio.timeout(left):
                    response = await self._exchange(request)
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
            if base != self._controllers[0]:
                self._controllers.remove(base)
                self._controllers.insert(0, base)
            return response
        raise LinstorUnavailable(
            f"no LINSTOR controller reachable ({', '.join(self._controllers)}): {last}"
        ) from last

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """One request on the transport, its answer read whole.

        httpx.AsyncClient.send would add ~0.2 ms of CPU a call (URL merging, cookie extraction, the auth
        flow, a log line) for nothing the session uses: it never follows redirects and keeps no cookies.
        """
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s: %d", request.method, request.url, response.status_code)
        return response

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
        *,
        params: Params = None,
        body: Any = None,
        raw: bool = False,
    ) -> Any:
        """One API call: the decoded JSON answer (`raw`: a 2xx body's bytes), or a typed LinstorError."""
        if self._observer is None:
            return await self._attempts(method, path, params, body, raw)
        started = time.perf_counter()
        try:
            data = await self._attempts(method, path, params, body, raw)
        except LinstorError as exc:
            self._observer.linstor_call(method, endpoint_template(path), time.perf_counter() - started, exc)
            raise
        self._observer.linstor_call(method, endpoint_template(path), time.perf_counter() - started, None)
        return data

    async def _attempts(self, method: str, path: str, params: Params, body: Any, raw: bool = False) -> Any:
        """The attempts of one call, within its operation's deadline."""
        with linstor_operation() as op:  # a call outside any operation is an operation of its own
            ends = self._ends(op, method)
            attempt = 0
            while True:
                try:
                    response = await self._send_once(method, path, params, body, ends)
                    if raw and response.is_success:
                        return response.content
                    if len(response.content) > OFFLOAD_BYTES:
                        # a list of 100k RDs is tens of MB: parse it off the event loop
                        return await asyncio.to_thread(self._decode, method, path, response)
                    return self._decode(method, path, response)
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

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            data = orjson.loads(response.content) if response.content else None
            if status < 300:
                return data
        except orjson.JSONDecodeError as exc:
            controller = _controller_of(response)
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
        # 3xx too: the session never follows a redirect, and LINSTOR sends none
        controller = _controller_of(response)
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

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        body: Any = None,
    ) -> list[ApiCallRc]:
        """A mutating call that answers with an ApiCallRc list; raises on any error entry."""
        data = await self._request(method, path, params=params, body=body)
        rcs = self._rcs(data if data is not None else [])
        err = error_for(rcs, status=200)
        if err is not None:
            raise err
        return rcs

    async def _get(self, model: type[M], path: str, *, params: Params = None) -> M:
        data = await self._request("GET", path, params=params)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise LinstorProtocolError(f"GET {path}: unexpected answer: {exc}") from exc

    async def _list(
        self,
        adapter: TypeAdapter[list[M]],
        path: str,
        *,
        params: Params = None,
    ) -> list[M]:
        data = await self._request("GET", path, params=params)
        if isinstance(data, list) and len(data) > OFFLOAD_ITEMS:
            return await asyncio.to_thread(self._validate_list, adapter, path, data)
        return self._validate_list(adapter, path, data)

    @staticmethod
    def _validate_list(adapter: TypeAdapter[list[M]], path: str, data: Any) -> list[M]:
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise LinstorProtocolError(f"GET {path}: unexpected answer: {exc.error_count()} errors") from exc

    async def _get_raw(self, path: str, *, params: Params = None) -> bytes:
        """A GET whose 2xx body comes back undecoded, for a caller that decodes it leaner (a full sync's
        pages); deadline, failover, retries and the errors of any other answer are those of every call."""
        data: bytes = await self._request("GET", path, params=params, raw=True)
        return data


def _controller_of(response: httpx.Response) -> str:
    """The base URL of the controller that sent `response` (for errors only: it costs a URL parse)."""
    return str(response.request.url.copy_with(path="/", query=None)).rstrip("/")
