"""full_sync against a fake LINSTOR client."""

from __future__ import annotations

from app.cache.store import CacheStore
from app.cache.sync import ResourceDefinitionLister, full_sync
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType
from app.linstor import LinstorClient
from app.linstor.models import ResourceDefinition, VolumeDefinition
from app.naming import PropertyKeys

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


def decode(definition: ResourceDefinition) -> VolumeRecord | None:
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


class FakeLinstor:
    """Answers list_resource_definitions from a list, recording each call's arguments."""

    def __init__(self, rds: list[ResourceDefinition]) -> None:
        self.rds = rds
        self.calls: list[tuple[list[str] | None, bool]] = []

    async def list_resource_definitions(
        self, *, props: list[str] | None = None, with_volume_definitions: bool = False
    ) -> list[ResourceDefinition]:
        """The RDs, as if filtered by the controller."""
        self.calls.append((props, with_volume_definitions))
        return list(self.rds)


async def test_full_sync_fills_and_follows_linstor(store: CacheStore) -> None:
    linstor = FakeLinstor(
        [rd("rd1", "v1", snapshots={"s0": "snap-rd1"}), rd("rd2", "v2", group="pool2"), rd("x", None)]
    )
    result = await full_sync(store, linstor, keys=KEYS, decode=decode)
    assert linstor.calls == [([f"Aux/{NS}/name"], True)]  # one listing, filtered to the namespace
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
    linstor = FakeLinstor([rd(f"rd{i}", f"v{i}") for i in range(1000)])  # decoded in a thread
    result = await full_sync(store, linstor, keys=KEYS, decode=decode)
    assert result.volumes == 1000
    assert len(await store.list("pool1")) == 1000


def _linstor_client_is_a_lister(client: LinstorClient) -> ResourceDefinitionLister:
    """mypy checks that full_sync accepts the real client."""
    return client
