"""Emulator helpers for tests: a real emulator server in a thread, and changes behind the API's back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.emulator import EmulatorServer, EmulatorState, create_emulator_app
from tests.support.server import free_port, threaded


@contextmanager
def running_emulator(
    state: EmulatorState | None = None, port: int | None = None
) -> Iterator[tuple[str, EmulatorState]]:
    """Run an EmulatorServer (refuse support, controls on) on 127.0.0.1 in a thread; yields (URL, state)."""
    state = state if state is not None else EmulatorState()
    port = port or free_port()
    config = uvicorn.Config(
        create_emulator_app(state=state, controls=True),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
    )
    server = EmulatorServer(config, state)
    try:
        with threaded(server):
            yield f"http://127.0.0.1:{port}", state
    finally:
        state.refuse_hook = None


def set_rd_props(state: EmulatorState, name: str, props: dict[str, str]) -> None:
    """Replace an RD's props behind the service's back (no validation)."""
    with state.lock:
        state.rds[name.upper()].props = dict(props)
