"""LINSTOR client benchmark: the project's client under concurrency, against httpx's pool and plain aiohttp.

The emulator runs in a separate process on 127.0.0.1 with RDS resource definitions; this process drives it
with one of three clients at a time, each doing the GET of a verify-mode confirmation (GET
/v1/resource-definitions/{rd}, a random RD each call):

* `client`: the project's LinstorClient as the service builds it (default transport, retries, deadlines,
  decoding into the pydantic model, the app's metrics observer);
* `client-httpx`: the same client on httpx's own transport (httpcore's pool, the one it used before);
* `aiohttp`: a bare aiohttp session: GET, status check, orjson.loads, nothing else (the reference);
* `baseline` (with --baseline DIR): `client` as the `app` package in DIR builds it, in a child process that
  measures when told to, so that a change is compared with its parent in the same run, cells interleaved.
  DIR holds only that `app`: `mkdir DIR && git archive 1a603b8 app | tar -x -C DIR`.

Every cell (client x concurrent calls) runs for a fixed time, the clients interleaved within each round (their
order rotating between rounds); the table gives the medians over the rounds: calls/s, p50 and p99 latency,
the CPU this process spent per call (time.process_time), and the throughput as a share of aiohttp's: the
median of each round's ratio, the two cells of a round run seconds apart.

Run: .venv/bin/python -m tests.benchmarks.bench_client [--duration S] [--rounds N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson

from app.emulator import EmulatorState
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.metrics import Metrics
from tests.benchmarks.harness import LOAD_CPU, SERVER_CPU, emulator, fill, on_cpu

TARGETS = ("client", "client-httpx", "aiohttp")
BASELINE = "baseline"
CONCURRENCY = (1, 16, 64)
RDS = 200
CONNECTIONS = 32  # the service's default cap (LINSTOR_NAMES_LINSTOR_MAX_CONNECTIONS), for every client

Call = Callable[[str], Awaitable[None]]
Measure = Callable[[int, float], Awaitable["Sample"]]  # (concurrency, duration) -> one measurement


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


async def service_client(stack: AsyncExitStack, url: str) -> Call:
    """The project's client as the service builds it, opened on `stack`."""
    config = ConnectionConfig(urls=(url,))
    project = await stack.enter_async_context(
        LinstorClient(config, max_connections=CONNECTIONS, observer=Metrics(lambda: None))
    )

    async def get(name: str) -> None:
        await project.get_resource_definition(name)

    return get


async def clients(stack: AsyncExitStack, url: str) -> dict[str, Call]:
    """The three clients, opened on `stack`."""
    config = ConnectionConfig(urls=(url,))
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
        "client": await service_client(stack, url),
        "client-httpx": lambda name: get_with(old, name),
        "aiohttp": plain,
    }


