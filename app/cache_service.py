"""The lookup cache as the domain sees it: its report, the periodic resync and the rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from app.cache.store import CacheStore
from app.cache.sync import ResourceDefinitionLister, SyncResult, full_sync
from app.errors import Conflict, ServiceError
from app.identity import VolumeRecord
from app.linstor import LinstorError
from app.linstor.lean import LeanResourceDefinition
from app.naming import AuxCodec
from app.resolver import CacheCounters, CacheState
from app.settings import CacheMode, Settings
from app.translate import translates_linstor_errors

log = logging.getLogger(__name__)

# A trusted cache serves reads without asking LINSTOR, so a replica whose resyncs keep failing serves ever
# older answers: after this many failures in a row (its answers then up to this many resync intervals older
# than the mode promises) it is not ready. A verify-mode replica answers from LINSTOR and stays ready.
TRUSTED_FAILED_RESYNCS = 3


class VolumeDecoder(Protocol):
    """What the cache service needs of the resolver (app/resolver.py)."""

    @property
    def codec(self) -> AuxCodec:
        """The Aux-properties codec: its keys filter the listing."""
        ...

    @property
    def counters(self) -> CacheCounters:
        """Hits, misses and the last sync of this process."""
        ...

    @property
    def state(self) -> CacheState:
        """Whether the cache is warm or being rebuilt, and its failing syncs: kept current by the service."""
        ...


@dataclass(frozen=True, slots=True)
class CacheSummary:
    """The state of this replica's cache: size, last full sync, hits and misses."""

    enabled: bool
    mode: CacheMode  # OFF when no cache is configured
    backend: str | None
    volumes: int
    snapshots: int
    last_sync: datetime | None
    age_seconds: float | None
    resync_interval: float
    hits: int
    misses: int
    warm: bool = False
    rebuilding: bool = False
    last_error: str | None = None
    last_error_at: datetime | None = None
    failing_since: datetime | None = None


@dataclass(slots=True)
class SyncStats:
    """The full syncs of this process, for /metrics: how many, their time in all, how many failed."""

    count: int = 0
    seconds: float = 0.0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Condition:
    """Whether a dependency (here the cache) lets this replica serve, and what to tell an operator ("ok")."""

    ready: bool
    detail: str


