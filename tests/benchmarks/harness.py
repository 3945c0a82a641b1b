"""What the benchmarks share: an emulator filled as Incus fills LINSTOR, child processes, wrk, /proc readings.

Every process is a child started here and ended by its PID; every load goes to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
_TICKS = os.sysconf("SC_CLK_TCK")
# wrk: GETs of random lines of a file of paths
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


def linstor_names(*args: str, prelude: str = "") -> list[str]:
    """The command line of `linstor-names ARGS` of this interpreter's `app` (PYTHONPATH may pick a copy),
    the Python statements `prelude` run first."""
    return [sys.executable, "-c", f"{prelude}\nfrom app.cli import main; main()", *args]


# The load generator and the server it measures each get a CPU of their own when there are two: left to the
# scheduler, they sometimes share one for part of a cell, which halves that cell's throughput
LOAD_CPU, SERVER_CPU = 0, 1
_CPUS = os.sched_getaffinity(0)  # the CPUs this process may use, before any pinning


def _pinnable(cpu: int) -> bool:
    """True when this process may use two CPUs or more, `cpu` among them."""
    return len(_CPUS) >= 2 and cpu in _CPUS


def pinned(args: list[str], cpu: int) -> list[str]:
    """`args` run on CPU `cpu` alone (taskset, inherited by every thread) when it can be, and taskset is
    there; else `args` as they are."""
    if shutil.which("taskset") is None or not _pinnable(cpu):
        return args
    return ["taskset", "--cpu-list", str(cpu), *args]


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """This thread (and the threads it starts) on CPU `cpu` alone while the block runs, as pinned() runs
    a child."""
    if not _pinnable(cpu):
        yield
        return
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, _CPUS)


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, its output discarded, ended (by its PID) when the block ends."""
    proc = subprocess.Popen(
        args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def emulator(state_file: Path, *, controls: bool = False, cpu: int | None = None) -> Iterator[str]:
    """`linstor-names emulator` on a free port, loaded from `state_file` (and its /_emulator controls on,
    with `controls`; on CPU `cpu` alone, with `cpu`); its URL once it answers."""
    port = free_port()
    args = linstor_names(
        "--log-level", "warning", "emulator", "--port", str(port), "--state-file", str(state_file)
    )
    if controls:
        args.append("--controls")
    with process(pinned(args, cpu) if cpu is not None else args):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/v1/controller/version", timeout=600)
        yield url


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


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a process, in MiB."""
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float:
    """VmRSS of a process, in MiB."""
    return _status_mib(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    # the command name may hold spaces: the fields counted after its closing parenthesis
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_ns(pid: int) -> int:
    """Nanoseconds every thread of a process has run (schedstat: exact, where /proc/PID/stat counts ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
            continue
    return total


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(
    base: str, paths: list[str], duration: float, connections: int, work: Path
) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx) of GETs of random `paths`, `duration` whole seconds."""
    (work / "paths.txt").write_text("\n".join(paths) + "\n")
    (work / "random.lua").write_text(LUA)
    out = subprocess.run(
        pinned(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "60s",
                "--latency",
                "-s",
                str(work / "random.lua"),
                base,
                "--",
                str(work / "paths.txt"),
            ],
            LOAD_CPU,
        ),
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
