"""`make bench`, bench_split and bench_hot run end to end at a small size: not timed tests (no figure is
checked), smoke tests that the benchmarks anyone reruns for the README still work."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.benchmarks import bench_client, bench_hot, bench_sync
from tests.benchmarks.bench import OPERATIONS, SLOW_CALL
from tests.support.deps import skip_or_fail


def _run(module: str, *args: str, wrk: bool = True) -> str:
    """What `python -m tests.benchmarks.MODULE ARGS` prints, once it ended well (wrk: it needs wrk)."""
    if wrk and shutil.which("wrk") is None:
        skip_or_fail(f"{module} needs wrk (.ci/run installs it: apt-get install wrk)")
    done = subprocess.run(
        [sys.executable, "-m", f"tests.benchmarks.{module}", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_make_bench_runs_end_to_end_at_a_small_size() -> None:
    out = _run("bench", "--sizes", "1000", "--seconds", "1", "--rounds", "1", "--ratio-rounds", "2")
    table = [line for line in out.splitlines() if line.startswith("| ")]
    measurements = {line.split(" | ")[1] for line in table[1:]}
    for mode in ("trust", "verify", "off"):
        for op in ("forward", "reverse"):
            assert f"{mode} {op} c8, 1,000 volumes" in measurements
    assert "bare route c32, 1,000 volumes" in measurements
    assert "trust, --log-level warning, forward c32, 1,000 volumes" in measurements
    assert "Incus lookup (props filter, to LINSTOR) c8, 1,000 volumes" in measurements
    for op in OPERATIONS:
        assert f"{op}: LINSTOR calls" in measurements
        assert f"{op}: service's own time" in measurements
        assert f"{op}, LINSTOR answering each call in {SLOW_CALL * 1000:.0f} ms" in measurements
    assert "create with an Idempotency-Key: through the service" in measurements
    for target in bench_client.TARGETS:
        for c in bench_client.CONCURRENCY:
            assert f"{target} c{c}" in measurements
    for figure in bench_sync.SYNC_FIGURES:
        assert f"{figure}, 1,000 volumes" in measurements
    assert "non-2xx" not in out  # every lookup of the sample answered 200


def test_bench_split_runs_end_to_end_at_a_small_size() -> None:
    out = _run("bench_split", "--cycles", "3", "--rounds", "1", wrk=False)
    rows = {line.split(" | ")[0].removeprefix("| ") for line in out.splitlines()}
    assert set(OPERATIONS) <= rows
    assert {"http.client", "aiohttp", "LinstorClient"} <= rows
    # each create makes its LINSTOR calls: the probes saw them (a probe that never fired would print 0)
    create = next(line for line in out.splitlines() if line.startswith("| create |"))
    assert create.split(" | ")[2] != "0", create


def test_bench_hot_runs_end_to_end_at_a_small_size() -> None:
    out = _run("bench_hot", "--size", "500", "--rounds", "1", "--seconds", "1", "--connections", "8")
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in out.splitlines()}
    for name in ("bare route", *bench_hot.VARIANTS):
        assert name in rows
    # every variant answered its lookups (a service that failed them would show non-2xx) and was compared
    assert "non-2xx" not in out
    assert rows[bench_hot.SHIPPED].count("x |") == 1
    assert all(rows[name].count("x |") == 2 for name in bench_hot.VARIANTS if name != bench_hot.SHIPPED)
