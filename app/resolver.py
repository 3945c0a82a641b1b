"""Resolution of identities to resource definitions, through the cache when one is configured.

Modes (LINSTOR_NAMES_CACHE_MODE):
- verify: every lookup and every list asks LINSTOR once, with the props filter Incus's lookup uses (one
  request instead of Incus's 2-4), and compares the answer with the cache: a hit when they agree, else a
  miss that answers what LINSTOR said and repairs the rows that differ. When LINSTOR cannot answer
  (unavailable, too slow), a read is answered from the cache and marked stale (RFC 5861 stale-if-error); a
  change never is.
- trust: reads come from the cache alone; staleness is bounded by the resync interval and reported (Age).
- off, or LINSTOR_NAMES_CACHE_URL=none: every lookup is a props-filtered list, as Incus does.
Misses always go to LINSTOR: the cache is never authoritative, only LINSTOR is. A list is never served from
the cache alone before this process's first full sync, nor during a rebuild (CacheState): the cache may lack
volumes then, and a list, unlike a lookup, cannot tell a missing row from a missing volume.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol, TypeVar

from app.identity import VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient, LinstorNotFound, LinstorOperationalError
from app.linstor.models import ResourceDefinition
from app.naming import AuxCodec
from app.settings import CacheMode

log = logging.getLogger(__name__)
T = TypeVar("T")


class Cached(Protocol):
    """A cache row: the record and when it was written."""

    @property
    def record(self) -> VolumeRecord: ...

    @property
    def updated_at(self) -> float: ...


class CacheBackend(Protocol):
    """What the resolver needs of the cache store (app/cache/store.py)."""

    async def by_key(self, key: VolumeKey) -> Sequence[Cached]: ...
    async def by_rd(self, rd_name: str) -> Cached | None: ...
    async def by_snapshot(self, linstor_snapshot: str) -> tuple[Cached, str] | None: ...
    async def list(
        self, pool: str, *, project: str | None = None, type: VolumeType | None = None
    ) -> Iterable[Cached]: ...
    async def put(self, record: VolumeRecord) -> None: ...
    async def delete(self, rd_name: str) -> None: ...


class Served(Enum):
    """Where an answer came from; the API words it as an RFC 9211 Cache-Status."""

    HIT = "hit"  # from the cache (confirmed with LINSTOR in verify mode)
    MISS = "miss"  # from LINSTOR, the cache did not have it or had it wrong
    BYPASS = "bypass"  # from LINSTOR, there is no cache


@dataclass(frozen=True)
class CacheInfo:
    """How an answer was served and, for answers from the cache alone, their age in seconds.

    `stale`: a hit LINSTOR was asked to confirm and could not (stale-if-error).
    """

    served: Served
    age: float | None = None
    stale: bool = False


FULL_LISTS = 2
# Rows a list may write to repair the cache (one write each); a cache further behind waits for the resync,
# which rewrites it in one transaction, rather than make a list pay thousands of writes.
LIST_REPAIR_LIMIT = 100
MISS = CacheInfo(Served.MISS)
BYPASS = CacheInfo(Served.BYPASS)
HIT = CacheInfo(Served.HIT)


@dataclass
class CacheCounters:
    """Hits and misses of this process."""

    hits: int = 0
    misses: int = 0
    last_sync: float | None = None


@dataclass
class CacheState:
    """What this process knows of its cache's full syncs: written by the cache service, read by lists."""

    warm: bool = False  # a full sync of this process succeeded: the cache then held every volume
    rebuilding: bool = False
    last_error: str | None = None  # why the latest sync failed; None once one succeeds
    last_error_at: float | None = None
    failing_since: float | None = None  # the first failure of the failures in a row
    failures: int = 0  # syncs failed in a row

    @property
    def complete(self) -> bool:
        """Whether the cache may answer a list alone: warm and not being rebuilt."""
        return self.warm and not self.rebuilding

    def synced(self) -> None:
        """A full sync succeeded."""
        self.warm = True
        self.last_error = self.last_error_at = self.failing_since = None
        self.failures = 0

    def failed(self, reason: str, at: float) -> None:
        """A full sync failed at `at` (epoch seconds) for `reason`."""
        self.last_error, self.last_error_at = reason, at
        if self.failing_since is None:
            self.failing_since = at
        self.failures += 1


