"""How long the service takes to answer when LINSTOR hangs (issue 10: it was ~120 s).

Runs `linstor-names dev` (the emulator beside the service) as a child process on 127.0.0.1 with its default
settings, creates a pool and a volume, then makes the emulator hang on every /v1 request and times, three
times each, a lookup, the pool list, a create and /readyz. Prints status, Retry-After and the median time.

Run: .venv/bin/python -m tests.benchmarks.bench_hung
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.server import free_port

POOL = "bench"


def main() -> None:
    """Start the child, hang the emulator, time the answers."""
    port, emulator_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-hung-"))
    env = {**os.environ, "LINSTOR_NAMES_CACHE_URL": f"sqlite:///{work / 'cache.db'}"}
    exe = str(Path(sys.executable).with_name("linstor-names"))
    cmd = [exe, "--log-level", "error", "dev", "--port", str(port), "--emulator-port", str(emulator_port)]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=200)
    emulator = httpx.Client(base_url=f"http://127.0.0.1:{emulator_port}", timeout=10)
    try:
        for _ in range(300):
            try:
                if api.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        emulator.post("/v1/resource-groups", json={"name": POOL, "select_filter": {"place_count": 2}})
        api.post(f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": "1GiB"})
        emulator.post("/_emulator/faults", json={"action": "hang", "path": "^/v1/", "seconds": 300})
        calls: dict[str, Callable[[], httpx.Response]] = {
            "lookup": lambda: api.get(f"/v1/pools/{POOL}/volumes/container/c1"),
            "GET /v1/pools": lambda: api.get("/v1/pools"),
            "create": lambda: api.post(
                f"/v1/pools/{POOL}/volumes", json={"name": "c2", "type": "container", "size": "1GiB"}
            ),
            "/readyz": lambda: api.get("/readyz"),
        }
        print("LINSTOR hung; default settings; 3 runs each")
        for label, call in calls.items():
            times, answer = [], None
            for _ in range(3):
                started = time.monotonic()
                answer = call()
                times.append(time.monotonic() - started)
            assert answer is not None
            retry = answer.headers.get("retry-after", "-")
            code = answer.json().get("code", "") if answer.status_code >= 400 else ""
            median = statistics.median(times)
            cache = answer.headers.get("cache-status", "")
            print(
                f"{label:15} {answer.status_code} {code:18} Retry-After {retry:>3}  {median:.2f} s  {cache}"
            )
    finally:
        emulator.delete("/_emulator/faults")
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()
