"""CacheService against a fake LINSTOR lister and a real CacheStore: report, resync, rebuild."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.cache.store import CacheStats, CacheStore
from app.cache.sync import PAGE_SIZE
from app.cache.tables import tombstones, volumes
from app.cache_service import TRUSTED_FAILED_RESYNCS, CacheService, CacheSummary, Condition
from app.errors import Conflict, UpstreamError
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorError
from app.linstor.errors import LinstorTimeout, LinstorUnavailable
from app.linstor.models import ResourceDefinition, VolumeDefinition
from app.naming import AuxCodec
from app.resolver import CacheCounters, CacheState, sizes_of
from app.settings import CacheMode, Settings
from tests.cache.fakes import FakePager

# a namespace other than Incus: the listing's props filter must come from the codec, not a literal
CODEC = AuxCodec("incus-volume-", "Lab")
HOUR = 3600.0


def rd(name: str, volume: str, *, snapshots: dict[str, str] | None = None) -> ResourceDefinition:
    """A custom volume's RD as LINSTOR lists it, its props written by the real codec."""
    key = VolumeKey("pool1", "default", VolumeType.CUSTOM, volume)
    props = CODEC.identity_props(key, ContentType.FILESYSTEM)
    props.update({CODEC.keys.snapshot(s): linstor for s, linstor in (snapshots or {}).items()})
    return ResourceDefinition(
        name=name,
        props=props,
        resource_group_name="pool1",
        volume_definitions=[VolumeDefinition(volume_number=0, size_kib=1024)],
    )


def record(name: str, volume: str) -> VolumeRecord:
    """The record that `rd(name, volume)` decodes to."""
    decoded = Decoder().decode(rd(name, volume))
    assert decoded is not None
    return decoded


class Decoder:
    """The resolver's part in a sync: the real codec, counters and the state of the syncs."""

    def __init__(self) -> None:
        self.codec = CODEC
        self.counters = CacheCounters()
        self.state = CacheState()

    def decode(self, definition: ResourceDefinition) -> VolumeRecord | None:
        """As Resolver.decode does."""
        return CODEC.decode(
            definition.resource_group_name, definition.name, definition.props, sizes_of(definition)
        )


class FakeLinstor(FakePager):
    """Lists `rds`, or raises `failure` (the next `failures` pages; None: every page)."""

    def __init__(self, rds: list[ResourceDefinition]) -> None:
        super().__init__(rds)
        self.failure: LinstorError | None = None
        self.failures: int | None = None
        self.while_listing: Callable[[], Awaitable[None]] | None = None

    async def before_page(self, offset: int) -> None:
        """Fail, or run `while_listing` (before a listing's first page)."""
        if self.failure is not None and self.failures != 0:
            if self.failures is not None:
                self.failures -= 1
            raise self.failure
        if self.while_listing is not None and offset == 0:
            await self.while_listing()


def settings(**overrides: object) -> Settings:
    """Service settings; the cache URL is the store's, given to CacheService directly."""
    values: dict[str, object] = {"cache_url": "sqlite://", "cache_resync_interval": 0.01}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def linstor() -> FakeLinstor:
    """Two volumes, one with a snapshot."""
    return FakeLinstor([rd("rd1", "v1", snapshots={"s0": "snap-rd1"}), rd("rd2", "v2")])


@pytest.fixture
def decoder() -> Decoder:
    """The resolver's stand-in."""
    return Decoder()


@pytest.fixture
def service(store: CacheStore, linstor: FakeLinstor, decoder: Decoder) -> CacheService:
    """The service on a migrated, empty store."""
    return CacheService(store, linstor, decoder, settings())


def counts(stats: CacheStats) -> tuple[int, int, float | None]:
    """Volume rows, snapshot rows and the last sync time."""
    return stats.volumes, stats.snapshots, stats.last_sync


