"""LINSTOR client benchmark: the project's client under concurrency, against httpx's pool and plain aiohttp.

The emulator runs in a separate process on 127.0.0.1 with RDS resource definitions; this process drives it
with one of three clients at a time, each doing the GET of a verify-mode confirmation (GET
/v1/resource-definitions/{rd}, a random RD each call):

* `client`: the project's LinstorClient as the service builds it (default transport, retries, deadlines,
  decoding into the pydantic model, the app's metrics observer);
* `client-httpx`: the same client on httpx's own transport (httpcore's pool, the one it used before);
* `aiohttp`: a bare aiohttp session: GET, status check, orjson.loads, nothing else (the reference).

Every cell (client x concurrent calls) runs for a fixed time, the clients interleaved within each round (their
order rotating between rounds); the table gives the medians over the rounds: calls/s, p50 and p99 latency,
the CPU this process spent per call (time.process_time), and the throughput as a share of aiohttp's.

Run: .venv/bin/python -m tests.benchmarks.bench_client [--duration S] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson

from app.emulator import EmulatorState
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.metrics import Metrics
from tests.benchmarks.harness import emulator, fill

TARGETS = ("client", "client-httpx", "aiohttp")
CONCURRENCY = (1, 16, 64)
RDS = 200
CONNECTIONS = 32  # the service's default cap (LINSTOR_NAMES_LINSTOR_MAX_CONNECTIONS), for every client

Call = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    """One cell of the table: medians over the rounds."""

    target: str
    concurrency: int
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float
    vs_aiohttp: float  # calls/s as a share of plain aiohttp's at the same concurrency

    def line(self) -> str:
        """The row in the printed table."""
        return (
            f"| {self.target:<12} | {self.concurrency:>3} | {self.calls_per_s:>8.0f} | {self.p50_ms:>6.2f} "
            f"| {self.p99_ms:>7.2f} | {self.cpu_ms_per_call:>6.3f} | {self.vs_aiohttp:>5.2f} |"
        )


HEADER = (
    "| client       |  c  |  calls/s | p50 ms |  p99 ms | CPU ms | vs aiohttp |\n"
    "|--------------|----:|---------:|-------:|--------:|-------:|-----------:|"
)


@dataclass(frozen=True)
class Sample:
    """One measurement of one cell."""

    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float


Samples = dict[tuple[str, int], list[Sample]]


async def measure(call: Call, names: list[str], concurrency: int, duration: float) -> Sample:
    """`concurrency` workers calling `call` back to back for `duration` seconds."""
    latencies: list[float] = []
    rng = random.Random(concurrency)
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        while (started := time.perf_counter()) < stop_at:
            await call(rng.choice(names))
            latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies.sort()
    n = len(latencies)
    return Sample(
        calls_per_s=n / wall,
        p50_ms=latencies[n // 2] * 1000,
        p99_ms=latencies[min(n - 1, int(n * 0.99))] * 1000,
        cpu_ms_per_call=cpu / n * 1000,
    )


async def clients(stack: AsyncExitStack, url: str) -> dict[str, Call]:
    """The three clients, opened on `stack`."""
    config = ConnectionConfig(urls=(url,))
    project = await stack.enter_async_context(
        LinstorClient(config, max_connections=CONNECTIONS, observer=Metrics(lambda: None))
    )
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    old = await stack.enter_async_context(
        LinstorClient(
            config,
            max_connections=CONNECTIONS,
            observer=Metrics(lambda: None),
            transport=httpx.AsyncHTTPTransport(limits=limits),
        )
    )
    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS))
    )

    async def plain(name: str) -> None:
        async with session.get(f"{url}/v1/resource-definitions/{name}") as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {name}: {response.status}")
            orjson.loads(body)

    async def get_with(client: LinstorClient, name: str) -> None:
        await client.get_resource_definition(name)

    return {
        "client": lambda name: get_with(project, name),
        "client-httpx": lambda name: get_with(old, name),
        "aiohttp": plain,
    }


async def _rounds(url: str, names: list[str], duration: float, rounds: int) -> Samples:
    samples: Samples = {}
    async with AsyncExitStack() as stack:
        calls = await clients(stack, url)
        for call in calls.values():  # warm up: connections open, code paths hot
            await measure(call, names, 8, min(duration, 0.2))
        for r in range(rounds):
            order = TARGETS[r % len(TARGETS) :] + TARGETS[: r % len(TARGETS)]
            for concurrency in CONCURRENCY:
                for target in order:
                    sample = await measure(calls[target], names, concurrency, duration)
                    samples.setdefault((target, concurrency), []).append(sample)
    return samples


def _rows(samples: Samples) -> list[Row]:
    def median(target: str, concurrency: int, field: str) -> float:
        return float(statistics.median(getattr(s, field) for s in samples[target, concurrency]))

    rows = []
    for concurrency in CONCURRENCY:
        reference = median("aiohttp", concurrency, "calls_per_s")
        for target in TARGETS:
            rate = median(target, concurrency, "calls_per_s")
            rows.append(
                Row(
                    target=target,
                    concurrency=concurrency,
                    calls_per_s=rate,
                    p50_ms=median(target, concurrency, "p50_ms"),
                    p99_ms=median(target, concurrency, "p99_ms"),
                    cpu_ms_per_call=median(target, concurrency, "cpu_ms_per_call"),
                    vs_aiohttp=rate / reference,
                )
            )
    return rows


def run(duration: float = 3.0, rounds: int = 3, rds: int = RDS) -> list[Row]:
    """Start the emulator with `rds` RDs, measure every cell `rounds` times for `duration` s, stop it."""
    state = EmulatorState()
    names = [volume.rd for volume in fill(state, rds)]
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        state_file = Path(tmp) / "state.json"
        state.save(state_file)
        with emulator(state_file) as url:
            return _rows(asyncio.run(_rounds(url, names, duration, rounds)))


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"GET /v1/resource-definitions/{{rd}} against the emulator (separate process, {RDS} RDs, 127.0.0.1); "
        f"{args.duration:g} s per cell, {args.rounds} interleaved rounds, medians; {CONNECTIONS} connections "
        f"at most; {os.cpu_count()} cores; CPU: this process's, per call"
    )
    print(HEADER)
    for row in run(args.duration, args.rounds):
        print(row.line(), flush=True)


if __name__ == "__main__":
    main()
