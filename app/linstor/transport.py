"""The transport under the LINSTOR client: one httpx.AsyncClient per process, failover, retries, decoding.

Calls fail over to the next controller on connection errors (the request never reached a controller, so
this is safe for every method, as golinstor does), and retry with backoff on operational errors for
idempotent methods only (GET, PUT, DELETE). Answers become decoded JSON or a typed LinstorError.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx
import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.linstor.config import ConnectionConfig
from app.linstor.errors import (
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

    def for_method(self, method: str) -> httpx.Timeout:
        """The httpx timeout for one request."""
        read = self.read if method == "GET" else self.write
        return httpx.Timeout(read, connect=self.connect, pool=self.connect)


class LinstorSession:
    """Sends LINSTOR API calls and decodes their answers (the base of LinstorClient)."""

    def __init__(
        self,
        config: ConnectionConfig | None = None,
        *,
        timeouts: Timeouts | None = None,
        retries: int = 3,
        backoff: float = 0.1,
        max_connections: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        config = config or ConnectionConfig()
        self._controllers = list(config.urls)
        self._timeouts = timeouts or Timeouts()
        self._retries = retries
        self._backoff = backoff
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        auth = httpx.BasicAuth(config.username, config.password or "") if config.username else None
        self._http = httpx.AsyncClient(
            transport=transport,
            verify=config.ssl_context if config.ssl_context is not None else True,
            headers=headers,
            auth=auth,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
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

    async def _send_once(self, method: str, path: str, params: Params, body: Any) -> httpx.Response:
        """Send to the first controller that accepts a connection; move it to the front."""
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        timeout = self._timeouts.for_method(method)
        query = tuple(params) if params else None  # a tuple: httpx's params type is covariant only there
        last: Exception | None = None
        for base in list(self._controllers):
            try:
                response = await self._http.request(
                    method, base + path, params=query, content=content, headers=headers, timeout=timeout
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc
                log.warning("LINSTOR controller %s unreachable: %s", base, exc)
                continue
            except httpx.TimeoutException as exc:
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

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        body: Any = None,
    ) -> Any:
        """One API call: the decoded JSON answer, or a typed LinstorError."""
        attempt = 0
        while True:
            try:
                response = await self._send_once(method, path, params, body)
                if len(response.content) > OFFLOAD_BYTES:
                    # a list of 100k RDs is tens of MB: parse it off the event loop
                    return await asyncio.to_thread(self._decode, method, path, response)
                return self._decode(method, path, response)
            except LinstorOperationalError as exc:
                if method not in IDEMPOTENT or attempt >= self._retries:
                    raise
                attempt += 1
                delay = self._backoff * 2 ** (attempt - 1)
                log.warning(
                    "retry %d/%d of %s %s in %.2fs: %s", attempt, self._retries, method, path, delay, exc
                )
                await asyncio.sleep(delay)

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        controller = str(response.request.url.copy_with(path="/", query=None)).rstrip("/")
        try:
            data = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError as exc:
            if status >= 500:
                raise LinstorServerError(
                    f"{method} {path}: LINSTOR answered {status} with a body that is not JSON",
                    status=status,
                    controller=controller,
                ) from exc
            raise LinstorProtocolError(
                f"{method} {path}: answer {status} is not JSON", controller=controller
            ) from exc
        if status >= 400 or (300 <= status < 400):
            rcs = self._error_rcs(data)
            err = error_for(rcs, status=status, controller=controller) if rcs else None
            if err is not None:
                raise err
            if status >= 500:
                raise LinstorServerError(
                    f"{method} {path}: LINSTOR answered {status}", status=status, controller=controller
                )
            raise LinstorProtocolError(
                f"{method} {path}: LINSTOR answered {status} without an ApiCallRc error",
                controller=controller,
            )
        return data

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
