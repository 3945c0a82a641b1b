"""Emulator scale benchmark: memory of 10k/100k RDs (5 Aux props) and list times, in-process and over HTTP.

Run: .venv/bin/python -m tests.benchmarks.bench_emulator
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

import httpx
import orjson

from app.emulator import EmulatorState, create_emulator_app
from app.emulator.rd_ops import list_rds, make_rd
from tests.support.server import serve

SIZES = (10_000, 100_000)


def fill(state: EmulatorState, count: int) -> None:
    """`count` RDs with 5 Aux props each, created through the same code path as POST."""
    with state.lock:
        for i in range(count):
            props = {
                "Aux/Incus/name": f"volume-{i}",
                "Aux/Incus/type": "containers" if i % 2 else "virtual-machines",
                "Aux/Incus/project": "default",
                "Aux/Incus/pool": "pool1",
                "Aux/Incus/content": "filesystem",
            }
            make_rd(state, f"lsv-{i:08d}", "DfltRscGrp", props)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench(count: int) -> dict[str, float]:
    """One row of the table."""
    gc.collect()
    tracemalloc.start()
    state = EmulatorState()
    base, _ = tracemalloc.get_traced_memory()
    fill(state, count)
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    target = f"Aux/Incus/name=volume-{count // 2}"
    filtered_query = [
        ("props", target),
        ("props", "Aux/Incus/project=default"),
    ]

    def in_process(query: list[tuple[str, str]]) -> Callable[[], bytes]:
        return lambda: orjson.dumps(list_rds(state, query)[1])

    assert len(orjson.loads(in_process(filtered_query)())) == 1
    row = {
        "mem_mib": (used - base) / 2**20,
        "proc_all_ms": median_ms(in_process([]), 3),
        "proc_filter_ms": median_ms(in_process(filtered_query), 5),
    }
    with serve(create_emulator_app(state=state)) as url, httpx.Client(base_url=url, timeout=60) as client:
        url_path = "/v1/resource-definitions"
        params = httpx.QueryParams(tuple(filtered_query))
        assert len(client.get(url_path, params=params).json()) == 1
        row["http_all_ms"] = median_ms(lambda: client.get(url_path).content, 3)
        row["http_filter_ms"] = median_ms(lambda: client.get(url_path, params=params).content, 5)
    return row


def main() -> None:
    """Print the table."""
    columns = ["list all (proc)", "filter (proc)", "list all (HTTP)", "filter (HTTP)"]
    header = f"{'RDs':>8} | {'store MiB':>9} | " + " | ".join(f"{c:>15}" for c in columns)
    print(header)
    print("-" * len(header))
    for count in SIZES:
        r = bench(count)
        times = " | ".join(
            f"{r[k]:>12.1f} ms" for k in ("proc_all_ms", "proc_filter_ms", "http_all_ms", "http_filter_ms")
        )
        print(f"{count:>8} | {r['mem_mib']:>9.1f} | {times}")


if __name__ == "__main__":
    main()
