"""Fixtures of the emulator tests: a fresh state and an in-process httpx client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.emulator import EmulatorState, create_emulator_app


@pytest.fixture
def state() -> EmulatorState:
    """A fresh default cluster."""
    return EmulatorState()


@pytest.fixture
async def client(state: EmulatorState) -> AsyncIterator[httpx.AsyncClient]:
    """httpx over ASGITransport (no sockets)."""
    app = create_emulator_app(state=state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as c:
        yield c
