"""Cache benchmark: lookups over HTTP in each cache mode, with 10,000 and 100,000 volumes in LINSTOR.

Runs the LINSTOR emulator and linstor-names as separate processes on 127.0.0.1 and loads the service with
wrk (Debian package `wrk`: apt-get install wrk) for a fixed time per operation. Prints, in one run:
forward lookup, reverse lookup and list (one project, ~1% of the pool) in each mode (requests/s, p50, p99),
the full rebuild time and the service's peak memory (VmHWM).

Run: .venv/bin/python -m tests.benchmarks.bench_cache [--sizes 10000 100000] [--duration 5]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.emulator import EmulatorState
from app.emulator.model import VolumeDefinition
from app.emulator.rd_ops import make_rd
from app.emulator.rg_ops import create_rg
from tests.support.server import free_port

POOL = "bench"
PROJECTS = 100
MODES = ("off", "verify", "trust")
LUA = """
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


@dataclass
class Volume:
    """One generated volume."""

    project: str
    name: str
    rd: str


def fill(state: EmulatorState, count: int) -> list[Volume]:
    """`count` container volumes as Incus would have written them, spread over PROJECTS projects."""
    volumes = []
    create_rg(state, {"name": POOL, "select_filter": {"place_count": 2}})
    with state.lock:
        for i in range(count):
            project = f"p{i % PROJECTS}"
            vol = Volume(project, f"c{i}", "incus-volume-" + uuid.uuid4().hex)
            props = {
                "Aux/Incus/name": f"incus-volume-{project}_{vol.name}",
                "Aux/Incus/type": "containers",
                "Aux/Incus/content-type": "filesystem",
                "Aux/Incus/project": project,
                "DrbdOptions/Net/allow-two-primaries": "yes",
            }
            make_rd(state, vol.rd, POOL, props)
            state.rds[vol.rd.upper()].vds[0] = VolumeDefinition(
                number=0, size_kib=1 << 20, uuid=str(uuid.uuid4()), minor=1000 + i
            )
            volumes.append(vol)
    return volumes


def wait_http(url: str, timeout: float = 120.0) -> None:
    """Poll until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(
    base: str, paths: list[str], duration: float, connections: int, work: Path
) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx) of GETs of random `paths`."""
    (work / "paths.txt").write_text("\n".join(paths) + "\n")
    (work / "random.lua").write_text(LUA)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "60s",
            "--latency",
            "-s",
            str(work / "random.lua"),
            base,
            "--",
            str(work / "paths.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return (float(rps.group(1)) if rps else 0.0, pct("50"), pct("99"), int(bad.group(1)) if bad else 0)


def measure(
    base: str, paths: list[str], duration: float, connections: int, work: Path
) -> tuple[float, float, float, int]:
    """wrk for `duration`, unless one request alone takes over a tenth of it (a full scan of 100k RDs without
    cache): then 3 requests one after the other (median, max), never a queue of them left in the service."""
    t0 = time.monotonic()
    first = httpx.get(base + paths[0], timeout=600)
    alone = time.monotonic() - t0
    if alone <= duration / 10:
        return wrk(base, paths, duration, connections, work)
    times = [alone]
    for path in paths[1:3]:
        t0 = time.monotonic()
        httpx.get(base + path, timeout=600).raise_for_status()
        times.append(time.monotonic() - t0)
    times.sort()
    return 1 / times[1], times[1] * 1000, times[-1] * 1000, 0 if first.is_success else 1


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A linstor-names process of this interpreter's `app` (PYTHONPATH may pick a copy), output discarded."""
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "--log-level", "warning", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process we started."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_size(count: int, duration: float, connections: int, work: Path) -> list[str]:
    """Every measurement for one pool size; returns table rows."""
    state = EmulatorState()
    volumes = fill(state, count)
    state_file = work / f"state-{count}.json"
    state.save(state_file)
    del state
    rng = random.Random(count)
    sample = rng.sample(volumes, min(2000, count))
    forward = [f"/v1/pools/{POOL}/volumes/container/{v.name}?project={v.project}" for v in sample]
    reverse = [f"/v1/resolve/{v.rd}" for v in sample]
    lists = [f"/v1/pools/{POOL}/volumes?project=p{j}&type=container" for j in range(PROJECTS)]
    emu_port = free_port()
    emulator = start(["emulator", "--port", str(emu_port), "--state-file", str(state_file)], {})
    rows = []
    try:
        wait_http(f"http://127.0.0.1:{emu_port}/v1/controller/version")
        for mode in MODES:
            port = free_port()
            db = work / f"cache-{count}-{mode}.db"
            env = {
                "LS_CONTROLLERS": f"http://127.0.0.1:{emu_port}",
                "LINSTOR_NAMES_CACHE_URL": "none" if mode == "off" else f"sqlite:///{db}",
                "LINSTOR_NAMES_CACHE_MODE": mode,
                "LINSTOR_NAMES_CACHE_RESYNC_INTERVAL": "3600",
            }
            t0 = time.monotonic()
            service = start(["serve", "--port", str(port)], env)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_http(f"{base}/readyz")
                extra = ""
                if mode != "off":
                    while httpx.get(f"{base}/v1/cache", timeout=120).json()["last_sync"] is None:
                        time.sleep(0.1)
                    start_sync = time.monotonic() - t0
                    t1 = time.monotonic()
                    rebuilt = httpx.post(f"{base}/v1/cache/rebuild", timeout=600).json()
                    extra = (
                        f"start-up incl. first sync {start_sync:.1f}s; rebuild {time.monotonic() - t1:.2f}s "
                        f"({rebuilt['volumes']} volumes)"
                    )
                for op, paths in (("forward", forward), ("reverse", reverse), ("list", lists)):
                    rps, p50, p99, bad = measure(base, paths, duration, connections, work)
                    note = f" ({bad} non-2xx!)" if bad else ""
                    cells = f"{rps:>9.1f} | {p50:>8.2f} | {p99:>8.2f}"
                    rows.append(f"| {count:>7} | {mode:<6} | {op:<7} | {cells} |{note}")
                rows.append(
                    f"| {count:>7} | {mode:<6} | peak RSS {peak_rss_mib(service.pid):.0f} MiB; {extra} |"
                )
            finally:
                stop(service)
    finally:
        stop(emulator)
    return rows


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per operation and mode")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_cache needs wrk: apt-get install wrk")
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s per row; a row whose first request takes over "
        f"{args.duration / 10:g}s: 3 sequential requests (median, max); {os.cpu_count()} cores; 127.0.0.1"
    )
    print("| volumes | mode   | op      |     req/s |  p50 ms  |  p99 ms  |")
    print("|--------:|--------|---------|----------:|---------:|---------:|")
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        for count in args.sizes:
            for row in bench_size(count, args.duration, args.connections, Path(tmp)):
                print(row, flush=True)


if __name__ == "__main__":
    main()
