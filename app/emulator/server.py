"""Run the emulator under uvicorn; the runner can stop listening for a while (clients see ECONNREFUSED)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.emulator.app import create_emulator_app
from app.emulator.store import EmulatorState

log = logging.getLogger(__name__)


class EmulatorServer(uvicorn.Server):
    """uvicorn.Server that registers a refuse hook on the state: close the listener, reopen it later."""

    def __init__(self, config: uvicorn.Config, state: EmulatorState) -> None:
        super().__init__(config)
        self.state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        state.refuse_hook = self.refuse

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup, remembering the loop for the refuse hook."""
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def refuse(self, seconds: float) -> None:
        """Stop accepting connections for `seconds` (callable from the loop or from another thread)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the emulator server is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(self._refuse(seconds))
        else:
            asyncio.run_coroutine_threadsafe(self._refuse(seconds), loop).result(timeout=5)

    async def _refuse(self, seconds: float) -> None:
        config = self.config

        # uvicorn's own Server.startup builds the same protocol factory; asyncio keeps none we could reuse
        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
            )

        sockets = [sock for server in self.servers for sock in (server.sockets or ())]
        addresses = [sock.getsockname()[:2] for sock in sockets]
        for server in self.servers:
            server.close()
        # keep-alive connections would still be answered: close them once idle, so clients must reconnect
        for connection in list(self.server_state.connections):
            connection.shutdown()
        log.info("emulator refusing connections for %.1fs", seconds)
        await asyncio.sleep(seconds)
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        self.servers = [
            await loop.create_server(create_protocol, host=host, port=port, backlog=config.backlog)
            for host, port in addresses
        ]
        log.info("emulator listening again")


def run_emulator(
    host: str,
    port: int,
    *,
    state_file: str | None = None,
    layout: str = "default",
    satellites: Iterable[str] | Mapping[str, str] | None = None,
    drbd: bool | None = None,
    controls: bool = False,
    state_dir: str | None = None,
) -> None:
    """Serve the emulator until interrupted; load `state_file` at start if it exists, save it at shutdown.
    `layout`, `satellites` and `drbd` are EmulatorState's options (None: its defaults); `controls` and
    `state_dir` are create_emulator_app's."""
    state = EmulatorState(layout=layout, satellites=satellites, drbd=drbd)
    if state_file and Path(state_file).exists():
        state.load(state_file)
    app: ASGIApp = create_emulator_app(state=state, controls=controls, state_dir=state_dir)
    if state_file:
        app = _save_at_shutdown(app, state, state_file)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="info")
    EmulatorServer(config, state).run()


def _save_at_shutdown(app: ASGIApp, state: EmulatorState, path: str) -> ASGIApp:
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down, so code after run() never runs: save while
    # the lifespan shuts down instead.
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def recv() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                state.save(path)
            return message

        await app(scope, recv, send)

    return wrapped
