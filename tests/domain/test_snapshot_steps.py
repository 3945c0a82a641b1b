"""Snapshot steps in a crash-safe order (issue 10): the mapping key is written before the snapshot."""

from __future__ import annotations

from app.identity import VolumeType
from app.specs import CreateSpec
from tests.support.domain import POOL, domain

PUT_RD = ("PUT", "/v1/resource-definitions/{resource}")
POST_SNAP = ("POST", "/v1/resource-definitions/{resource}/snapshots")


async def test_the_mapping_is_written_before_the_snapshot_is_taken() -> None:
    """A crash between the two steps leaves a key whose snapshot is missing (read as no snapshot), never a
    LINSTOR snapshot that no key maps."""
    async with domain() as d:
        vol = await d.volumes.create(
            POOL, CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 20)
        )
        d.seen.clear()
        await d.snapshots.create(vol.key, "s0")
        writes = [(e.method, e.route) for e in d.seen if e.method != "GET"]
        assert writes[:2] == [PUT_RD, POST_SNAP]