async def execute(store: CacheStore, *statements: sa.Executable) -> None:
    """Write behind the store's back, as a clock that stepped back would have left the rows."""

    def run() -> None:
        with store.engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)

    await asyncio.to_thread(run)


@pytest.mark.parametrize("action", ["rebuild", "resync"])
@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (LinstorUnavailable("connection refused"), 503, "linstor_unavailable"),
        (LinstorTimeout("read timeout"), 504, "linstor_timeout"),
    ],
)
async def test_a_failed_listing_changes_nothing_and_is_translated(
    service: CacheService,
    store: CacheStore,
    linstor: FakeLinstor,
    action: str,
    failure: LinstorError,
    status: int,
    code: str,
) -> None:
    await service.rebuild()
    before = counts(await store.stats())
    assert before[:2] == (2, 1)
    linstor.failure = failure
    with pytest.raises(UpstreamError) as raised:
        await getattr(service, action)()
    assert (raised.value.status, raised.value.code) == (status, code)
    assert counts(await store.stats()) == before
    assert await store.by_rd("rd1") is not None


async def test_rebuild_fills_the_cache_from_linstor_alone(
    service: CacheService, store: CacheStore, linstor: FakeLinstor, decoder: Decoder
) -> None:
    await service.rebuild()
    # an operator deleted rd1, took a snapshot of rd2 and created rd3 with the linstor CLI
    linstor.rds = [rd("rd2", "v2", snapshots={"s1": "snap-rd2"}), rd("rd3", "v3")]
    result = await service.rebuild()
    assert linstor.calls[-1] == (["Aux/Lab/name"], 0, PAGE_SIZE)  # one page, filtered by the codec's key
    assert (result.volumes, result.written, result.deleted) == (2, 2, 1)
    assert await store.by_rd("rd1") is None
    assert await store.by_snapshot("snap-rd1") is None
    found = await store.by_snapshot("SNAP-RD2")
    assert found is not None
    assert found[1] == "s1"
    assert [v.record.rd_name for v in await store.list("pool1")] == ["rd2", "rd3"]
    assert (await store.stats()).last_sync == result.started_at
    assert decoder.counters.last_sync == result.finished_at


async def test_rebuild_replaces_rows_stamped_after_its_clock(
    service: CacheService, store: CacheStore, linstor: FakeLinstor
) -> None:
    """A clock stepped back leaves stamps in the future: a resync keeps them, a rebuild does not."""
    await store.put(record("stale", "gone-from-linstor"))
    await store.put(record("rd1", "old-name"))
    await store.put(record("rd2", "v2"))
    await store.delete("rd2")  # a tombstone that would keep rd2 out
    future = await store.clock() + HOUR
    await execute(
        store,
        volumes.update().values(updated_at=future),
        tombstones.update().values(deleted_at=future),
    )
    await store.mark_synced(future)

    await service.resync()
    assert await store.by_rd("stale") is not None  # kept as if newer than the listing
    assert await store.by_rd("rd2") is None

    result = await service.rebuild()
    assert await store.by_rd("stale") is None
    rd1 = await store.by_rd("rd1")
    assert rd1 is not None
    assert rd1.record.key.name == "v1"
    assert rd1.record.snapshots == {"s0": "snap-rd1"}
    assert await store.by_rd("rd2") is not None
    assert counts(await store.stats()) == (2, 1, result.started_at)


async def test_rebuild_keeps_a_write_through_newer_than_its_listing(
    service: CacheService, store: CacheStore, linstor: FakeLinstor
) -> None:
    """A volume created while the listing ran may be missing from it: its write-through stands."""

    async def create_meanwhile() -> None:
        await store.put(record("rd9", "v9"))

    linstor.while_listing = create_meanwhile
    await service.rebuild()
    assert await store.by_rd("rd9") is not None
    assert (await store.stats()).volumes == 3


