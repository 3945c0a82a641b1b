"""Exactly one winner across replicas (app/claims.py): two services that share only LINSTOR race onto one
identity; the in-process lock cannot see the other replica, the claim RD can."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from app.claims import CLAIM_PREFIX
from app.errors import Conflict, NotFound, ServiceError
from app.identity import VolumeRecord, VolumeType
from app.resolver import Resolver
from app.settings import CacheMode
from app.specs import CreateSpec, SourceSpec, make_key
from app.volumes import VolumeService
from tests.support.domain import POOL, Domain, domain


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


def _claims(d: Domain) -> list[str]:
    return [name for name in d.state.rds if name.upper().startswith(CLAIM_PREFIX.upper())]


async def _claimed_while(d: Domain, change: Awaitable[object]) -> object:
    """Run `change` and report whether its claim RD existed before the slowed lookup had answered."""
    task = asyncio.ensure_future(change)
    for _ in range(50):  # the lookup takes 1 s; a claim POST alone takes milliseconds
        await asyncio.sleep(0.01)
        if _claims(d):
            break
    seen = bool(_claims(d))
    await task
    return seen


async def test_the_pool_is_looked_up_while_the_claim_is_taken() -> None:
    """A create's first two calls, the pool (GET the RG) and the claim (POST an RD), are one round trip."""
    async with domain(mode=CacheMode.OFF, cache=False) as d:
        d.state.add_fault(action="latency", method="GET", path=rf"^/v1/resource-groups/{POOL}$", seconds=1.0)
        spec = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 20)
        assert await _claimed_while(d, d.volumes.create(POOL, spec)) is True
        assert _claims(d) == []


async def test_a_renamed_volume_is_looked_up_while_the_claim_is_taken() -> None:
    """A rename's lookup of its volume (a props-filtered scan) and its claim on the new name overlap."""
    async with domain(mode=CacheMode.OFF, cache=False) as d:
        spec = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 20)
        await d.volumes.create(POOL, spec)
        d.state.add_fault(
            action="latency", method="GET", path=r"^/v1/resource-definitions$", times=1, seconds=1.0
        )
        key = make_key(POOL, "default", VolumeType.CONTAINER, "c1")
        assert await _claimed_while(d, d.volumes.rename(key, "c2")) is True
        assert _claims(d) == []


@pytest.mark.parametrize(
    "change", ["create in a missing pool", "rename a missing volume", "copy a missing source"]
)
async def test_a_failed_lookup_gives_its_own_error_and_releases_the_claim_taken_beside_it(
    change: str,
) -> None:
    """The lookup is slowed, so that the claim is surely taken before it fails: then released, not left to
    block the identity until it expires. Its error is the one a lookup before the claim would have given."""
    async with domain(mode=CacheMode.OFF, cache=False) as d:
        d.state.add_fault(action="latency", method="GET", seconds=0.3)
        spec = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 20)
        key = make_key(POOL, "default", VolumeType.CONTAINER, "gone")
        copy = replace(spec, size_bytes=None, source=SourceSpec(name="gone", type=VolumeType.CONTAINER))
        calls: dict[str, tuple[Callable[[], Awaitable[object]], str]] = {
            "create in a missing pool": (lambda: d.volumes.create("nopool", spec), "pool_not_found"),
            "rename a missing volume": (lambda: d.volumes.rename(key, "c2"), "volume_not_found"),
            "copy a missing source": (lambda: d.volumes.create(POOL, copy), "source_not_found"),
        }
        call, code = calls[change]
        with pytest.raises(NotFound) as raised:
            await call()
        assert raised.value.code == code
        assert d.writes("POST", "/v1/resource-definitions"), "the claim was not taken beside the lookup"
        assert _claims(d) == []


@pytest.mark.parametrize(
    ("pool", "code"), [("not a pool!", "invalid_pool"), ("LINSTOR-NAMES-STAGING", "pool_not_found")]
)
async def test_a_create_in_what_cannot_be_a_pool_takes_no_claim(pool: str, code: str) -> None:
    """What the pool's name alone rules out is refused before the claim goes out beside the pool's lookup."""
    async with domain(mode=CacheMode.OFF, cache=False) as d:
        spec = CreateSpec(name="c1", type=VolumeType.CONTAINER, size_bytes=1 << 20)
        with pytest.raises(ServiceError) as raised:
            await d.volumes.create(pool, spec)
        assert raised.value.code == code
        assert not d.writes("POST", "/v1/resource-definitions")
