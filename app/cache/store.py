"""CacheStore: the async facade of the cache database that the service uses.

Reads by key run inline on the event loop for SQLite (sqlite3 itself, a few µs; WAL readers never wait
for the writer) and in a thread for PostgreSQL (network I/O never blocks the loop). A SQLite write-through
and the Idempotency-Key writes run inline too when the write lock is free (~0.1 ms, where a thread's round
trip costs ~0.4 ms); when another writer holds it, they wait in a thread. Listings, counts and every other
write run in a thread.
Rows are stamped with the database's clock (PostgreSQL's clock_timestamp() for a shared cache), so
replicas whose clocks drift still agree on which write is newer; see replace.py for how a full sync uses
the stamps. A call's thread outlives its task when the task is cancelled (a resync stopped at shutdown),
so close() waits for the calls under way, CLOSE_TIMEOUT at most.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.cache import migrate, queries, replace
from app.cache.engine import WRITE_OPTION, create_cache_engine
from app.cache.queries import CachedVolume
from app.cache.tables import name_key, snapshots, sync_state, tombstones, volumes
from app.identity import VolumeKey, VolumeRecord, VolumeType

log = logging.getLogger(__name__)

T = TypeVar("T")
VolumeList = list[CachedVolume]
Rows = list[Any]  # a module alias: inside the class, `list` is the method

# How long tombstones are kept, and so the oldest listing a sync may apply (seconds).
TOMBSTONE_RETENTION = 3600.0
# Key of the PostgreSQL advisory lock that serializes the writers of one cache database.
WRITE_LOCK = 0x6C6E_6377  # "lncw"
# A sync that changes this many rows of a PostgreSQL cache refreshes the planner's statistics.
ANALYZE_THRESHOLD = 1000
# An inline read waits at most this long for SQLite (only WAL recovery can make a reader wait).
INLINE_BUSY_TIMEOUT_MS = 100
# Pages the inline reader keeps, in KiB (SQLite's default: 2 MiB). At 100k volumes the file is ~27 MB: lookups
# spread over a few thousand volumes then read about one page a lookup from the file (a pread) without it.
# With it the service answers ~5% more hits a second at 100k (tests/benchmarks/bench_hot.py).
INLINE_PAGE_CACHE_KIB = 16 * 1024
# An inline SQLite writer never checkpoints the WAL (an fsync, on the loop): every this many of its commits,
# a passive checkpoint runs in a thread instead.
INLINE_CHECKPOINT_EVERY = 200
# Expired Idempotency-Keys deleted by one purge at most: a purge is one short transaction.
KEY_PURGE_BATCH = 1000
# close() waits this long for the database calls under way (seconds): a write may wait for another
# replica's sync to release the write lock. Well within what systemd and Kubernetes leave after the
# listener's graceful shutdown (app/listener.py).
CLOSE_TIMEOUT = 10.0

_BY_RD_SQL = queries.sqlite_sql(queries.BY_RD)
_BY_KEY_SQL = queries.sqlite_sql(queries.BY_KEY)
_BY_SNAPSHOT_SQL = queries.sqlite_sql(queries.BY_SNAPSHOT)
_sqlite_sql = functools.cache(queries.sqlite_sql)  # the write-through's few statements


class CacheClosedError(RuntimeError):
    """The store is closed: it starts no more database calls."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Size of the cache and when it was last fully synced (epoch seconds)."""

    volumes: int
    snapshots: int
    last_sync: float | None


