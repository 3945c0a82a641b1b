"""full_sync with the real LinstorClient against the LINSTOR emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import pytest

from app.cache.store import CacheStore
from app.cache.sync import full_sync
from app.emulator import EmulatorState
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.errors import LinstorServerError, LinstorTimeout
from app.linstor.lean import LeanResourceDefinition
from app.linstor.models import AutoSelectFilter, ResourceGroupCreate
from app.linstor.transport import Deadlines, linstor_operation
from tests.cache.test_sync import KEYS, NS, decode


class RunningEmulator(Protocol):
    """What this test needs of the `emulator` fixture (tests/conftest.py)."""

    url: str
    state: EmulatorState


async def test_full_sync_from_the_emulator(store: CacheStore, emulator: RunningEmulator) -> None:
    async with LinstorClient(ConnectionConfig(urls=(emulator.url,)), retries=0) as client:
        select = AutoSelectFilter(place_count=1, storage_pool="thinpool")
        await client.create_resource_group(ResourceGroupCreate(name="pool1", select_filter=select))
        identity = {f"Aux/{NS}/name": "v1", f"Aux/{NS}/type": "custom", f"Aux/{NS}/project": "default"}
        snap = {f"Aux/{NS}/snapshot-name/s0": "incus-snapshot-abc"}
        await client.spawn("pool1", "incus-volume-1", [1024], props=identity | snap, definitions_only=True)
        other = {"Aux/Other/name": "x"}
        await client.spawn("pool1", "not-a-volume", [1024], props=other, definitions_only=True)

        result = await full_sync(store, client, keys=KEYS, decode=decode)

    assert (result.resource_definitions, result.volumes) == (1, 1)  # the props filter left the other out
    hit = await store.by_snapshot("INCUS-SNAPSHOT-ABC")
    assert hit is not None
    assert hit[1] == "s0"
    assert hit[0].record.rd_name == "incus-volume-1"
    assert hit[0].record.volume_sizes_kib == (1024,)


async def spawn_volumes(client: LinstorClient, count: int) -> None:
    """`count` volumes Vol0… of growing sizes in pool1, and one RD of another namespace."""
    select = AutoSelectFilter(place_count=1, storage_pool="thinpool")
    await client.create_resource_group(ResourceGroupCreate(name="pool1", select_filter=select))
    for i in range(count):
        identity = {f"Aux/{NS}/name": f"v{i}", f"Aux/{NS}/type": "custom", f"Aux/{NS}/project": "default"}
        await client.spawn("pool1", f"Vol{i}", [1024 * (i + 1)], props=identity, definitions_only=True)
    await client.spawn("pool1", "other", [1024], props={"Aux/Other/name": "x"}, definitions_only=True)


class FailsAfterFirstPage(LinstorClient):
    """The real client, with the emulator failing every listing page after the first."""

    def __init__(self, emulator: RunningEmulator) -> None:
        super().__init__(ConnectionConfig(urls=(emulator.url,)), retries=0)
        self.emulator = emulator
        self.pages = 0

    async def resource_definition_page(
        self, *, props: Iterable[str], offset: int = 0, limit: int = 0
    ) -> list[LeanResourceDefinition]:
        """One page; then LINSTOR answers 500."""
        self.pages += 1
        if self.pages == 2:
            self.emulator.state.add_fault(action="error", method="GET", path=r"^/v1/resource-definitions")
        return await super().resource_definition_page(props=props, offset=offset, limit=limit)


async def test_pages_from_the_emulator_and_a_failure_between_two(
    store: CacheStore, emulator: RunningEmulator
) -> None:
    async with LinstorClient(ConnectionConfig(urls=(emulator.url,)), retries=0) as client:
        await spawn_volumes(client, 5)
        first = await full_sync(store, client, keys=KEYS, decode=decode, page_size=2)
        assert (first.resource_definitions, first.volumes, first.written) == (5, 5, 5)
        cached = await store.list("pool1")
        assert [(v.record.rd_name, v.record.volume_sizes_kib) for v in cached] == [
            (f"Vol{i}", (1024 * (i + 1),)) for i in range(5)
        ]
        await client.delete_resource_definition("Vol0")

    async with FailsAfterFirstPage(emulator) as failing:
        try:
            with pytest.raises(LinstorServerError):
                await full_sync(store, failing, keys=KEYS, decode=decode, page_size=2)
        finally:
            emulator.state.clear_faults()
    assert failing.pages == 2
    assert len(await store.list("pool1")) == 5  # Vol0 stays: no half-applied listing
    assert (await store.stats()).last_sync == first.started_at


async def test_each_page_has_a_reads_deadline_not_the_whole_listing(
    store: CacheStore, emulator: RunningEmulator
) -> None:
    """Three pages of 0.3 s each in one sync: a read deadline of 0.5 s for the listing would time out."""
    deadlines = Deadlines(read=0.5)
    async with LinstorClient(
        ConnectionConfig(urls=(emulator.url,)), retries=0, deadlines=deadlines
    ) as client:
        await spawn_volumes(client, 5)
        emulator.state.add_fault(
            action="latency", method="GET", path=r"^/v1/resource-definitions", seconds=0.3
        )
        try:
            with linstor_operation():  # as CacheService runs a sync: one operation
                result = await full_sync(
                    store, client, keys=KEYS, decode=decode, page_size=2, page_deadline=0.5
                )
                with pytest.raises(LinstorTimeout):
                    await full_sync(store, client, keys=KEYS, decode=decode, page_size=2)
        finally:
            emulator.state.clear_faults()
    assert result.volumes == 5
