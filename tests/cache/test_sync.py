"""full_sync against a fake LINSTOR client."""

from __future__ import annotations

import pytest

from app.cache.store import CacheStore
from app.cache.sync import PAGE_SIZE, PAGED_ATTEMPTS, ResourceDefinitionLister, full_sync
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient
from app.linstor.errors import LinstorUnavailable
from app.linstor.lean import LeanResourceDefinition
from app.linstor.models import ResourceDefinition, VolumeDefinition
from app.naming import PropertyKeys
from tests.cache.fakes import FakePager, lean

NS = "Incus"
KEYS = PropertyKeys(NS)


def rd(
    name: str, volume: str | None, *, group: str = "pool1", snapshots: dict[str, str] | None = None
) -> ResourceDefinition:
    """An RD as LINSTOR lists it; `volume=None` gives one that is not a volume."""
    props = {f"Aux/{NS}/name": volume or "", f"Aux/{NS}/type": "custom", f"Aux/{NS}/project": "default"}
    if volume is None:
        props[f"Aux/{NS}/type"] = "bogus"
    for incus, linstor in (snapshots or {}).items():
        props[f"Aux/{NS}/snapshot-name/{incus}"] = linstor
    return ResourceDefinition(
        name=name,
        props=props,
        resource_group_name=group,
        volume_definitions=[VolumeDefinition(volume_number=0, size_kib=1024)],
    )


def decode(definition: LeanResourceDefinition) -> VolumeRecord | None:
    """A small stand-in for the service's decoder."""
    props = definition.props
    vtype = VolumeType.from_linstor(props.get(f"Aux/{NS}/type", ""))
    if vtype is None:
        return None
    prefix = f"Aux/{NS}/snapshot-name/"
    return VolumeRecord(
        key=VolumeKey(
            definition.resource_group_name, props[f"Aux/{NS}/project"], vtype, props[f"Aux/{NS}/name"]
        ),
        rd_name=definition.name,
        content_type=ContentType.FILESYSTEM,
        volume_sizes_kib=tuple(vd.size_kib for vd in definition.volume_definitions),
        snapshots={k.removeprefix(prefix): v for k, v in props.items() if k.startswith(prefix)},
    )


async def test_full_sync_fills_and_follows_linstor(store: CacheStore) -> None:
    linstor = FakePager(
        [rd("rd1", "v1", snapshots={"s0": "snap-rd1"}), rd("rd2", "v2", group="pool2"), rd("x", None)]
    )
    result = await full_sync(store, linstor, keys=KEYS, decode=decode)
    assert linstor.calls == [([f"Aux/{NS}/name"], 0, PAGE_SIZE)]  # one page, filtered to the namespace
    assert (result.resource_definitions, result.volumes, result.written, result.deleted) == (3, 2, 2, 0)
    assert result.duration >= 0
    stats = await store.stats()
    assert (stats.volumes, stats.snapshots, stats.last_sync) == (2, 1, result.started_at)
    assert (await store.by_snapshot("SNAP-RD1")) is not None
    assert (await store.by_rd("x")) is None

    # an operator deleted rd1 and created rd3 with the linstor CLI
    linstor.rds = [rd("rd2", "v2", group="pool2"), rd("rd3", "v3")]
    again = await full_sync(store, linstor, keys=KEYS, decode=decode)
    assert (again.written, again.deleted) == (1, 1)
    assert await store.by_rd("rd1") is None
    assert await store.by_snapshot("snap-rd1") is None
    assert [v.record.rd_name for v in await store.list("pool1")] == ["rd3"]
    assert (await store.stats()).last_sync == again.started_at


async def test_full_sync_of_many(store: CacheStore) -> None:
    linstor = FakePager([rd(f"rd{i}", f"v{i}") for i in range(1000)])  # decoded in a thread
    result = await full_sync(store, linstor, keys=KEYS, decode=decode)
    assert result.volumes == 1000
    assert len(await store.list("pool1")) == 1000


def _linstor_client_is_a_lister(client: LinstorClient) -> ResourceDefinitionLister:
    """mypy checks that full_sync accepts the real client."""
    return client


def volume(name: str, *, group: str = "pool1", snapshots: dict[str, str] | None = None) -> ResourceDefinition:
    """A volume's RD whose Aux name is its own name."""
    return rd(name, f"v-{name}", group=group, snapshots=snapshots)


