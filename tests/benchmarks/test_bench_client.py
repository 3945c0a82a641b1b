"""bench_client runs end to end at a tiny size (not timed: the figures of a 0.2 s cell mean nothing)."""

from __future__ import annotations

from tests.benchmarks.bench_client import CONCURRENCY, HEADER, TARGETS, run


def test_bench_client_runs_every_cell() -> None:
    rows = run(duration=0.2, rounds=1, rds=20)
    assert [(r.target, r.concurrency) for r in rows] == [(t, c) for c in CONCURRENCY for t in TARGETS]
    assert all(r.calls_per_s > 0 and r.p99_ms >= r.p50_ms > 0 and r.cpu_ms_per_call > 0 for r in rows)
    assert [r.vs_aiohttp for r in rows if r.target == "aiohttp"] == [1.0] * len(CONCURRENCY)
    assert all(row.line().count("|") == HEADER.splitlines()[0].count("|") for row in rows)