class CacheService:
    """Reports on the cache and fills it from LINSTOR; LINSTOR errors come out as ServiceErrors."""

    def __init__(
        self,
        store: CacheStore | None,
        linstor: ResourceDefinitionLister,
        resolver: VolumeDecoder,
        settings: Settings,
    ) -> None:
        self._store = store
        self._linstor = linstor
        self._resolver = resolver
        self._settings = settings
        # one sync at a time per process: a rebuild asked for during a periodic resync waits for it
        self._lock = asyncio.Lock()
        # set once the first sync has ended, whichever way: readiness waits for it at start-up
        self._first_sync = asyncio.Event()
        self.syncs = SyncStats()

    async def report(self) -> CacheSummary:
        """Size, last sync time and age, hit and miss counts of this replica."""
        counters, state = self._resolver.counters, self._resolver.state
        volumes = snapshots = 0
        last_sync: datetime | None = None
        age: float | None = None
        if self._store is not None:
            stats = await self._store.stats()
            volumes, snapshots = stats.volumes, stats.snapshots
            if stats.last_sync is not None:
                last_sync = datetime.fromtimestamp(stats.last_sync, tz=UTC)
                # another host's clock may run ahead of ours: an age is never negative
                age = max(0.0, time.time() - stats.last_sync)
        return CacheSummary(
            enabled=self._store is not None,
            mode=self._settings.cache_mode if self._store is not None else CacheMode.OFF,
            backend=self._store.dialect if self._store is not None else None,
            volumes=volumes,
            snapshots=snapshots,
            last_sync=last_sync,
            age_seconds=age,
            resync_interval=self._settings.cache_resync_interval,
            hits=counters.hits,
            misses=counters.misses,
            warm=state.warm,
            rebuilding=state.rebuilding,
            last_error=state.last_error,
            last_error_at=_utc(state.last_error_at),
            failing_since=_utc(state.failing_since),
        )

    async def condition(self, wait: float) -> Condition:
        """Readiness as far as the cache goes: warming until the first sync, failing resyncs said.

        A first sync under way is waited for, `wait` seconds at most: a replica starting up becomes ready
        within a probe's deadline instead of one probe period later.
        """
        if self._store is None:
            return Condition(True, "ok")
        state = self._resolver.state
        if not self._first_sync.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_sync.wait(), wait)
        failing = None
        if state.failing_since is not None:
            since = datetime.fromtimestamp(state.failing_since, tz=UTC).isoformat(timespec="seconds")
            failing = f"resync failing since {since}: {state.last_error}"
        if not state.warm:  # a list would have to ask LINSTOR, and lookups may miss more than they hit
            return Condition(False, f"warming; {failing}" if failing else "warming")
        if failing is None:
            return Condition(True, "ok")
        trusted = self._settings.cache_mode is CacheMode.TRUST
        if trusted and state.failures >= TRUSTED_FAILED_RESYNCS:
            return Condition(False, f"{failing} ({state.failures} in a row; trusted answers grow stale)")
        return Condition(True, failing)

    @translates_linstor_errors("cache resync")
    async def resync(self) -> SyncResult | None:
        """Make the cache match LINSTOR, keeping writes newer than the listing; None without a cache."""
        if self._store is None:
            return None
        return await self._sync(self._store, rebuild=False)

    @translates_linstor_errors("cache rebuild")
    async def rebuild(self) -> SyncResult:
        """Fill the cache from LINSTOR alone; when the listing fails, the cache is left as it was."""
        if self._store is None:
            raise Conflict(
                "cache_disabled",
                "This service runs without a cache (LINSTOR_NAMES_CACHE_URL=none or mode off)",
            )
        return await self._sync(self._store, rebuild=True)

    async def keep_synced(self) -> None:
        """Resync now and then every resync interval until cancelled; a failed resync is retried."""
        interval = self._settings.cache_resync_interval
        while True:
            try:
                await self.resync()
            except ServiceError as exc:  # LINSTOR down: serve what the cache holds, try again later
                log.warning("cache resync failed: %s; retrying in %ss", exc.detail, interval)
            except Exception:  # database trouble: keep serving, try again next interval
                log.exception("cache resync failed; retrying in %ss", interval)
            await asyncio.sleep(interval)

    def _decode(self, rd: LeanResourceDefinition) -> VolumeRecord | None:
        """The volume a listed RD holds, if any (pool = its resource group), as Resolver.decode says."""
        return self._resolver.codec.decode(rd.resource_group_name, rd.name, rd.props, rd.sizes_kib())

    async def _sync(self, store: CacheStore, *, rebuild: bool) -> SyncResult:
        state = self._resolver.state
        async with self._lock:
            state.rebuilding = rebuild
            started = time.perf_counter()
            try:
                result = await full_sync(
                    store,
                    self._linstor,
                    keys=self._resolver.codec.keys,
                    decode=self._decode,
                    rebuild=rebuild,
                    page_size=self._settings.cache_sync_page_size,
                    page_deadline=self._settings.linstor_read_deadline,
                    salt=self._resolver.codec.prefix,
                )
            except Exception as exc:
                state.failed(_reason(exc), time.time())
                self.syncs.failures += 1
                raise
            else:
                self._resolver.counters.last_sync = result.finished_at
                state.synced()
                return result
            finally:
                self.syncs.count += 1
                self.syncs.seconds += time.perf_counter() - started
                state.rebuilding = False
                self._first_sync.set()  # once the outcome is recorded: the waiters read it


def _utc(at: float | None) -> datetime | None:
    return datetime.fromtimestamp(at, tz=UTC) if at is not None else None


def _reason(exc: Exception) -> str:
    """One line saying why a sync failed (a database error's text can run to its whole statement)."""
    if isinstance(exc, LinstorError):
        return exc.message
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
