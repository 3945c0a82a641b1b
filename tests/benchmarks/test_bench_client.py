"""bench_client runs end to end at a tiny size (not timed: the figures of a 0.2 s cell mean nothing)."""

from __future__ import annotations

from pathlib import Path

import app
from tests.benchmarks.bench_client import BASELINE, CONCURRENCY, HEADER, TARGETS, run


def test_bench_client_runs_every_cell() -> None:
    rows = run(duration=0.2, rounds=1, rds=20)
    assert [(r.target, r.concurrency) for r in rows] == [(t, c) for c in CONCURRENCY for t in TARGETS]
    assert all(r.calls_per_s > 0 and r.p99_ms >= r.p50_ms > 0 and r.cpu_ms_per_call > 0 for r in rows)
    assert [r.vs_aiohttp for r in rows if r.target == "aiohttp"] == [1.0] * len(CONCURRENCY)
    assert all(row.line().count("|") == HEADER.splitlines()[0].count("|") for row in rows)


def test_a_baseline_client_is_measured_in_a_child_process(tmp_path: Path) -> None:
    """--baseline DIR: a child process with DIR's `app` (here this one) measures beside the other targets."""
    (tmp_path / "app").symlink_to(Path(app.__file__).parent)
    rows = run(duration=0.2, rounds=1, rds=20, base=tmp_path)
    assert [(r.target, r.concurrency) for r in rows] == [
        (t, c) for c in CONCURRENCY for t in (*TARGETS, BASELINE)
    ]
    assert all(r.calls_per_s > 0 and r.cpu_ms_per_call > 0 for r in rows if r.target == BASELINE)