async def test_report(service: CacheService, store: CacheStore, decoder: Decoder) -> None:
    decoder.counters.hits, decoder.counters.misses = 3, 1
    empty = await service.report()
    assert (empty.enabled, empty.mode, empty.backend) == (True, CacheMode.VERIFY, store.dialect)
    assert (empty.volumes, empty.snapshots, empty.last_sync, empty.age_seconds) == (0, 0, None, None)
    assert (empty.hits, empty.misses, empty.resync_interval) == (3, 1, 0.01)

    result = await service.rebuild()
    report = await service.report()
    assert (report.volumes, report.snapshots) == (2, 1)
    assert report.last_sync == datetime.fromtimestamp(result.started_at, tz=UTC)
    assert report.age_seconds is not None
    assert 0.0 <= report.age_seconds < 60.0


async def test_without_a_cache(linstor: FakeLinstor, decoder: Decoder) -> None:
    service = CacheService(None, linstor, decoder, settings(cache_mode="trust"))
    assert await service.report() == CacheSummary(
        enabled=False,
        mode=CacheMode.OFF,
        backend=None,
        volumes=0,
        snapshots=0,
        last_sync=None,
        age_seconds=None,
        resync_interval=0.01,
        hits=0,
        misses=0,
    )
    assert await service.resync() is None
    with pytest.raises(Conflict) as raised:
        await service.rebuild()
    assert (raised.value.status, raised.value.code) == (409, "cache_disabled")
    assert linstor.calls == []


async def test_keep_synced_retries_after_linstor_failed(
    service: CacheService, store: CacheStore, linstor: FakeLinstor, caplog: pytest.LogCaptureFixture
) -> None:
    linstor.failure, linstor.failures = LinstorUnavailable("connection refused"), 1
    task = asyncio.create_task(service.keep_synced())
    try:
        for _ in range(200):
            if (await store.stats()).last_sync is not None:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (await store.stats()).volumes == 2
    failed = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "app.cache_service"]
    assert [r.getMessage() for r in failed] == [
        "cache resync failed: cache resync: LINSTOR is unavailable; retrying in 0.01s"
    ]


# ---- what the service knows of its syncs: warm, rebuilding, failing -------------------------------------


async def test_a_first_sync_makes_the_cache_warm_and_a_rebuild_says_it_runs(
    service: CacheService, linstor: FakeLinstor, decoder: Decoder
) -> None:
    seen: list[bool] = []

    async def look() -> None:
        seen.append(decoder.state.rebuilding)

    linstor.while_listing = look
    assert (decoder.state.warm, decoder.state.complete) == (False, False)
    await service.resync()
    assert (decoder.state.warm, decoder.state.complete) == (True, True)
    await service.rebuild()
    assert seen == [False, True]  # the rebuild's listing ran while lists were told to ask LINSTOR
    assert (decoder.state.rebuilding, decoder.state.complete) == (False, True)
    report = await service.report()
    assert (report.warm, report.rebuilding, report.last_error, report.failing_since) == (
        True,
        False,
        None,
        None,
    )


async def test_failing_syncs_are_recorded_until_one_succeeds(
    service: CacheService, linstor: FakeLinstor, decoder: Decoder
) -> None:
    linstor.failure, linstor.failures = LinstorUnavailable("connection refused"), 2
    state = decoder.state
    first: float | None = None
    for attempt in (1, 2):
        with pytest.raises(UpstreamError):
            await (service.rebuild() if attempt == 2 else service.resync())
        assert (state.failures, state.last_error, state.warm, state.rebuilding) == (
            attempt,
            "connection refused",
            False,
            False,
        )
        first = first or state.last_error_at
        assert state.failing_since == first  # since the first of the failures in a row
    assert state.failing_since is not None
    assert state.last_error_at is not None
    report = await service.report()
    assert report.last_error == "connection refused"
    assert report.failing_since == datetime.fromtimestamp(state.failing_since, tz=UTC)
    assert report.last_error_at == datetime.fromtimestamp(state.last_error_at, tz=UTC)
    assert report.warm is False
    await service.resync()
    assert asdict(state) == {
        "warm": True,
        "rebuilding": False,
        "last_error": None,
        "last_error_at": None,
        "failing_since": None,
        "failures": 0,
    }


