"""full_sync with the real LinstorClient against the LINSTOR emulator over HTTP."""

from __future__ import annotations

from typing import Protocol

from app.cache.store import CacheStore
from app.cache.sync import full_sync
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import AutoSelectFilter, ResourceGroupCreate
from tests.cache.test_sync import KEYS, NS, decode


class RunningEmulator(Protocol):
    """What this test needs of the `emulator` fixture (tests/conftest.py)."""

    url: str


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