class CacheStore:
    """The cache database: lookups by identity, RD and LINSTOR snapshot; write-through; full sync."""

    def __init__(
        self,
        engine: Engine,
        *,
        read_engine: Engine | None = None,
        tombstone_retention: float = TOMBSTONE_RETENTION,
    ) -> None:
        self._engine = engine
        # PostgreSQL reads run on an autocommit engine of their own: no ROLLBACK round trip at check-in
        self._reader = read_engine or engine
        self._retention = tombstone_retention
        self._sqlite = engine.dialect.name == "sqlite"
        self._inline: PoolProxiedConnection | None = None
        self._inline_db: Any = None  # its sqlite3.Connection
        # SQLite writes on the loop (write-through, Idempotency-Keys): their own connection, busy_timeout 0
        self._loop_writer: sa.Connection | None = None
        self._loop_commits = 0
        size = engine.pool.size() if hasattr(engine.pool, "size") else 4
        self._executor = ThreadPoolExecutor(max_workers=max(2, size), thread_name_prefix="cache")
        # the calls submitted and not yet ended, which close() waits for; the lock also orders a submit
        # before or after close(), never during it
        self._calls: set[Future[Any]] = set()
        self._calls_lock = threading.Lock()
        self._closed = False
        for each in {self._engine, self._reader}:
            sa.event.listen(each, "checkin", self._on_checkin)

    @classmethod
    def open(
        cls, url: str, *, pool_size: int = 8, tombstone_retention: float = TOMBSTONE_RETENTION
    ) -> CacheStore:
        """Create the engines for `url` (SQLite: WAL, busy timeout); does not migrate."""
        engine = create_cache_engine(url, pool_size=pool_size)
        reader = None
        if engine.dialect.name == "postgresql":
            reader = create_cache_engine(url, pool_size=pool_size, autocommit=True)
        return cls(engine, read_engine=reader, tombstone_retention=tombstone_retention)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations and tests)."""
        return self._engine

    def upgrade(self) -> None:
        """Migrate the database to the newest schema (blocking: call it in a thread)."""
        migrate.upgrade_engine(self._engine)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Wait up to `timeout` seconds for the calls under way, then close every connection and thread.

        A call still running then (its task may have been cancelled: its statement was not) keeps its
        connection until it ends, and that connection is then closed rather than pooled (_on_checkin).
        """
        with self._calls_lock:
            self._closed = True
            calls = list(self._calls)
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        self._executor.shutdown(wait=False)  # the calls queued run too: their callers are waiting for them
        if calls:
            _done, late = await asyncio.to_thread(wait, calls, timeout)
            if late:
                self._executor.shutdown(wait=False, cancel_futures=True)  # queued ones never start
                running = sum(1 for call in late if call.running())
                if running:
                    log.warning(
                        "cache close: %d database call(s) still running after %gs; "
                        "each closes its connection when it ends",
                        running,
                        timeout,
                    )
        await asyncio.to_thread(self._engine.dispose)
        if self._reader is not self._engine:
            await asyncio.to_thread(self._reader.dispose)

    # ---- reads ------------------------------------------------------------------------------------------

    async def by_key(self, key: VolumeKey) -> VolumeList:
        """Every cached volume with this identity (more than one is a conflict in LINSTOR)."""
        params = queries.key_params(key)
        if self._sqlite:
            rows = self._inline_rows(_BY_KEY_SQL, params)
        else:
            rows = await self._run(self._rows, queries.BY_KEY, params)
        return sorted(queries.collect(rows), key=lambda v: v.record.rd_name)

    async def by_rd(self, rd_name: str) -> CachedVolume | None:
        """The cached volume of a resource definition (name compared case-insensitively)."""
        params = {"rd_key": name_key(rd_name)}
        if self._sqlite:
            rows = self._inline_rows(_BY_RD_SQL, params)
        else:
            rows = await self._run(self._rows, queries.BY_RD, params)
        found = queries.collect(rows)
        return found[0] if found else None

    async def by_snapshot(self, linstor_snapshot: str) -> tuple[CachedVolume, str] | None:
        """The volume holding a LINSTOR snapshot, and the snapshot's Incus name."""
        linstor_key = name_key(linstor_snapshot)
        params = {"linstor_key": linstor_key}
        if self._sqlite:
            rows = self._inline_rows(_BY_SNAPSHOT_SQL, params)
        else:
            rows = await self._run(self._rows, queries.BY_SNAPSHOT, params)
        if not rows:
            return None
        volume = queries.collect(rows)[0]
        for name, linstor_name in volume.record.snapshots.items():
            if name_key(linstor_name) == linstor_key:
                return volume, name
        return None  # unreachable: one statement reads one consistent state

    async def list(
        self, pool: str, *, project: str | None = None, type: VolumeType | None = None
    ) -> VolumeList:
        """The volumes of a pool ordered by (project, type, name), optionally filtered."""
        statement = queries.list_statement(pool, project, type)

        def run() -> VolumeList:
            return sorted(queries.collect(self._rows(statement, {})), key=queries.sort_key)

        return await self._run(run)

    async def stats(self) -> CacheStats:
        """Number of volumes and snapshots, and the last full sync's time."""
        return await self._run(self._stats)

    async def clock(self) -> float:
        """Now on the cache's clock (PostgreSQL's for a shared cache): take a sync's `started_at` here."""
        if self._sqlite:
            return time.time()
        return await self._run(self._clock)

    # ---- writes -----------------------------------------------------------------------------------------

    async def put(self, record: VolumeRecord) -> None:
        """Upsert a volume and replace its snapshot rows, in one transaction (write-through)."""
        await self._write_through(lambda now: queries.volume_writes(self.dialect, record, now))

    async def delete(self, rd_name: str) -> None:
        """Remove a volume, leaving a tombstone so that a sync listed before the delete cannot restore it."""
        await self._write_through(lambda now: queries.burial_writes(self.dialect, rd_name, now))

    async def fingerprints(self) -> dict[str, int]:
        """Every cached volume's fingerprint by rd_key (rows without one left out): a sync's hints."""

        def read() -> dict[str, int]:
            with self._reader.connect() as conn:
                rows = conn.execute(
                    sa.select(volumes.c.rd_key, volumes.c.fingerprint).where(
                        volumes.c.fingerprint.is_not(None)
                    )
                )
                # .all(): a Result has keys(), so dict() would take it for a mapping
                found: dict[str, int] = dict(rows.all())
                return found

        return await self._run(read)

    async def replace_all(
        self,
        records: Iterable[VolumeRecord] | replace.Listing,
        *,
        started_at: float,
        pools: Collection[str] | None = None,
        rebuild: bool = False,
    ) -> replace.ReplaceResult:
        """Make the cache match a LINSTOR listing taken after `started_at` (rules: app/cache/replace.py)."""
        listing = records if isinstance(records, replace.Listing) else replace.Listing.of(records)

        def apply(conn: sa.Connection, now: float) -> replace.ReplaceResult:
            if rebuild:  # in the same transaction: a failed listing never got here, a failed write rolls back
                _distrust_the_future(conn, now, started_at)
            return replace.replace_all(
                conn, now, listing, started_at=started_at, pools=pools, retention=self._retention
            )

        result: replace.ReplaceResult = await self._run(self._write, apply)
        if self._analyze_after(result.written + result.deleted):
            # fresh statistics after a bulk change (a first sync), or PostgreSQL plans for an empty table
            await self._run(self._analyze)
        return result

    async def clear(self) -> None:
        """Empty the cache (a rebuild need not: replace_all(rebuild=True)); tombstones stay."""

        def apply(conn: sa.Connection, _now: float) -> None:
            conn.execute(snapshots.delete())
            conn.execute(volumes.delete())
            conn.execute(sync_state.delete())

        await self._run(self._write, apply)

    async def mark_synced(self, at: float) -> None:
        """Record a full sync of a listing taken at `at` (never moves the time back)."""

        def apply(conn: sa.Connection, _now: float) -> None:
            last = queries.read_last_sync(conn)
            if last is None or at > last:
                queries.write_last_sync(conn, at)

        await self._run(self._write, apply)

    # ---- idempotency keys (app/api/idempotency.py) --------------------------------------------------------

    async def claim_idempotency_key(self, key: str, fingerprint: str, *, lease: float) -> queries.KeyClaim:
        """Hold `key` for `lease` seconds (held=True), or what holds it: a running request or its answer."""
        owner = secrets.token_hex(16)

        def claim(conn: sa.Connection, now: float) -> queries.KeyClaim:
            queries.take_over_expired_key(conn, key, now)
            if queries.insert_key(conn, key, fingerprint, owner, now, lease):
                return queries.KeyClaim(held=True, owner=owner, fingerprint=fingerprint, answer=None)
            found = queries.read_key(conn, key)
            if found is None:  # unreachable: writers are serialized, nothing deleted it since the insert
                raise RuntimeError(f"Idempotency-Key {key!r} vanished while it was claimed")
            return found

        # under the cache's write lock, as every write: no claim waits on another's row, and a key's rows
        # are stamped by the one clock the replicas share
        return await self._write_soon(claim)

    async def answer_idempotency_key(
        self, key: str, owner: str, answer: queries.StoredAnswer, *, keep: float
    ) -> bool:
        """Store the final answer of the request holding `key`, replayed for `keep` seconds."""
        return await self._write_soon(
            lambda conn, now: queries.answer_key(conn, key, owner, answer, now + keep)
        )

    async def release_idempotency_key(self, key: str, owner: str) -> None:
        """Free `key` without an answer: a retry with it runs again."""
        await self._write_soon(lambda conn, _now: queries.release_key(conn, key, owner))

    async def purge_idempotency_keys(self, limit: int = KEY_PURGE_BATCH) -> int:
        """Delete up to `limit` expired keys; the number deleted."""
        return await self._run(self._write, lambda conn, now: queries.purge_keys(conn, now, limit))

    # ---- plumbing ---------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._submit(fn, *args))

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._calls_lock:
            if self._closed:
                raise CacheClosedError("the cache store is closed")
            call = self._executor.submit(fn, *args)
            self._calls.add(call)
        call.add_done_callback(self._forget)
        return call

    async def _write_through(self, build: Callable[[float], queries.Writes]) -> None:
        """One volume's writes (`build(now)`), in one transaction: inline on SQLite if the lock is free."""
        if self._sqlite and self._write_inline(build):
            return
        await self._run(self._write, lambda conn, now: queries.run_writes(conn, build(now)))

    def _write_inline(self, build: Callable[[float], queries.Writes]) -> bool:
        """Run the writes with sqlite3 itself on the loop (~70 µs; SQLAlchemy's ~150); False, having written
        nothing, when another writer holds the lock: the caller then waits for it in a thread."""
        db: Any = self._loop_connection().connection.driver_connection
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                return False
            raise
        try:
            for statement, params in build(time.time()):
                if isinstance(params, list):
                    db.executemany(_sqlite_sql(statement), params)
                else:
                    db.execute(_sqlite_sql(statement), params)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a failed COMMIT may have ended it already
                db.execute("ROLLBACK")
            raise
        self._committed_on_loop()
        return True

    async def _write_soon(self, fn: Callable[[sa.Connection, float], T]) -> T:
        """`_write(fn)`: on the loop for SQLite while the write lock is free (no thread's round trip), else
        in a thread that waits for the lock."""
        if self._sqlite:
            conn = self._loop_connection()
            try:
                transaction = conn.begin()  # BEGIN IMMEDIATE: SQLITE_BUSY at once when another writer has it
            except sa.exc.OperationalError as exc:
                if not _busy(exc.orig):
                    raise
            else:
                with transaction:
                    result = fn(conn, time.time())
                self._committed_on_loop()
                return result
        return await self._run(self._write, fn)

    def _loop_connection(self) -> sa.Connection:
        if self._loop_writer is None:
            if self._closed:
                raise CacheClosedError("the cache store is closed")
            conn = self._engine.connect().execution_options(**{WRITE_OPTION: True})
            db: Any = conn.connection.driver_connection
            db.execute("PRAGMA busy_timeout=0")  # never wait on the loop
            db.execute("PRAGMA wal_autocheckpoint=0")  # nor fsync on it: _committed_on_loop checkpoints
            self._loop_writer = conn
        return self._loop_writer

    def _committed_on_loop(self) -> None:
        self._loop_commits += 1
        if self._loop_commits % INLINE_CHECKPOINT_EVERY == 0:
            self._submit(self._checkpoint).add_done_callback(_log_failure)

    def _checkpoint(self) -> None:
        with self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _forget(self, call: Future[Any]) -> None:
        with self._calls_lock:
            self._calls.discard(call)

    def _on_checkin(self, _dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
        # after close() a connection coming back is closed: dispose() has emptied the pool already, and a
        # connection left in a disposed pool stays open until the garbage collector finds it
        if self._closed:
            entry.invalidate()

    def _inline_rows(self, sql: str, params: dict[str, str]) -> Rows:
        if self._inline is None:
            if self._closed:
                raise CacheClosedError("the cache store is closed")
            # a pooled connection kept for the loop's own use: the engine's pragmas, autocommit reads
            self._inline = self._engine.raw_connection()
            self._inline_db = self._inline.driver_connection
            self._inline_db.execute(f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}")
            self._inline_db.execute(f"PRAGMA cache_size=-{INLINE_PAGE_CACHE_KIB}")
        rows: Rows = self._inline_db.execute(sql, params).fetchall()
        return rows

    def _rows(self, statement: sa.Select[Any], params: dict[str, str]) -> Rows:
        try:
            with self._reader.connect() as conn:
                return list(conn.execute(statement, params).all())
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        # the pooled connection was dead (the server restarted): the pool is invalidated, try a fresh one
        with self._reader.connect() as conn:
            return list(conn.execute(statement, params).all())

    def _stats(self) -> CacheStats:
        with self._reader.connect() as conn:
            count_volumes = conn.execute(sa.select(sa.func.count()).select_from(volumes)).scalar_one()
            count_snapshots = conn.execute(sa.select(sa.func.count()).select_from(snapshots)).scalar_one()
            return CacheStats(count_volumes, count_snapshots, queries.read_last_sync(conn))

    def _analyze_after(self, changed: int) -> bool:
        return not self._sqlite and changed >= ANALYZE_THRESHOLD

    def _analyze(self) -> None:
        with self._reader.connect() as conn:
            conn.exec_driver_sql("ANALYZE volumes, snapshots")

    def _clock(self) -> float:
        with self._reader.connect() as conn:
            return float(conn.exec_driver_sql(queries.CLOCK_SQL).scalar_one())

    def _write(self, fn: Callable[[sa.Connection, float], T]) -> T:
        """Run `fn(conn, now)` in a transaction that holds the cache's write lock."""
        with self._engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})  # SQLite: BEGIN IMMEDIATE
            with conn.begin():
                if self._sqlite:
                    now = time.time()
                else:
                    now = float(
                        conn.execute(sa.text(queries.LOCK_AND_CLOCK_SQL), {"lock": WRITE_LOCK}).scalar_one()
                    )
                return fn(conn, now)


def _busy(exc: BaseException | None) -> bool:
    """Whether sqlite3 refused because another connection holds a lock: SQLITE_BUSY or one of its extended
    codes (recovery, snapshot, timeout), which sqlite3 reports as they are."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def _log_failure(call: Future[Any]) -> None:
    if not call.cancelled() and call.exception() is not None:
        log.warning("cache checkpoint failed: %s", call.exception())


def _distrust_the_future(conn: sa.Connection, now: float, started_at: float) -> None:
    """Restamp as of `started_at` the rows, tombstones and last sync time stamped after `now`."""
    # Writers are serialized and stamp with their own transaction's clock, so a stamp after `now` was
    # written before the clock stepped back (an NTP step, a VM restored from a snapshot), not by a newer
    # writer. replace.py keeps such rows against any listing; a rebuild is how an operator replaces them.
    conn.execute(volumes.update().where(volumes.c.updated_at > now).values(updated_at=started_at))
    conn.execute(tombstones.update().where(tombstones.c.deleted_at > now).values(deleted_at=started_at))
    # mark_synced never moves the time back: a last sync in the future would hide every later one
    conn.execute(sync_state.update().where(sync_state.c.last_full_sync > now).values(last_full_sync=None))