async def test_a_database_failure_is_said_in_one_line(
    service: CacheService, store: CacheStore, decoder: Decoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full\nSQL: INSERT INTO volumes ...")

    monkeypatch.setattr(store, "replace_all", broken)
    with pytest.raises(OSError, match="disk full"):
        await service.resync()
    assert decoder.state.last_error == "OSError: disk full"


def failing_since(decoder: Decoder) -> str:
    """How readiness words the start of the failures."""
    assert decoder.state.failing_since is not None
    return datetime.fromtimestamp(decoder.state.failing_since, tz=UTC).isoformat(timespec="seconds")


async def test_the_cache_is_warming_until_a_first_sync_succeeds(
    service: CacheService, linstor: FakeLinstor, decoder: Decoder
) -> None:
    assert await service.condition(wait=0.01) == Condition(False, "warming")
    linstor.failure, linstor.failures = LinstorUnavailable("connection refused"), 1
    with pytest.raises(UpstreamError):
        await service.resync()
    assert await service.condition(wait=10) == Condition(  # no first sync runs: nothing to wait for
        False, f"warming; resync failing since {failing_since(decoder)}: connection refused"
    )
    await service.resync()
    assert await service.condition(wait=0) == Condition(True, "ok")


async def test_readiness_waits_for_a_first_sync_under_way(
    service: CacheService, linstor: FakeLinstor
) -> None:
    """A probe at start-up waits, within its deadline, for the first sync rather than say warming."""

    async def slowly() -> None:
        await asyncio.sleep(0.05)

    async def first_sync() -> None:
        await service.resync()

    linstor.while_listing = slowly
    first = asyncio.create_task(first_sync())
    try:
        await asyncio.sleep(0)
        condition = await service.condition(wait=5)
    finally:
        await first
    assert condition == Condition(True, "ok")


@pytest.mark.parametrize("mode", ["verify", "trust"])
async def test_failing_resyncs_are_said_and_make_a_trusted_replica_not_ready(
    store: CacheStore, linstor: FakeLinstor, decoder: Decoder, mode: str
) -> None:
    """Verify mode answers from LINSTOR and stays ready; trust mode serves ever staler answers: after
    TRUSTED_FAILED_RESYNCS failures in a row it is not ready."""
    service = CacheService(store, linstor, decoder, settings(cache_mode=mode))
    await service.resync()
    linstor.failure = LinstorUnavailable("connection refused")
    for failures in range(1, TRUSTED_FAILED_RESYNCS + 2):
        with pytest.raises(UpstreamError):
            await service.resync()
        failing = f"resync failing since {failing_since(decoder)}: connection refused"
        if mode == "trust" and failures >= TRUSTED_FAILED_RESYNCS:
            expected = Condition(False, f"{failing} ({failures} in a row; trusted answers grow stale)")
        else:
            expected = Condition(True, failing)
        assert await service.condition(wait=0) == expected
    linstor.failure = None
    await service.resync()
    assert await service.condition(wait=0) == Condition(True, "ok")


async def test_without_a_cache_nothing_is_warming(linstor: FakeLinstor, decoder: Decoder) -> None:
    service = CacheService(None, linstor, decoder, settings())
    assert await service.condition(wait=1) == Condition(True, "ok")


@pytest.mark.parametrize(("size", "pages"), [(2, [(0, 2), (1, 2)]), (0, [(0, 0)])])
async def test_the_page_size_is_a_setting(
    store: CacheStore, linstor: FakeLinstor, decoder: Decoder, size: int, pages: list[tuple[int, int]]
) -> None:
    service = CacheService(store, linstor, decoder, settings(cache_sync_page_size=size))
    result = await service.rebuild()
    assert [(offset, limit) for _, offset, limit in linstor.calls] == pages
    assert result.volumes == 2
