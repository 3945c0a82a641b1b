"""The connection slots of the LINSTOR exchange: `size` connections at most, first come first served."""

from __future__ import annotations

import asyncio
from collections import deque

import httpx


class Slots:
    """`size` connections at most: a freed slot goes to the longest waiter; a waiter gives up after its
    timeout with PoolTimeout. An asyncio.Semaphore under asyncio.timeout did this for ~5 us more a wait."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def acquire_now(self) -> bool:
        """Take a free slot if there is one."""
        if self._free:  # a slot is only ever free while nobody waits: release() hands it over
            self._free -= 1
            return True
        return False

    async def acquire(self, seconds: float) -> None:
        """Wait at most `seconds` for a slot."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot, then cancelled before it could run: pass the slot on
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give a slot back: to the longest waiter still waiting, or to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # not timed out nor cancelled
                waiter.set_result(None)
                return
        self._free += 1


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.PoolTimeout("no free connection in time"))
