"""Full-sync benchmark: memory and time of the cache's syncs with N volumes in LINSTOR.

Runs the LINSTOR emulator and linstor-names as separate processes on 127.0.0.1 (SQLite cache). Each round
starts a fresh service and measures, from /proc: the peak RSS (VmHWM) across start-up (its first sync), one
periodic resync and one rebuild; the RSS after them (VmRSS); the wall time of POST /v1/cache/rebuild; and the
service CPU (utime + stime) of one periodic resync. Rows hold the median of the rounds.

Run: .venv/bin/python -m tests.benchmarks.bench_sync [--size 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.emulator import EmulatorState
from tests.benchmarks.harness import (
    cpu_seconds,
    emulator,
    fill,
    linstor_names,
    peak_rss_mib,
    process,
    rss_mib,
    wait_http,
)
from tests.support.server import free_port

# Seconds between the end of one periodic resync and the start of the next: longer than a rebuild.
RESYNC_INTERVAL = 20.0


# each figure: its unit and the Round field it comes from
SYNC_FIGURES = {
    "peak RSS (start-up, resync, rebuild)": ("MiB", "peak_mib"),
    "steady RSS after": ("MiB", "steady_mib"),
    "start-up incl. first sync": ("s", "first_sync_s"),
    "rebuild wall (POST /v1/cache/rebuild)": ("s", "rebuild_s"),
    "resync service CPU": ("s", "resync_cpu_s"),
}


@dataclass(frozen=True)
class Row:
    """One measured figure: the median of the rounds, and every round."""

    size: int
    name: str
    unit: str
    median: float
    values: tuple[float, ...]

    def __str__(self) -> str:
        each = ", ".join(f"{v:.2f}" for v in self.values)
        return f"| {self.size:>7} | {self.name:<38} | {self.median:>9.2f} {self.unit:<3} | {each} |"


@dataclass(frozen=True)
class Round:
    """The figures of one service process."""

    peak_mib: float
    steady_mib: float
    first_sync_s: float
    rebuild_s: float
    resync_cpu_s: float


def _last_sync(base: str) -> str | None:
    last: str | None = httpx.get(f"{base}/v1/cache", timeout=120).json()["last_sync"]
    return last


def _wait_sync_after(base: str, previous: str | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _last_sync(base) == previous:
        if time.monotonic() > deadline:
            raise RuntimeError("no cache sync finished in time")
        time.sleep(0.05)


def one_round(linstor: str, db: Path, interval: float) -> Round:
    """Start a service, let it sync, wait for one periodic resync, rebuild; its figures."""
    port = free_port()
    env = {
        "LS_CONTROLLERS": linstor,
        "LINSTOR_NAMES_CACHE_URL": f"sqlite:///{db}",
        "LINSTOR_NAMES_CACHE_MODE": "verify",
        "LINSTOR_NAMES_CACHE_RESYNC_INTERVAL": f"{interval:g}",
    }
    t0 = time.monotonic()
    with process(linstor_names("--log-level", "warning", "serve", "--port", str(port)), env) as service:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", timeout=600)
        _wait_sync_after(base, None, 600)
        first_sync = time.monotonic() - t0
        # the next periodic resync starts `interval` after this one ended: its CPU is the difference
        synced, cpu0 = _last_sync(base), cpu_seconds(service.pid)
        _wait_sync_after(base, synced, interval + 600)
        resync_cpu = cpu_seconds(service.pid) - cpu0
        t1 = time.monotonic()
        httpx.post(f"{base}/v1/cache/rebuild", timeout=600).raise_for_status()
        rebuild = time.monotonic() - t1
        return Round(peak_rss_mib(service.pid), rss_mib(service.pid), first_sync, rebuild, resync_cpu)


def run(size: int, rounds: int = 3, *, interval: float = RESYNC_INTERVAL) -> list[Row]:
    """Fill an emulator with `size` Incus volumes and measure `rounds` fresh services; one row a figure."""
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        state = EmulatorState()
        fill(state, size)
        state_file = work / "state.json"
        state.save(state_file)
        del state
        with emulator(state_file) as linstor:
            measured = [one_round(linstor, work / f"cache-{i}.db", interval) for i in range(rounds)]

    def row(name: str, unit: str, values: list[float]) -> Row:
        return Row(size, name, unit, statistics.median(values), tuple(values))

    return [
        row(name, unit, [getattr(r, attr) for r in measured]) for name, (unit, attr) in SYNC_FIGURES.items()
    ]


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=RESYNC_INTERVAL, help="resync interval, seconds")
    args = parser.parse_args()
    print(f"{args.rounds} fresh services; median, then each round; {os.cpu_count()} cores; 127.0.0.1")
    print("| volumes | figure                                 |        median | rounds |")
    print("|--------:|----------------------------------------|--------------:|--------|")
    for line in run(args.size, args.rounds, interval=args.interval):
        print(line, flush=True)


if __name__ == "__main__":
    main()