def foreign(name: str) -> ResourceDefinition:
    """An RD the props filter let through that is no volume of ours: an odd type and foreign keys."""
    props = {f"Aux/{NS}/name": "x", f"Aux/{NS}/type": "vm", "Aux/Other/name": "y", "DrbdOptions/x": "1"}
    return ResourceDefinition(name=name, props=props, resource_group_name="pool1")


async def cached(store: CacheStore) -> dict[str, tuple[str, float]]:
    """Every cached volume: its name and stamp, by RD."""
    rows = await store.list("pool1") + await store.list("pool2")
    return {v.record.rd_name: (v.record.key.name, v.updated_at) for v in rows}


async def test_a_paged_listing_reads_every_rd_once(store: CacheStore) -> None:
    rds = [volume(f"rd{i:02}", snapshots={"s": f"snap{i}"}) for i in range(10)] + [foreign("odd")]
    linstor = FakePager(rds)
    result = await full_sync(store, linstor, keys=KEYS, decode=decode, page_size=4)
    # each page after the first starts at the last RD of the page before
    assert [(offset, limit) for _, offset, limit in linstor.calls] == [(0, 4), (3, 4), (6, 4), (9, 4)]
    assert (result.resource_definitions, result.volumes, result.written) == (11, 10, 10)
    assert sorted(await cached(store)) == [f"rd{i:02}" for i in range(10)]
    assert (await store.stats()).snapshots == 10


class Churn(FakePager):
    """Runs `change` before the second page of the first listing(s), `times` times in all."""

    def __init__(self, rds: list[ResourceDefinition], times: int, change: str) -> None:
        super().__init__(rds)
        self.times, self.change, self.made = times, change, 0

    async def before_page(self, offset: int) -> None:
        """Delete or create an RD before the window: the rest of the listing shifts."""
        if offset == 0 or self.made >= self.times:
            return
        self.made += 1
        if self.change == "delete":
            del self.rds[0]  # rd00, already listed
        else:
            self.rds.append(volume(f"new{self.made}"))  # sorts before every listed "RD…"


async def test_an_rd_deleted_between_pages_neither_hides_another_nor_is_kept(store: CacheStore) -> None:
    """Deleting rd00 (listed) shifts the window by one: a listing by plain offsets would skip rd04 and
    the sync would delete it from the cache."""
    await full_sync(store, FakePager([volume(f"rd{i:02}") for i in range(8)]), keys=KEYS, decode=decode)
    linstor = Churn([volume(f"rd{i:02}") for i in range(8)], times=1, change="delete")
    result = await full_sync(store, linstor, keys=KEYS, decode=decode, page_size=4)
    assert linstor.made == 1
    assert [offset for _, offset, _ in linstor.calls] == [0, 3, 0, 3, 6]  # moved, listed again
    assert sorted(await cached(store)) == [f"rd{i:02}" for i in range(1, 8)]
    assert (result.written, result.deleted) == (0, 1)


async def test_an_rd_created_between_pages_does_not_list_one_twice(store: CacheStore) -> None:
    linstor = Churn([volume(f"rd{i:02}") for i in range(8)], times=1, change="create")
    result = await full_sync(store, linstor, keys=KEYS, decode=decode, page_size=4)
    assert [offset for _, offset, _ in linstor.calls] == [0, 3, 0, 3, 6]
    assert (result.resource_definitions, result.volumes) == (9, 9)
    assert sorted(await cached(store)) == ["new1"] + [f"rd{i:02}" for i in range(8)]


async def test_a_listing_that_keeps_moving_is_read_in_one_get(store: CacheStore) -> None:
    linstor = Churn([volume(f"rd{i:02}") for i in range(8)], times=PAGED_ATTEMPTS, change="create")
    result = await full_sync(store, linstor, keys=KEYS, decode=decode, page_size=4)
    assert linstor.calls[-1][1:] == (0, 0)  # no limit: everything in one answer
    assert len(linstor.calls) == 2 * PAGED_ATTEMPTS + 1
    assert result.volumes == 8 + PAGED_ATTEMPTS


