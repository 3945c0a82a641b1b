"""The domain without HTTP in front: a VolumeService on the in-process emulator and a fake cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from app.emulator import EmulatorState, ExchangeRecord, create_emulator_app
from app.identity import VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import AutoSelectFilter, ResourceGroupCreate
from app.naming import AuxCodec
from app.resolver import Resolver, same_pool
from app.settings import CacheMode, Settings
from app.snapshots import SnapshotService
from app.volumes import VolumeService

POOL = "linstor"


@dataclass(frozen=True)
class Row:
    """A fake cache row."""

    record: VolumeRecord
    updated_at: float = 0.0


@dataclass
class FakeCache:
    """The resolver's CacheBackend in a dict: enough to see what the domain reads and writes."""

    rows: dict[str, VolumeRecord] = field(default_factory=dict)

    async def by_key(self, key: VolumeKey) -> Sequence[Row]:
        """Rows holding `key`."""
        return [Row(r) for r in self.rows.values() if r.key == key]

    async def by_rd(self, rd_name: str) -> Row | None:
        """The row of one RD."""
        record = self.rows.get(rd_name)
        return Row(record) if record is not None else None

    async def by_snapshot(self, linstor_snapshot: str) -> tuple[Row, str] | None:
        """The row mapping a LINSTOR snapshot, and the Incus name."""
        for record in self.rows.values():
            for incus, linstor in record.snapshots.items():
                if linstor.upper() == linstor_snapshot.upper():
                    return Row(record), incus
        return None

    async def list(
        self, pool: str, *, project: str | None = None, type: VolumeType | None = None
    ) -> Iterable[Row]:
        """Rows of a pool."""
        return [
            Row(r)
            for r in self.rows.values()
            if same_pool(r.key.pool, pool) and project in (None, r.key.project) and type in (None, r.key.type)
        ]

    async def put(self, record: VolumeRecord) -> None:
        """Write one row."""
        self.rows[record.rd_name] = record

    async def delete(self, rd_name: str) -> None:
        """Drop one row."""
        self.rows.pop(rd_name, None)


@dataclass
class Domain:
    """A volume service, its snapshot service, the emulator behind them and what the emulator saw."""

    volumes: VolumeService
    snapshots: SnapshotService
    client: LinstorClient
    state: EmulatorState
    cache: FakeCache | None
    seen: list[ExchangeRecord]

    def writes(self, method: str, route: str) -> list[ExchangeRecord]:
        """The exchanges of one method and emulator route template."""
        return [e for e in self.seen if e.method == method and e.route == route]


@asynccontextmanager
async def domain(*, mode: CacheMode = CacheMode.VERIFY, cache: bool = True) -> AsyncIterator[Domain]:
    """A fresh emulator (with pool `linstor`, 2 replicas) and the domain services on top of it."""
    seen: list[ExchangeRecord] = []
    state = EmulatorState()
    app = create_emulator_app(state=state, observer=seen.append)
    settings = Settings(cache_url="none", clone_poll_interval=0.01, clone_timeout=5.0)
    fake = FakeCache() if cache else None
    async with LinstorClient(
        ConnectionConfig(urls=("http://emulator",)), transport=httpx.ASGITransport(app=app), retries=0
    ) as client:
        await client.create_resource_group(
            ResourceGroupCreate(name=POOL, select_filter=AutoSelectFilter(place_count=2))
        )
        resolver = Resolver(client, AuxCodec(settings.volume_prefix, settings.property_namespace), fake, mode)
        volumes = VolumeService(client, resolver, settings)
        seen.clear()
        yield Domain(volumes, SnapshotService(volumes), client, state, fake, seen)
