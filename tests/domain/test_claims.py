"""Exactly one winner across replicas (app/claims.py): two services that share only LINSTOR race onto one
identity; the in-process lock cannot see the other replica, the claim RD can."""

from __future__ import annotations

import asyncio

from app.errors import Conflict
from app.identity import VolumeRecord, VolumeType
from app.resolver import Resolver
from app.settings import CacheMode
from app.specs import CreateSpec
from app.volumes import VolumeService
from tests.support.domain import POOL, domain


async def test_two_replicas_racing_onto_one_identity_make_exactly_one_volume() -> None:
    """20 creates of one identity through two replicas, 8 rounds, LINSTOR slowed down to widen the window:
    each round one volume, one RD, and every loser a 409."""
    async with domain(mode=CacheMode.OFF, cache=False) as d:
        first = d.volumes
        second = VolumeService(
            first.client, Resolver(first.client, first.codec, None, CacheMode.OFF), first.settings
        )
        d.state.add_fault(action="latency", method="POST", path=r"/spawn$", seconds=0.05)
        for round_ in range(8):
            spec = CreateSpec(name=f"r{round_}", type=VolumeType.CONTAINER, size_bytes=1 << 20)
            results = await asyncio.gather(
                *(replica.create(POOL, spec) for replica in [first, second] * 10), return_exceptions=True
            )
            winners = [r for r in results if isinstance(r, VolumeRecord)]
            losers = [r for r in results if isinstance(r, Conflict)]
            assert (len(winners), len(losers)) == (1, 19), results
            assert {r.code for r in losers} <= {"volume_exists", "operation_in_progress"}
            rds = await d.client.list_resource_definitions(props=[f"Aux/Incus/name=incus-volume-r{round_}"])
            assert [rd.name for rd in rds] == [winners[0].rd_name]
        d.state.clear_faults()
