"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a POST, PATCH or DELETE retried with the
key of an earlier request is answered that request's answer, never run twice. A pure ASGI middleware.

- A request with a key is fingerprinted (method, path with query, a hash of the body) and claims the key:
  one row in the cache database, inserted under the key as primary key, so of two requests on any replicas
  sharing the cache exactly one runs. The other is answered 409 `idempotency_key_in_flight` (Retry-After)
  while the first runs, then the first's stored answer with `Idempotent-Replayed: true`. The same key with
  another fingerprint is 422 `idempotency_key_reused`.
- A key is scoped by itself alone: the service has no authentication yet, so its clients share one key
  space and must use unique keys (UUIDs). With authentication the principal becomes part of the scope.
- Without a cache the header is refused (422 `idempotency_unavailable`), never ignored: a client that sends
  a key relies on it, and running its retry again is the very failure it guards against.
- An answer is kept only when it is final. A 5xx (LINSTOR unavailable, a timeout whose outcome is unknown)
  or a 409 `operation_in_progress` (another writer held the identity: nothing ran) releases the key, so
  that a retry with it runs again instead of being replayed the failure. That retry is safe because the
  domain is crash-consistent: a create's identity claim, its pending marks and `adopt_unfinished`
  (app/volumes.py) make the retry adopt what a timed-out first attempt left, never make a second RD.
- The answer is stored before it is sent: a client that saw an answer is replayed that same answer.
- A key whose request never answers (its replica crashed) is freed after the write deadline plus
  LEASE_MARGIN, the longest a request runs; answers are replayed for LINSTOR_NAMES_IDEMPOTENCY_EXPIRY
  seconds. Expired keys are purged by a request now and then (PURGE_INTERVAL).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import PROBLEM, problem
from app.cache.queries import KeyClaim, StoredAnswer
from app.cache.store import CacheStore
from app.errors import Conflict, InvalidInput, ServiceError
from app.naming import whole
from app.settings import Settings

log = logging.getLogger(__name__)

METHODS = frozenset({"POST", "PATCH", "DELETE"})
HEADER = b"idempotency-key"
REPLAYED = "Idempotent-Replayed"
# what a replay repeats of the first answer's headers: the rest (Content-Length, Date, Server) is per answer
KEPT_HEADERS = frozenset({b"content-type", b"location"})
MAX_KEY_LENGTH = 255
LEASE_MARGIN = 60.0  # seconds beyond the write deadline before a silent holder counts as gone
PURGE_INTERVAL = 60.0  # seconds between two purges of expired keys by one process
IN_FLIGHT_RETRY_AFTER = 1
# 409s that say nothing ran yet: a retry with the key must run, not be replayed them (app/claims.py)
NOT_RUN_CODES = frozenset({"operation_in_progress"})

# RFC 8941 sf-string: printable ASCII in double quotes, with \" and \\ escapes; leniently, a bare token too
_SF_CHAR = r'[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]'
_BARE_CHAR = r"[\x21\x23-\x7e]"  # no quote: `"abc` is a broken sf-string, not a token
_SF_STRING = re.compile(f'"((?:{_SF_CHAR})*)"')
_ESCAPE = re.compile(r'\\(["\\])')
# the rule: 1 to MAX_KEY_LENGTH characters, counted after unescaping (the OpenAPI document states it)
KEY_RE = whole(
    f'"(?:{_SF_CHAR}){{1,{MAX_KEY_LENGTH}}}"|{_BARE_CHAR}{{1,{MAX_KEY_LENGTH}}}', 1, 2 + 2 * MAX_KEY_LENGTH
)


class Idempotency:
    """Replay the answer to a POST, PATCH or DELETE retried with the same Idempotency-Key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._next_purge = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests without a key through; claim, refuse or replay the others."""
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        fields = [value for name, value in scope["headers"] if name == HEADER]
        if not fields:
            await self.app(scope, receive, send)
            return
        try:
            key = parse_key(fields)
            store, settings = _home_of_keys(scope)
        except ServiceError as error:
            await _problem(scope, error)(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before its body arrived: nothing ran, nobody to answer
        fingerprint = fingerprint_of(scope, body)
        try:
            claim = await store.claim_idempotency_key(
                key, fingerprint, lease=settings.linstor_write_deadline + LEASE_MARGIN
            )
        except Exception:  # refused rather than run unprotected: the client asked not to risk a second run
            log.exception("could not claim Idempotency-Key %r", key)
            await _store_unavailable(scope)(scope, receive, send)
            return
        if not claim.held:
            await _answer_for(scope, key, claim, fingerprint)(scope, receive, send)
            return
        held = _Held(store, key, claim.owner, settings.idempotency_expiry)
        await self._run(scope, _replay_body(body, receive), send, held)

    async def _run(self, scope: Scope, receive: Receive, send: Send, held: _Held) -> None:
        """Run the request holding the key; keep its answer if final, else release the key; then send it."""
        answer = _Capture()
        try:
            await self.app(scope, receive, answer.send)
        except BaseException:
            if answer.complete:  # answered, then raised (a background task): the answer stands, and went out
                await held.settle(answer)
                await answer.forward(send)
            else:
                await held.release()
            raise
        if not answer.complete:  # an app that returned without answering; the server answers 500
            await held.release()
            return
        await held.settle(answer)
        await answer.forward(send)
        await self._purge_now_and_then(held.store)

    async def _purge_now_and_then(self, store: CacheStore) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        try:
            purged = await store.purge_idempotency_keys()
        except Exception:  # expired keys only take room; the next purge deletes them
            log.exception("could not purge expired Idempotency-Keys")
            return
        if purged:
            log.info("purged %d expired Idempotency-Keys", purged)


class _Capture:
    """The app's answer, held back until it is stored: ASGI messages in, one status, headers and body out."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []
        self.complete = False

    async def send(self, message: Message) -> None:
        """The app's `send`."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.parts.append(message.get("body", b""))
            self.complete = not message.get("more_body", False)

    def stored(self) -> StoredAnswer:
        """What a replay answers."""
        kept = tuple(
            (n.decode("latin-1"), v.decode("latin-1")) for n, v in self.headers if n.lower() in KEPT_HEADERS
        )
        return StoredAnswer(self.status, kept, b"".join(self.parts))

    def final(self) -> bool:
        """Whether a retry with the key is to be answered this, rather than run again."""
        if self.status >= 500:
            return False
        if self.status == 409 and _header(self.headers, b"content-type").startswith(PROBLEM.encode()):
            try:
                code = json.loads(b"".join(self.parts)).get("code")
            except (ValueError, AttributeError):
                return True
            return code not in NOT_RUN_CODES
        return True

    async def forward(self, send: Send) -> None:
        """Send the answer as the app gave it."""
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b"".join(self.parts)})


