"""Where a mutation's CPU goes: the service in this process, each operation's CPU split by layer.

`make bench` gives each operation's own time (through the service, minus its LINSTOR calls replayed) and its
CPU; this says which part of that CPU is whose. The app runs in this process (called as ASGI, no server, its
JSON log lines to /dev/null) against the emulator in another, on the cycle `make bench` times: create,
rename, snapshot and delete of a volume, one after another. For each operation it gives the CPU this process
spent, and how much of it went while a LINSTOR call was in flight (the whole client: the session's
deadline, encoding, decoding and metrics, and the exchange under it), while the exchange alone was
(app/linstor/h1.py: the bytes on the wire and the parsing of the answer), on cache writes, on the route's
other work (the domain) and on the log lines; the rest is the framework and the middleware. Calls sent
together count once.

Then one scan (a props-filtered GET /v1/resource-definitions, as each operation sends) repeated alone, one
call at a time, by three clients in this process: the standard library's http.client (the one `make bench`
replays an operation's calls with), a bare aiohttp session, and the service's LinstorClient.

Medians of `--rounds` interleaved rounds. Not part of `make bench`: a diagnosis, not a target.

Run: .venv/bin/python -m tests.benchmarks.bench_split [--cycles 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import inspect
import logging
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import fastapi.routing
import orjson
import uvloop
from fastapi import FastAPI

from app.api import observe
from app.cache.store import CacheStore
from app.emulator import EmulatorState
from app.emulator.rg_ops import create_rg
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.h1 import H1Exchange
from app.linstor.transport import LinstorSession
from app.logs import LogFormat, configure
from app.main import create_app
from app.metrics import Metrics
from app.settings import CacheMode, Settings
from tests.benchmarks.bench import OPERATIONS, VOLUMES
from tests.benchmarks.harness import POOL, emulator
from tests.support.asgi import http_scope

LAYERS = ("endpoint", "linstor", "exchange", "cache", "logs")
# the scan of the reference cells: the props filter a lookup of volume `v` sends
SCAN = "/v1/resource-definitions?" + urlencode(
    [("props", "Aux/Incus/name=custom_v"), ("props", "Aux/Incus/type=custom")]
)


@dataclass
class Probe:
    """CPU seconds while at least one call of the patched coroutine is in flight, and how many there were."""

    cpu: float = 0.0
    calls: int = 0
    _open: int = 0
    _since: float = 0.0

    def enter(self) -> None:
        if self._open == 0:
            self._since = time.process_time()
        self._open += 1
        self.calls += 1

    def leave(self) -> None:
        self._open -= 1
        if self._open == 0:
            self.cpu += time.process_time() - self._since


@dataclass
class Split:
    """One operation's figures over one round: CPU in all, CPU per layer, calls per layer."""

    cpu: float = 0.0
    layers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0.0))
    calls: Counter[str] = field(default_factory=Counter)


@contextmanager
def probed(probes: dict[str, Probe]) -> Iterator[None]:
    """The layers' coroutines, each wrapped in its probe while the block runs."""
    targets: list[tuple[Any, str, Probe]] = [
        (fastapi.routing, "run_endpoint_function", probes["endpoint"]),  # looked up at each call
        (LinstorSession, "_request", probes["linstor"]),
        (H1Exchange, "send", probes["exchange"]),
        (CacheStore, "_write_through", probes["cache"]),
        (observe, "info_fields", probes["logs"]),
        (observe, "_audit", probes["logs"]),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    for owner, name, probe in targets:
        setattr(owner, name, _wrap(getattr(owner, name), probe))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _wrap(original: Callable[..., Any], probe: Probe) -> Callable[..., Any]:
    if not inspect.iscoroutinefunction(original):

        def plain(*args: Any, **kwargs: Any) -> Any:
            probe.enter()
            try:
                return original(*args, **kwargs)
            finally:
                probe.leave()

        return plain

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        probe.enter()
        try:
            return await original(*args, **kwargs)
        finally:
            probe.leave()

    return wrapper


async def asgi(app: FastAPI, method: str, path: str, body: dict[str, str] | None) -> None:
    """One request straight into the app, as uvicorn would pass it; raises unless it answers 2xx."""
    content = orjson.dumps(body) if body is not None else b""
    headers = [(b"host", b"127.0.0.1")]
    if content:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    scope = http_scope(method, path, headers)
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": content, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if not statuses or statuses[0] >= 300:
        raise RuntimeError(f"{method} {path}: {statuses}")


async def cycle(app: FastAPI, tag: str, splits: dict[str, Split], probes: dict[str, Probe]) -> None:
    """Create, rename, snapshot and delete volume `tag`, adding each operation's figures to `splits`."""
    requests = {
        "create": ("POST", VOLUMES, {"name": tag, "type": "custom", "size": "1GiB"}),
        "rename": ("PATCH", f"{VOLUMES}/custom/{tag}", {"name": f"{tag}r"}),
        "snapshot": ("POST", f"{VOLUMES}/custom/{tag}r/snapshots", {"name": "s"}),
        "delete": ("DELETE", f"{VOLUMES}/custom/{tag}r", None),
    }
    for op in OPERATIONS:
        before = {layer: (probes[layer].cpu, probes[layer].calls) for layer in LAYERS}
        started = time.process_time()
        await asgi(app, *requests[op])
        split = splits[op]
        split.cpu += time.process_time() - started
        for layer in LAYERS:
            split.layers[layer] += probes[layer].cpu - before[layer][0]
            split.calls[layer] += probes[layer].calls - before[layer][1]


async def per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """CPU seconds per call of `call`, made `calls` times one after another."""
    started = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - started) / calls


