"""Exactly one writer per identity, across replicas: a claim is an RD LINSTOR itself keeps unique.

Every change that gives an identity to an RD (create, copy, copy from a snapshot, rename onto a name) first
creates a definition-only resource definition whose name is derived from the identity, in the staging
group. LINSTOR refuses a second RD of the same name (FAIL_EXISTS_RSC_DFN) atomically, so of two replicas
(or two processes without a shared cache) racing onto one identity exactly one holds the claim; the other
answers 409 `operation_in_progress`. This holds with a shared PostgreSQL cache, a shared SQLite file, or
no cache at all, because only LINSTOR decides. A claim is released when its operation ends; one left by a
crash, or by an operation whose outcome LINSTOR left unknown (a timed-out spawn may still complete), can
be taken over after `claim_timeout` seconds, when the retry finds and adopts what the first attempt made.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from app.builds import ensure_staging_group
from app.errors import Conflict
from app.identity import VolumeKey
from app.linstor import LinstorClient, LinstorExists, LinstorNotFound
from app.linstor.errors import LinstorOperationalError, LinstorTimeout
from app.markers import CLAIM, STARTED

log = logging.getLogger(__name__)
T = TypeVar("T")
CLAIM_PREFIX = "lnclaim-"  # + 40 hex characters: 48, LINSTOR's longest name


def claim_name(key: VolumeKey) -> str:
    """The claim RD's name: a digest of the identity (pools compare case-insensitively, as LINSTOR's)."""
    identity = f"{key.pool.upper()}/{key.project}/{key.type.value}/{key.name}"
    return CLAIM_PREFIX + hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()


def identity_of(key: VolumeKey) -> str:
    """The claimed identity, readable in the claim RD's props."""
    return f"{key.pool}/{key.project}/{key.type.value}/{key.name}"


class Claims:
    """Takes and releases identity claims in LINSTOR."""

    def __init__(self, client: LinstorClient, group: str, timeout: float) -> None:
        self.client = client
        self.group = group
        self.timeout = timeout

    @asynccontextmanager
    async def hold(self, key: VolumeKey) -> AsyncIterator[None]:
        """Hold the claim on `key` for the block; 409 operation_in_progress when another writer holds it.

        A timeout inside the block leaves the claim in place: LINSTOR may still complete what it was asked,
        and a retry must not start a second RD until the claim expires and the retry can adopt the first.
        """
        name = claim_name(key)
        await self._take(name, key)
        async with self._held(name, key):
            yield

    @asynccontextmanager
    async def hold_while(self, key: VolumeKey, lookup: Awaitable[T]) -> AsyncIterator[T]:
        """`hold`, the claim taken while `lookup` (reads that the change needs first) runs: one round trip to
        LINSTOR instead of two. Yields what `lookup` found. Its errors come first, as if it had run before
        the claim: a claim taken meanwhile is released again."""
        name = claim_name(key)
        take = asyncio.ensure_future(self._take(name, key))
        try:
            found = await lookup
        except BaseException as exc:
            await self._drop(take, name, exc)
            raise
        await take  # its refusal (409) or failure
        async with self._held(name, key):
            yield found

    @asynccontextmanager
    async def _held(self, name: str, key: VolumeKey) -> AsyncIterator[None]:
        """Release the claim `name` when the block ends, but after a timeout (see `hold`)."""
        try:
            yield
        except LinstorTimeout:
            log.warning("outcome unknown for %s; its claim %s stays until it expires", identity_of(key), name)
            raise
        except BaseException:
            await self._release(name)
            raise
        await self._release(name)

    async def _drop(self, take: asyncio.Future[None], name: str, cause: BaseException) -> None:
        """A claim no longer wanted, the lookup beside it having failed with `cause`: released once taken.
        Unless LINSTOR did not answer the lookup: then its answer to the claim is not waited for either
        (a hung controller costs a request one deadline), and a claim it took expires on its own."""
        if not take.done() and _unanswered(cause):
            take.cancel()
        await asyncio.wait([take])
        if take.cancelled():
            log.warning("the claim %s may stay until it expires: LINSTOR did not answer", name)
        elif take.exception() is None:
            await self._release(name)

    async def _take(self, name: str, key: VolumeKey) -> None:
        props = {CLAIM: identity_of(key), STARTED: f"{time.time():.3f}"}
        for _ in range(3):
            try:
                await self.client.create_resource_definition(name, resource_group=self.group, props=props)
                return
            except LinstorNotFound:  # the staging group that holds claims is made on first use
                await ensure_staging_group(self.client, self.group)
            except LinstorExists:
                if not await self._expired(name):
                    raise Conflict(
                        "operation_in_progress",
                        f"Another operation on volume {key.name!r} is in progress; retry later",
                    ) from None
                log.warning("taking over the expired claim %s on %s", name, identity_of(key))
                await self._release(name)
        raise Conflict("operation_in_progress", f"Volume {key.name!r} is claimed by another writer")

    async def _expired(self, name: str) -> bool:
        try:
            rd = await self.client.get_resource_definition(name)
        except LinstorNotFound:
            return True  # released meanwhile: take it
        try:
            started = float(rd.props.get(STARTED, "0"))
        except ValueError:
            started = 0.0
        return time.time() - started > self.timeout

    async def _release(self, name: str) -> None:
        try:
            await self.client.delete_resource_definition(name)
        except Exception:  # an unreleased claim only delays the next writer until it expires
            log.exception("could not release the claim %s; it expires on its own", name)


def _unanswered(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says LINSTOR did not answer: a timeout, no controller, a cancel."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (LinstorOperationalError, asyncio.CancelledError)):
            return True
        cause = cause.__cause__
    return False
