"""What the parts of a trust hit cost: the forward lookup under wrk, the service as shipped beside the same
service with one part put back as it was or taken away, against the bare route, in one run.

An ablation, for finding where a cached lookup's time goes (issue 12) and rerunning the README's figures for
it; `make bench` stays the benchmark of record. Every variant is a `linstor-names serve` of its own in trust
mode over one emulator, each cell a fixed time, every cell of a round before the next round; a variant's
ratios are paired by round, against the bare route and against the service as shipped.

Run: .venv/bin/python -m tests.benchmarks.bench_hot [--size 100000] [--connections 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from app.cache.store import INLINE_PAGE_CACHE_KIB
from tests.benchmarks.bench import Stats, bare_route, lookup_paths, measure, paired, service
from tests.benchmarks.harness import emulator

SHIPPED = "as shipped"


@dataclass(frozen=True)
class Variant:
    """How one service differs from the one shipped."""

    log_level: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    prelude: str = ""


VARIANTS = {
    SHIPPED: Variant(),
    # FastAPI looks for OpenTelemetry providers on every request when its telemetry is on (app/main.py)
    "FastAPI's OpenTelemetry on (LINSTOR_NAMES_OTEL=true)": Variant(env={"LINSTOR_NAMES_OTEL": "true"}),
    # the lookups' SQLite connection with SQLite's default page cache (app/cache/store.py)
    "SQLite's default page cache (2 MiB)": Variant(
        prelude="import app.cache.store as store; store.INLINE_PAGE_CACHE_KIB = 2000"
    ),
    # the line each request writes (app/api/observe.py), taken away
    "without its request line (--log-level warning)": Variant(log_level="warning"),
}


def run(size: int, connections: int, rounds: int, seconds: float) -> list[str]:
    """The table's lines."""
    work = Path(tempfile.mkdtemp(prefix="bench-hot-"))
    state_file, (forward, _reverse, bare, _incus) = lookup_paths(size, work)
    results: dict[str, list[Stats]] = {"bare route": [], **{name: [] for name in VARIANTS}}
    with ExitStack() as stack:
        linstor = stack.enter_context(emulator(state_file))
        cells = {"bare route": (stack.enter_context(bare_route()), bare)}
        for i, (name, variant) in enumerate(VARIANTS.items()):
            cache = f"sqlite:///{work}/cache-{i}.db"
            url, _pid = stack.enter_context(
                service(linstor, cache, "trust", variant.log_level, env=variant.env, prelude=variant.prelude)
            )
            cells[name] = (url, forward)
        for _ in range(rounds):
            for name, (base, paths) in cells.items():
                results[name].append(measure(base, paths, seconds, connections, work))

    lines = [
        f"bench_hot: trust forward lookups, {size:,} volumes, wrk -t1 -c{connections}, {rounds} rounds of "
        f"{seconds:g} s a cell, medians (the shipped lookups' page cache: {INLINE_PAGE_CACHE_KIB} KiB)",
        "| service | req/s | p99 ms | versus the bare route | versus as shipped |",
        "|---|---|---|---|---|",
    ]
    for name, samples in results.items():
        rps = statistics.median(s[0] for s in samples)
        p99 = statistics.median(s[2] for s in samples)
        versus = "" if name == "bare route" else f"{paired(samples, results['bare route']):.3f}x"
        shipped = "" if name in ("bare route", SHIPPED) else f"{paired(samples, results[SHIPPED]):.3f}x"
        bad = sum(s[3] for s in samples)
        note = f" ({bad} non-2xx)" if bad else ""
        lines.append(f"| {name} | {rps:,.0f}{note} | {p99:.2f} | {versus} | {shipped} |")
    return lines


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=100_000, help="volumes in the emulator")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell")
    args = parser.parse_args()
    print("\n".join(run(args.size, args.connections, args.rounds, args.seconds)))


if __name__ == "__main__":
    main()