def parse_key(fields: list[bytes]) -> str:
    """The key of the Idempotency-Key field: an sf-string (RFC 8941) or a bare token; 422 when malformed."""
    text = fields[0].decode("latin-1").strip() if len(fields) == 1 else ""
    if not KEY_RE.fullmatch(text):
        raise InvalidInput(
            "invalid_idempotency_key",
            f"Send one Idempotency-Key of 1 to {MAX_KEY_LENGTH} printable ASCII characters, "
            'as a quoted string ("…") or a bare token',
        )
    quoted = _SF_STRING.fullmatch(text)
    return _ESCAPE.sub(r"\1", quoted.group(1)) if quoted else text


def fingerprint_of(scope: Scope, body: bytes) -> str:
    """What identifies a request behind its key: method, path, query and the body's bytes, hashed."""
    digest = hashlib.sha256()
    parts = (
        scope["method"].encode(),
        scope["path"].encode(),
        scope["query_string"],
        hashlib.sha256(body).digest(),
    )
    for part in parts:  # length-prefixed: no two different requests hash the same concatenation
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _home_of_keys(scope: Scope) -> tuple[CacheStore, Settings]:
    """The cache holding the keys and the settings, read at request time (the lifespan builds them)."""
    services = getattr(scope["app"].state, "services", None)
    store: CacheStore | None = getattr(services, "cache", None)
    if services is None or store is None:
        raise InvalidInput(
            "idempotency_unavailable",
            "This service runs without a cache database, where Idempotency-Keys are kept: send the request "
            "without the key, or configure LINSTOR_NAMES_CACHE_URL",
        )
    settings: Settings = services.settings
    return store, settings


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (the body limit, outside, bounds it); None when the client left first."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then whatever comes next (a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _answer_for(scope: Scope, key: str, claim: KeyClaim, fingerprint: str) -> Response:
    """The answer to a request whose key another request holds: 422 reused, 409 in flight, or the replay."""
    if claim.fingerprint != fingerprint:
        reused = InvalidInput(
            "idempotency_key_reused",
            f"Idempotency-Key {key!r} was sent with another request (method, path, query or body)",
        )
        return _problem(scope, reused)
    if claim.answer is None:
        running = Conflict(
            "idempotency_key_in_flight", f"The request with Idempotency-Key {key!r} is still running"
        )
        return _problem(scope, running, retry_after=IN_FLIGHT_RETRY_AFTER)
    answer = claim.answer
    # Response adds Content-Length (none for a 204); the stored Content-Type is kept as it was
    replay = Response(answer.body, status_code=answer.status, headers=dict(answer.headers))
    replay.headers[REPLAYED] = "true"
    return replay


class _Held:
    """A key this request holds, and what ends the hold: a kept answer or a release."""

    def __init__(self, store: CacheStore, key: str, owner: str, keep: float) -> None:
        self.store = store
        self.key = key
        self.owner = owner
        self.keep = keep

    async def settle(self, answer: _Capture) -> None:
        """Keep a final answer for replays; release the key after any other."""
        if not answer.final():
            await self.release()
            return
        try:
            # shielded: a cancelled request still records what it did
            stored = await asyncio.shield(
                self.store.answer_idempotency_key(self.key, self.owner, answer.stored(), keep=self.keep)
            )
        except Exception:  # the answer still goes out; a retry gets 409 in flight until the key's lease ends
            log.exception("could not store the answer for Idempotency-Key %r", self.key)
            return
        if not stored:
            log.warning(
                "Idempotency-Key %r was taken over while its request ran; its answer is not kept", self.key
            )

    async def release(self) -> None:
        """Free the key: a retry with it runs again."""
        try:
            await asyncio.shield(self.store.release_idempotency_key(self.key, self.owner))
        except Exception:  # the key stays held until its lease ends: retries are told 409 until then
            log.exception("could not release Idempotency-Key %r", self.key)


def _problem(scope: Scope, error: ServiceError, retry_after: int | None = None) -> Response:
    response = problem(Request(scope), error.status, error.code, error.title, error.detail)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _store_unavailable(scope: Scope) -> Response:
    # not a ServiceError: a 503 of the error tree is LINSTOR's (app/errors.py), and this one is the cache's
    response = problem(
        Request(scope),
        503,
        "idempotency_store_unavailable",
        "Service unavailable",
        "The cache database that holds Idempotency-Keys does not answer; retry later",
    )
    response.headers["Retry-After"] = "1"
    return response


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((v for n, v in headers if n.lower() == name), b"")
