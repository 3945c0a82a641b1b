"""bench_sync at a tiny size, so that CI notices when the benchmark breaks."""

from __future__ import annotations

from tests.benchmarks.bench_sync import run


def test_bench_sync_runs_at_a_tiny_size() -> None:
    rows = run(500, rounds=1, interval=1.0)
    figures = {row.name: row.median for row in rows}
    assert len(figures) == 5
    assert all(value > 0 for value in figures.values()), figures
    assert all(row.size == 500 and len(row.values) == 1 for row in rows)