async def test_a_resync_writes_only_what_changed(store: CacheStore) -> None:
    rds = [volume(f"rd{i:02}") for i in range(6)] + [foreign("odd")]
    await full_sync(store, FakePager(rds), keys=KEYS, decode=decode, page_size=3)
    before = await cached(store)
    # behind the service: rd01 renamed, rd02 snapshotted, rd03 deleted, rd04 given a prop of another
    # namespace, rd05 resized, rd09 created; rd00 unchanged
    rds[1] = rd("rd01", "renamed")  # a changed Aux name
    rds[2] = volume("rd02", snapshots={"s": "snap"})
    rds[4].props["DrbdOptions/Resource/quorum"] = "majority"
    rds[5].volume_definitions[0].size_kib *= 2
    del rds[3]
    rds.append(volume("rd09"))
    result = await full_sync(store, FakePager(rds), keys=KEYS, decode=decode, page_size=3)
    assert (result.written, result.deleted) == (4, 1)
    after = await cached(store)
    assert sorted(after) == ["rd00", "rd01", "rd02", "rd04", "rd05", "rd09"]
    assert after["rd01"][0] == "renamed"
    assert (await store.by_snapshot("SNAP")) is not None
    assert (await store.by_rd("rd05")).record.volume_sizes_kib == (2048,)  # type: ignore[union-attr]
    for name in ("rd00", "rd04"):  # not rewritten: the stamps of the first sync
        assert after[name] == before[name]
    again = await full_sync(store, FakePager(rds), keys=KEYS, decode=decode, page_size=3)
    assert (again.written, again.deleted) == (0, 0)


async def test_a_failure_mid_listing_leaves_the_cache_as_it_was(store: CacheStore) -> None:
    rds = [volume(f"rd{i:02}") for i in range(6)]
    first = await full_sync(store, FakePager(rds), keys=KEYS, decode=decode)
    before = await cached(store)

    class FailsOnPageTwo(FakePager):
        async def before_page(self, offset: int) -> None:
            if offset > 0:
                raise LinstorUnavailable("connection reset")

    failing = FailsOnPageTwo([rds[0], rd("rd01", "renamed"), *rds[2:]])
    with pytest.raises(LinstorUnavailable):  # its first page alone would have renamed rd01
        await full_sync(store, failing, keys=KEYS, decode=decode, page_size=2)
    assert len(failing.calls) == 2
    assert await cached(store) == before
    assert (await store.stats()).last_sync == first.started_at


async def test_a_row_changed_since_it_was_listed_is_written_from_a_second_listing(store: CacheStore) -> None:
    """Another replica's sync (stamped before this listing) rewrote rd01 after this sync read the cache's
    fingerprints: the listing kept no record of rd01, so it lists again rather than leave that row."""
    rds = [volume(f"rd{i:02}") for i in range(4)]
    await full_sync(store, FakePager(rds), keys=KEYS, decode=decode)
    older = await store.clock()  # after the first sync's stamps, before the next sync's listing
    stale = [decode(lean(r)) for r in [rds[0], rd("rd01", "stale-name"), *rds[2:]]]

    class OlderSyncMeanwhile(FakePager):
        async def before_page(self, offset: int) -> None:
            if len(self.calls) == 1:  # after the fingerprints were read, before the write
                await store.replace_all([r for r in stale if r is not None], started_at=older)

    linstor = OlderSyncMeanwhile(rds)
    result = await full_sync(store, linstor, keys=KEYS, decode=decode)
    assert len(linstor.calls) == 2  # listed again
    assert result.written == 4  # all that sync wrote: its fingerprints are of records, not of RDs
    assert (await cached(store))["rd01"][0] == "v-rd01"
    assert (await cached(store))["rd01"][1] > older


async def test_a_new_salt_rewrites_every_row(store: CacheStore) -> None:
    """The salt stands for what else the decoder reads (the codec's prefix): changed, nothing is unchanged."""
    rds = [volume(f"rd{i:02}") for i in range(3)]
    await full_sync(store, FakePager(rds), keys=KEYS, decode=decode, salt="incus-volume-")
    again = await full_sync(store, FakePager(rds), keys=KEYS, decode=decode, salt="incus-volume-")
    assert again.written == 0
    other = await full_sync(store, FakePager(rds), keys=KEYS, decode=decode, salt="lab-")
    assert other.written == 3


async def test_an_unchanged_rd_is_not_decoded(store: CacheStore) -> None:
    rds = [volume(f"rd{i:02}") for i in range(3)]
    decoded: list[str] = []

    def counting(definition: LeanResourceDefinition) -> VolumeRecord | None:
        decoded.append(definition.name)
        return decode(definition)

    await full_sync(store, FakePager(rds), keys=KEYS, decode=counting)
    rds[1] = rd("rd01", "renamed")
    await full_sync(store, FakePager(rds), keys=KEYS, decode=counting)
    assert decoded == ["rd00", "rd01", "rd02", "rd01"]