async def baseline(stack: AsyncExitStack, url: str, names: list[str], directory: Path) -> Measure:
    """`client` of the `app` in `directory`, in a child process (ended on `stack`) that measures when told."""
    code = (
        f"import sys; sys.path.insert(0, {str(directory)!r}); "
        "from tests.benchmarks.bench_client import worker; worker()"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, url, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdin is not None
    assert child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    async def end() -> None:
        stdin.close()  # the worker ends at the end of its input
        try:
            await asyncio.wait_for(child.wait(), 30)
        except TimeoutError:
            child.kill()
            await child.wait()

    stack.push_async_callback(end)
    stdin.write(json.dumps(names).encode() + b"\n")

    async def measured(concurrency: int, duration: float) -> Sample:
        stdin.write(json.dumps([concurrency, duration]).encode() + b"\n")
        await stdin.drain()
        line = await stdout.readline()
        if not line:
            raise RuntimeError(f"the baseline worker ended ({await child.wait()})")
        return Sample(**json.loads(line))

    return measured


def worker() -> None:
    """The baseline child: its client measures each `[concurrency, duration]` line of stdin, one JSON line
    out each (the first line of stdin lists the RD names)."""
    url = sys.argv[1]
    names = json.loads(sys.stdin.readline())

    async def main() -> None:
        async with AsyncExitStack() as stack:
            call = await service_client(stack, url)
            # the parent waits for each answer: nothing else runs here while stdin is read
            while line := sys.stdin.readline():
                concurrency, duration = json.loads(line)
                sample = await measure(call, names, concurrency, duration)
                print(json.dumps(asdict(sample)), flush=True)

    asyncio.run(main())


def _measuring(call: Call, names: list[str]) -> Measure:
    async def measured(concurrency: int, duration: float) -> Sample:
        return await measure(call, names, concurrency, duration)

    return measured


async def _rounds(
    url: str, names: list[str], duration: float, rounds: int, base: Path | None = None
) -> Samples:
    samples: Samples = {}
    async with AsyncExitStack() as stack:
        calls = {target: _measuring(call, names) for target, call in (await clients(stack, url)).items()}
        if base is not None:
            calls[BASELINE] = await baseline(stack, url, names, base)
        targets = tuple(calls)
        for measured in calls.values():  # warm up: connections open, code paths hot
            await measured(8, min(duration, 0.2))
        # as `linstor-names serve` does once its app is built (app/cli.py): what lives as long as the process
        # is out of the collector's sight, for every client alike
        gc.freeze()
        for r in range(rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for concurrency in CONCURRENCY:
                for target in order:
                    sample = await calls[target](concurrency, duration)
                    samples.setdefault((target, concurrency), []).append(sample)
    gc.unfreeze()
    return samples


def _rows(samples: Samples) -> list[Row]:
    def median(target: str, concurrency: int, field: str) -> float:
        return float(statistics.median(getattr(s, field) for s in samples[target, concurrency]))

    rows = []
    targets = [*TARGETS, *(t for t, _ in samples if t not in TARGETS)]
    for concurrency in CONCURRENCY:
        reference = samples["aiohttp", concurrency]
        for target in dict.fromkeys(targets):
            # paired: each round's cell against aiohttp's of the same round, then the median of those ratios
            pairs = zip(samples[target, concurrency], reference, strict=True)
            rows.append(
                Row(
                    target=target,
                    concurrency=concurrency,
                    calls_per_s=median(target, concurrency, "calls_per_s"),
                    p50_ms=median(target, concurrency, "p50_ms"),
                    p99_ms=median(target, concurrency, "p99_ms"),
                    cpu_ms_per_call=median(target, concurrency, "cpu_ms_per_call"),
                    vs_aiohttp=statistics.median(own.calls_per_s / ref.calls_per_s for own, ref in pairs),
                )
            )
    return rows


def run(duration: float = 3.0, rounds: int = 3, rds: int = RDS, base: Path | None = None) -> list[Row]:
    """Start the emulator with `rds` RDs, measure every cell `rounds` times for `duration` s, stop it;
    with `base`, the client of the `app` there too."""
    state = EmulatorState()
    names = [volume.rd for volume in fill(state, rds)]
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        state_file = Path(tmp) / "state.json"
        state.save(state_file)
        # the clients here and the emulator each on a CPU of their own (when there are two), as make bench's
        # lookups pin wrk and the server: sharing one for part of a cell would halve it
        with emulator(state_file, cpu=SERVER_CPU) as url, on_cpu(LOAD_CPU):
            return _rows(asyncio.run(_rounds(url, names, duration, rounds, base)))


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a directory holding the `app` package to compare with")
    args = parser.parse_args()
    print(
        f"GET /v1/resource-definitions/{{rd}} against the emulator (separate process, {RDS} RDs, 127.0.0.1); "
        f"{args.duration:g} s per cell, {args.rounds} interleaved rounds, medians; {CONNECTIONS} connections "
        f"at most; {os.cpu_count()} cores; CPU: this process's, per call"
    )
    if args.baseline:
        print(f"baseline: the client of {args.baseline.resolve()}/app, measured in a child process")
    print(HEADER)
    for row in run(args.duration, args.rounds, base=args.baseline):
        print(row.line(), flush=True)


if __name__ == "__main__":
    main()