async def measure(linstor: str, work: Path, cycles: int, rounds: int) -> list[str]:
    """The table's lines."""
    settings = Settings(
        cache_url=f"sqlite:///{work}/cache.db", cache_mode=CacheMode.VERIFY, cache_resync_interval=3600
    )
    app = create_app(settings, linstor=ConnectionConfig(urls=(linstor,)))
    configure(LogFormat.JSON, "info")  # the service's default: one JSON line per request
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open("/dev/null", "w"))
    probes = {layer: Probe() for layer in LAYERS}
    rows: dict[str, list[Split]] = {op: [] for op in OPERATIONS}
    reference: dict[str, list[float]] = {"http.client": [], "aiohttp": [], "LinstorClient": []}
    url = urlsplit(linstor)
    plain = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
    async with (
        app.router.lifespan_context(app),
        aiohttp.ClientSession() as bare,
        LinstorClient(ConnectionConfig(urls=(linstor,)), observer=Metrics(lambda: None)) as client,
    ):

        async def blocking() -> None:
            plain.request("GET", SCAN)
            plain.getresponse().read()

        async def aio() -> None:
            async with bare.get(linstor + SCAN) as answer:
                await answer.read()

        async def session() -> None:
            await client.list_resource_definitions(props=["Aux/Incus/name=custom_v", "Aux/Incus/type=custom"])

        clients = {"http.client": blocking, "aiohttp": aio, "LinstorClient": session}
        for k in range(20):  # first-use work (pool lookups, connections, caches) stays out
            await cycle(app, f"warm{k}", {op: Split() for op in OPERATIONS}, probes)
        for call in clients.values():
            await per_call(call, 100)
        with probed(probes):
            for r in range(rounds):
                splits = {op: Split() for op in OPERATIONS}
                for k in range(cycles):
                    await cycle(app, f"r{r}v{k}", splits, probes)
                for op in OPERATIONS:
                    rows[op].append(splits[op])
                for name, call in clients.items():
                    reference[name].append(await per_call(call, cycles * 2))
    plain.close()
    return _table(rows, reference, cycles)


def _table(rows: dict[str, list[Split]], reference: dict[str, list[float]], cycles: int) -> list[str]:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) / cycles * 1000:.3f} ms"

    lines = [
        "| operation | CPU | LINSTOR calls | in LINSTOR calls | of which the exchange | cache writes | "
        "the route's other work | log lines | framework and middleware |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op, splits in rows.items():
        route = [s.layers["endpoint"] - s.layers["linstor"] - s.layers["cache"] for s in splits]
        rest = [s.cpu - s.layers["endpoint"] - s.layers["logs"] for s in splits]
        lines.append(
            f"| {op} | {ms([s.cpu for s in splits])} | {splits[0].calls['linstor'] / cycles:.0f} | "
            f"{ms([s.layers['linstor'] for s in splits])} | {ms([s.layers['exchange'] for s in splits])} | "
            f"{ms([s.layers['cache'] for s in splits])} | {ms(route)} | "
            f"{ms([s.layers['logs'] for s in splits])} | {ms(rest)} |"
        )
    lines.append("")
    lines.append("| one scan alone, one call at a time | CPU per call (µs) |")
    lines.append("|---|---:|")
    for name, values in reference.items():
        lines.append(f"| {name} | {statistics.median(values) * 1e6:.0f} |")
    return lines


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=300, help="cycles per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-split-"))
    state = EmulatorState()
    create_rg(state, {"name": POOL, "select_filter": {"place_count": 2}})
    state.save(work / "state.json")
    with emulator(work / "state.json") as linstor:
        lines = uvloop.run(measure(linstor, work, args.cycles, args.rounds))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
