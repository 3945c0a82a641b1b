"""Fixtures of the emulator tests: a fresh state and an in-process httpx client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.emulator import EmulatorState, create_emulator_app


@pytest.fixture
def state() -> EmulatorState:
    """A fresh default cluster."""
    return EmulatorState()


@pytest.fixture
async def client(state: EmulatorState, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """httpx over ASGITransport (no sockets), with the /_emulator controls on (save/load in tmp_path)."""
    app = create_emulator_app(state=state, controls=True, state_dir=tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as c:
        yield c