def _same(cached: Iterable[VolumeRecord], fresh: Iterable[VolumeRecord]) -> bool:
    """Whether the cache's records are exactly LINSTOR's, whatever their order."""
    return {r.rd_name: r for r in cached} == {r.rd_name: r for r in fresh}


def sizes_of(rd: ResourceDefinition) -> tuple[int, ...]:
    """Volume definition sizes ordered by volume number."""
    return tuple(vd.size_kib for vd in sorted(rd.volume_definitions, key=lambda v: v.volume_number))


def same_pool(a: str, b: str) -> bool:
    """Resource group names are case-insensitive in LINSTOR."""
    return a.upper() == b.upper()


class Resolver:
    """Finds volumes by identity, by LINSTOR name and by pool; keeps the cache current."""

    def __init__(
        self,
        client: LinstorClient,
        codec: AuxCodec,
        cache: CacheBackend | None,
        mode: CacheMode,
        *,
        state: CacheState | None = None,
    ) -> None:
        self.client = client
        self.codec = codec
        self.cache = cache if mode is not CacheMode.OFF else None
        self.mode = mode
        self.counters = CacheCounters()
        # the cache service (app/cache_service.py) reaches it through the resolver and keeps it current
        self.state = state or CacheState()
        self._full_lists = asyncio.Semaphore(FULL_LISTS)

    def decode(self, rd: ResourceDefinition) -> VolumeRecord | None:
        """The volume held by a resource definition (pool = its resource group)."""
        return self.codec.decode(rd.resource_group_name, rd.name, rd.props, sizes_of(rd))

    # ---- forward ---------------------------------------------------------------------------------------

    async def find(
        self, key: VolumeKey, *, confirm: bool = False, ahead: Callable[[str], object] | None = None
    ) -> tuple[list[VolumeRecord], CacheInfo]:
        """All resource definitions holding `key` (more than one is a conflict the caller reports).

        `confirm` makes a trust-mode hit confirmed as in verify mode: changes act on what LINSTOR holds now.
        `ahead` is told the RD the cache holds `key` in (one row), unconfirmed, just before the confirming
        scan goes out: reads the caller needs of that RD can go out beside it.
        """
        if self.cache is None:
            return await self.find_in_linstor(key), BYPASS
        cached = await self._read(self.cache.by_key(key), ())
        if self.mode is CacheMode.TRUST and not confirm and len(cached) == 1:
            self.counters.hits += 1
            return [cached[0].record], self._trusted(cached[0])
        # Confirmed by the props filter, not by a GET of the cached RD by name: the answer is "the one RD
        # holding this identity", and only the filter sees a second RD that carries it (made behind the
        # service by Incus, an operator or a replica without a shared cache). Confirmed by name, such a
        # duplicate stayed invisible until the next resync: a lookup answered 200 where Incus fails with
        # "Multiple resource definitions", and a rename or delete acted on one of the two. The price is a
        # props scan in the controller per lookup (issue 12: 15 ms instead of 4.5 ms at 10k RDs), still one
        # request where Incus makes 2-4; trust mode keeps lookups that ask LINSTOR nothing.
        if ahead is not None and len(cached) == 1:
            ahead(cached[0].record.rd_name)
        try:
            records = await self.find_in_linstor(key)
        except LinstorOperationalError as exc:
            if confirm or len(cached) != 1:
                raise  # a change never acts on a view LINSTOR did not confirm; no single entry to serve
            return [cached[0].record], self._stale(cached[0], exc)
        known = [c.record for c in cached]
        if known and _same(known, records):
            self.counters.hits += 1
            return records, HIT
        self.counters.misses += 1
        await self._repair(known, records)
        return records, MISS

    async def _repair(
        self, cached: Sequence[VolumeRecord], fresh: Sequence[VolumeRecord], *, limit: int | None = None
    ) -> None:
        """Make the cache agree with what LINSTOR just said, writing only what differs (nothing when more
        than `limit` rows differ)."""
        fresh_names = {r.rd_name for r in fresh}
        known = {r.rd_name: r for r in cached}  # by name: a list compares whole pools, not a row or two
        gone = [old.rd_name for old in cached if old.rd_name not in fresh_names]
        changed = [record for record in fresh if known.get(record.rd_name) != record]
        if limit is not None and len(gone) + len(changed) > limit:
            log.warning(
                "cache far behind LINSTOR (%d rows differ in one list); left to the resync",
                len(gone) + len(changed),
            )
            return
        for rd_name in gone:
            await self.forget(rd_name)
        for record in changed:
            await self.remember(record)

    async def find_in_linstor(self, key: VolumeKey) -> list[VolumeRecord]:
        """Incus's lookup: props filter on name and type, then keep the pool's resource group (§3.1)."""
        rds = await self.client.list_resource_definitions(
            props=self.codec.lookup_filters(key), with_volume_definitions=True
        )
        records = [self.decode(rd) for rd in rds if same_pool(rd.resource_group_name, key.pool)]
        return [r for r in records if r is not None and self._matches(r, key)]

    async def _confirm(self, cached: VolumeRecord) -> VolumeRecord | None:
        """Read the cached RD by name; the fresh record (cached sizes kept), or None when it is gone."""
        try:
            rd = await self.client.get_resource_definition(cached.rd_name)
        except LinstorNotFound:
            return None
        fresh = self.decode(rd)
        if fresh is None:
            return None
        # GET /v1/resource-definitions/{rd} never carries volume definitions (linstor-rest-api.md §2.4)
        fresh = replace(fresh, volume_sizes_kib=cached.volume_sizes_kib)
        if fresh != cached and self.cache is not None:
            await self.remember(fresh)
        return fresh

    def _trusted(self, hit: Cached) -> CacheInfo:
        confirmed_at = max(hit.updated_at, self.counters.last_sync or 0.0)
        return CacheInfo(Served.HIT, age=max(0.0, time.time() - confirmed_at))

    def _stale(self, hit: Cached, exc: LinstorOperationalError) -> CacheInfo:
        """Stale-if-error (RFC 5861): LINSTOR could not confirm `hit`, which is served marked stale."""
        log.warning("serving %s from the cache, marked stale: %s", hit.record.rd_name, exc.message)
        self.counters.hits += 1
        return replace(self._trusted(hit), stale=True)

    @staticmethod
    def _matches(record: VolumeRecord, key: VolumeKey) -> bool:
        k = record.key
        return same_pool(k.pool, key.pool) and (k.project, k.type, k.name) == (
            key.project,
            key.type,
            key.name,
        )

    # ---- lists -----------------------------------------------------------------------------------------

    async def list_volumes(
        self, pool: str, *, project: str | None, vtype: VolumeType | None, fresh: bool = False
    ) -> tuple[list[VolumeRecord], CacheInfo]:
        """Volumes of a pool: from a complete cache alone (trust), or one filtered LINSTOR list compared with
        the cache (verify), or that list alone (no cache, `fresh`, a cache that is not complete)."""
        if self.cache is None or fresh:
            found = await self.list_in_linstor(pool, project=project, vtype=vtype)
            if self.cache is None:
                return found, BYPASS
            self.counters.misses += 1  # a fresh list does not write: the resync keeps whole pools current
            return found, MISS
        # read before LINSTOR's list: a change the service makes between the two is then a difference that
        # LINSTOR's answer wins. One made after LINSTOR's list may be overwritten by the repair below, as by
        # a lookup's: the next verified read or the resync corrects it.
        rows = await self._read(self.cache.list(pool, project=project, type=vtype), None)
        # None unless the cache holds the whole pool: before the first sync or during a rebuild it may lack
        # volumes, and a list, unlike a lookup, cannot tell a missing row from a missing volume
        cached = [r.record for r in rows] if rows is not None and self.state.complete else None
        if cached is not None and self.mode is CacheMode.TRUST:
            self.counters.hits += 1
            return cached, CacheInfo(Served.HIT, age=self._list_age())
        try:
            found = await self.list_in_linstor(pool, project=project, vtype=vtype)
        except LinstorOperationalError as exc:
            if cached is None:
                raise  # no list rather than one that may lack volumes
            log.warning("serving the list of pool %s from the cache, marked stale: %s", pool, exc.message)
            self.counters.hits += 1
            return cached, CacheInfo(Served.HIT, age=self._list_age(), stale=True)
        if cached is not None and _same(cached, found):
            self.counters.hits += 1
            return found, HIT
        self.counters.misses += 1
        # a cold cache is not repaired from lists: the first sync writes every row, lists would write whole
        # pools each time until then; nor is one far behind, for the same reason
        if cached is not None:
            await self._repair(cached, found, limit=LIST_REPAIR_LIMIT)
        return found, MISS

    async def list_in_linstor(
        self, pool: str, *, project: str | None, vtype: VolumeType | None
    ) -> list[VolumeRecord]:
        """One props-filtered list (the name key, and the type when given), kept to the pool and project."""
        props = [self.codec.keys.name]
        if vtype is not None:
            props.append(f"{self.codec.keys.type}={vtype.linstor}")
        # A list holds every volume RD of the cluster in memory (~4 KiB each once parsed): at most FULL_LISTS
        # of them at a time, the others wait, so that concurrent lists cannot exhaust memory.
        async with self._full_lists:
            rds = await self.client.list_resource_definitions(props=props, with_volume_definitions=True)
            found = (
                await asyncio.to_thread(self._decode_pool, rds, pool, project)
                if len(rds) > 500
                else (self._decode_pool(rds, pool, project))
            )
            del rds
        return found

    def _list_age(self) -> float | None:
        last = self.counters.last_sync
        return max(0.0, time.time() - last) if last is not None else None

    def _decode_pool(
        self, rds: Sequence[ResourceDefinition], pool: str, project: str | None
    ) -> list[VolumeRecord]:
        records = [self.decode(rd) for rd in rds if same_pool(rd.resource_group_name, pool)]
        found = [r for r in records if r is not None and (project is None or r.key.project == project)]
        return sorted(found, key=lambda r: (r.key.project, r.key.type.value, r.key.name))

    # ---- reverse ---------------------------------------------------------------------------------------

    async def by_rd_name(self, rd_name: str) -> tuple[VolumeRecord | None, CacheInfo]:
        """The volume whose resource definition is `rd_name` (one name-filtered read of LINSTOR)."""
        return await self._by_rd_name(rd_name, await self._rd_row(rd_name))

    async def _rd_row(self, rd_name: str) -> Cached | None:
        """The cache's row of the RD `rd_name`; None without a cache or a row."""
        return await self._read(self.cache.by_rd(rd_name), None) if self.cache is not None else None

    async def _by_rd_name(self, rd_name: str, hit: Cached | None) -> tuple[VolumeRecord | None, CacheInfo]:
        """by_rd_name, the cache's row `hit` read already."""
        if hit is not None and self.mode is CacheMode.TRUST:
            self.counters.hits += 1
            return hit.record, self._trusted(hit)
        try:
            rds = await self.client.list_resource_definitions(names=[rd_name], with_volume_definitions=True)
        except LinstorOperationalError as exc:
            if hit is None:
                raise
            return hit.record, self._stale(hit, exc)
        record = self.decode(rds[0]) if rds else None
        if self.cache is None:
            return record, BYPASS
        if hit is not None and hit.record == record:
            self.counters.hits += 1  # verify: the one name read confirmed the entry
            return record, HIT
        self.counters.misses += 1
        await self._repair([hit.record] if hit is not None else [], [record] if record is not None else [])
        return record, MISS

    async def resolve(self, name: str) -> tuple[VolumeRecord, str | None, CacheInfo] | None:
        """What a LINSTOR name stands for: a volume's RD (snapshot None), or one of its snapshots.

        The cache is read for an RD first (most names asked are RDs: the snapshot table is then not read),
        then for a snapshot: a name the cache knows as a snapshot goes straight to the snapshot path, so
        resolving a snapshot costs no resource-definition read of LINSTOR first.
        """
        hit = await self._rd_row(name)
        row = await self._snapshot_row(name) if hit is None else None
        if row is None:
            record, info = await self._by_rd_name(name, hit)
            if record is not None:
                return record, None, info
        found, info = await self.by_snapshot_name(name, row)
        return (found[0], found[1], info) if found is not None else None

    async def _snapshot_row(self, snapshot: str) -> tuple[Cached, str] | None:
        """The cache's row mapping `snapshot`, and its Incus name; None without a cache or a row."""
        if self.cache is None:
            return None
        return await self._read(self.cache.by_snapshot(snapshot), None)

    async def by_snapshot_name(
        self, snapshot: str, row: tuple[Cached, str] | None
    ) -> tuple[tuple[VolumeRecord, str] | None, CacheInfo]:
        """(volume, Incus snapshot name) for a LINSTOR snapshot name, given the cache's row for it."""
        if self.cache is not None:
            if row is not None:
                cached, incus_name = row
                if self.mode is CacheMode.TRUST:
                    self.counters.hits += 1
                    return (cached.record, incus_name), self._trusted(cached)
                try:
                    fresh = await self._confirm(cached.record)
                except LinstorOperationalError as exc:
                    return (cached.record, incus_name), self._stale(cached, exc)
                if fresh is not None and fresh.snapshots.get(incus_name, "").upper() == snapshot.upper():
                    self.counters.hits += 1
                    return (fresh, incus_name), HIT
                if fresh is None:
                    await self.forget(cached.record.rd_name)
            self.counters.misses += 1
        # No props filter exists for snapshots: scan the snapshot view, then read the parent by name.
        snaps = await self.client.view_snapshots()
        for snap in snaps:
            if snap.name.upper() != snapshot.upper():
                continue
            record, _ = await self.by_rd_name(snap.resource_name)
            if record is None:
                continue
            for incus_name, linstor_name in record.snapshots.items():
                if linstor_name.upper() == snapshot.upper():
                    return (record, incus_name), (MISS if self.cache is not None else BYPASS)
        return None, (MISS if self.cache is not None else BYPASS)

    # ---- write-through ---------------------------------------------------------------------------------

    async def remember(self, record: VolumeRecord) -> None:
        """Cache write-through: the service changed `record` in LINSTOR."""
        if self.cache is not None:
            await self._write_through(self.cache.put(record), record.rd_name)

    async def forget(self, rd_name: str) -> None:
        """Cache write-through: the service deleted `rd_name` from LINSTOR."""
        if self.cache is not None:
            await self._write_through(self.cache.delete(rd_name), rd_name)

    @staticmethod
    async def _read(read: Awaitable[T], miss: T) -> T:
        # The cache is optional: when its database fails, answer from LINSTOR (as mode off) and let /readyz
        # report the cache; never fail a lookup that LINSTOR can answer.
        try:
            return await read
        except Exception:
            log.exception("cache read failed; asking LINSTOR instead")
            return miss

    @staticmethod
    async def _write_through(write: Awaitable[None], rd_name: str) -> None:
        # LINSTOR has already changed: a cache that cannot follow must not turn that success into an error.
        # The entry stays stale (verify repairs it on the next hit, trust until the next resync).
        try:
            await write
        except Exception:
            log.exception("cache write-through for %s failed; the next resync repairs it", rd_name)
