"""The connection slots of the LINSTOR exchange: first come first served, a timed-out or cancelled waiter
takes none, and no slot is lost to a cancellation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.linstor.slots import Slots


async def test_a_freed_slot_goes_to_the_longest_waiter() -> None:
    slots = Slots(1)
    assert slots.acquire_now()
    assert not slots.acquire_now()
    order: list[str] = []

    async def wait(name: str) -> None:
        await slots.acquire(5.0)
        order.append(name)

    first, second = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    slots.release()
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    slots.release()
    assert slots.acquire_now()


async def test_a_waiter_gives_up_after_its_timeout_and_takes_no_slot() -> None:
    slots = Slots(1)
    assert slots.acquire_now()
    with pytest.raises(httpx.PoolTimeout):
        await slots.acquire(0.05)
    slots.release()
    assert slots.acquire_now()  # the slot came back free, not to the waiter that gave up


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    slots = Slots(1)
    assert slots.acquire_now()
    waiter = asyncio.create_task(slots.acquire(5.0))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release()
    assert slots.acquire_now()


async def test_a_slot_handed_to_a_waiter_cancelled_before_it_ran_is_passed_on() -> None:
    """release() hands the slot over, then the waiter is cancelled before it resumes: the slot must not be
    lost with it, or the pool shrinks by one at every such cancellation."""
    slots = Slots(1)
    assert slots.acquire_now()
    cancelled = asyncio.create_task(slots.acquire(5.0))
    await asyncio.sleep(0)
    slots.release()  # handed to `cancelled`, which has not run yet
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert slots.acquire_now()
