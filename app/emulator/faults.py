"""Fault rules, the book that holds them, and the pure-ASGI wrapper that applies them and reports every /v1
exchange to an observer."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.emulator import rc

ACTIONS = ("latency", "error", "hang", "drop")


@dataclass(slots=True)
class FaultRule:
    """One fault: fires on requests whose method and path match, `remaining` times (None = forever)."""

    action: str
    method: str
    path: re.Pattern[str]
    remaining: int | None
    seconds: float
    status: int
    body: Any
    expires_at: float | None = None

    def matches(self, method: str, path: str) -> bool:
        """Method (`*` = any) and a regex search on the decoded path."""
        return self.method in ("*", method) and self.path.search(path) is not None and not self.expired()

    def expired(self) -> bool:
        """True once a time-limited rule has run out."""
        return self.expires_at is not None and time.monotonic() >= self.expires_at

    def expires_in(self, seconds: float) -> FaultRule:
        """Limit the rule to the next `seconds`."""
        self.expires_at = time.monotonic() + seconds
        return self

    def describe(self) -> dict[str, Any]:
        """JSON view for GET /_emulator/faults."""
        return {
            "action": self.action,
            "method": self.method,
            "path": self.path.pattern,
            "times": self.remaining,
            "seconds": self.seconds,
            "status": self.status,
        }


class FaultBook:
    """The fault rules in force: added through the state (control routes, tests), taken by the middleware."""

    def __init__(self) -> None:
        # its own lock: the rules are no part of the cluster, so a request's fault check never waits for a
        # handler that holds the state's lock
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def __bool__(self) -> bool:
        """True while any rule is held (the middleware's check before it takes the lock)."""
        return bool(self._rules)

    def rules(self) -> list[FaultRule]:
        """The rules held, oldest first."""
        with self._lock:
            return list(self._rules)

    def add(
        self,
        *,
        action: str,
        method: str = "*",
        path: str = ".*",
        times: int | None = None,
        seconds: float = 0.0,
        status: int = 500,
        body: Any = None,
    ) -> FaultRule:
        """Add a fault rule: action `latency`, `error`, `hang` or `drop`; `times=None` fires forever."""
        rule = FaultRule(
            action=action,
            method=method.upper(),
            path=re.compile(path),
            remaining=times,
            seconds=seconds,
            status=status,
            body=body,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching the request, consuming one of its shots."""
        with self._lock:
            self._rules[:] = [rule for rule in self._rules if not rule.expired()]
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule
        return None


@dataclass(frozen=True, slots=True)
class ExchangeRecord:
    """One request/response pair under /v1, as the observer sees it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    request_body: bytes
    status: int
    response_body: bytes
    content_type: str
    route: str | None


class ConnectionDropped(Exception):
    """Raised when a `drop` fault cannot reach the transport (in-process ASGI clients)."""


def _drop_transport(send: Send) -> bool:
    # uvicorn's `send` is a bound method of the request cycle, which holds the asyncio transport: aborting it
    # closes the TCP connection without any response bytes (the cycle then sees `disconnected`, stays quiet)
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        return False
    transport.abort()
    return True


async def _delayed(seconds: float, receive: Receive) -> Receive:
    """Take the whole request, then wait: like a slow controller, the request is carried out even when
    the client has given up meanwhile (a timed-out create still creates)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await asyncio.sleep(seconds)
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        return await receive()

    return replay


class EmulatorMiddleware:
    """Applies fault rules (outside /_emulator) and reports /v1 exchanges to the observer."""

    def __init__(
        self, app: ASGIApp, faults: FaultBook, observer: Callable[[ExchangeRecord], None] | None = None
    ) -> None:
        self.app = app
        self.faults = faults
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith("/_emulator") and self.faults:
            rule = self.faults.take(scope["method"], path)
            if rule is not None and rule.action == "latency":
                receive = await _delayed(rule.seconds, receive)
            elif rule is not None and await self._apply(rule, receive, send):
                return
        if self.observer is None or not path.startswith("/v1"):
            await self.app(scope, receive, send)
            return
        await self._observed(scope, receive, send, self.observer)

    async def _apply(self, rule: FaultRule, receive: Receive, send: Send) -> bool:
        """Run one fault; True when the request is finished (answered, hung up or dropped)."""
        if rule.action == "error":
            body = rule.body
            if body is None:
                body = [rc.entry(rc.FAIL_UNKNOWN_ERROR, "An unknown error occurred.")]
            payload = body.encode() if isinstance(body, str) else orjson.dumps(body)
            await send(
                {
                    "type": "http.response.start",
                    "status": rule.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(payload)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return True
        if rule.action == "hang":
            # a hang with `seconds` > 0 ends in a dropped connection (an unanswered request cannot return)
            if await _hang(receive, rule.seconds):
                return True
        if not _drop_transport(send):
            raise ConnectionDropped("emulator fault: connection dropped")
        return True

    async def _observed(
        self, scope: Scope, receive: Receive, send: Send, observer: Callable[[ExchangeRecord], None]
    ) -> None:
        chunks: list[bytes] = []
        out: list[bytes] = []
        status = 0
        content_type = ""

        async def recv() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def snd(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # observe before the last byte leaves: a client that got its answer can rely on the
                    # observer having seen it (the per-test spec check runs right after the test)
                    observer(record())
            await send(message)

        def record() -> ExchangeRecord:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            return ExchangeRecord(
                method=scope["method"],
                path=scope["path"],
                query=query,
                request_body=b"".join(chunks),
                status=status,
                response_body=b"".join(out),
                content_type=content_type,
                route=scope.get("emulator.route"),
            )

        await self.app(scope, recv, snd)


async def _hang(receive: Receive, seconds: float) -> bool:
    """Never answer: wait for the client to go away (True), or `seconds` > 0 to give up (False)."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    if seconds > 0:
        try:
            await asyncio.wait_for(until_disconnect(), timeout=seconds)
        except TimeoutError:
            return False
    else:
        await until_disconnect()
    return True
