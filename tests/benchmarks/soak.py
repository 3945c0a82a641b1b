"""Soak: many clients, mixed operations, injected LINSTOR faults; then the API's view against LINSTOR's.

Runs `linstor-names dev` (the emulator beside the service, SQLite cache) as a child process on 127.0.0.1,
loads it with CLIENTS concurrent clients for DURATION seconds (creates, lookups, lists, renames, copies,
snapshots, deletes), and injects faults into the emulator meanwhile (latency, errors, hangs). Then it
clears the faults, runs one repair pass, and compares:
- lost: volumes the API said exist (and did not later say were deleted or renamed) that do not resolve;
- duplicated: identities held by more than one RD in LINSTOR;
- orphaned: RDs with the volume prefix in the pool that hold no volume the API knows of;
- unexplained 5xx: server errors other than 503/504 with a linstor_* code (the injected faults).
Targets: all four zero. Bounded in time; talks to 127.0.0.1 only.

Run: .venv/bin/python -m tests.benchmarks.soak [--clients 32] [--duration 120] (make soak)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.server import free_port

POOL = "soak"
EXPLAINED = {"linstor_unavailable", "linstor_timeout", "clone_timeout", "clone_failed"}
FAULTS = [
    {"action": "latency", "method": "*", "path": "^/v1/resource-definitions", "seconds": 0.3, "times": 40},
    {"action": "error", "method": "POST", "path": "/spawn$", "times": 3},
    {"action": "error", "method": "PUT", "path": "^/v1/resource-definitions/[^/]+$", "times": 2},
    {"action": "error", "method": "GET", "path": "^/v1/resource-definitions$", "times": 5},
    {"action": "hang", "method": "GET", "path": "^/v1/resource-groups/", "seconds": 2.0, "times": 2},
    {"action": "error", "method": "POST", "path": "/clone$", "times": 1},
]


@dataclass
class Tally:
    """What the clients saw."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    unexplained: list[str] = field(default_factory=list)
    # the API's view: volume name -> LINSTOR name, as last reported
    exists: dict[str, str] = field(default_factory=dict)

    def record(self, method: str, path: str, response: httpx.Response) -> None:
        """Count one answer; a 5xx must be a LINSTOR fault we injected, with its problem code."""
        self.requests += 1
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            code = _code(response)
            if response.status_code not in (503, 504) or code not in EXPLAINED:
                self.unexplained.append(f"{method} {path}: {response.status_code} {response.text[:200]}")


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


async def client(
    api: httpx.AsyncClient, index: int, deadline: float, tally: Tally, lock: asyncio.Lock
) -> None:
    """One client: works on its own few names, so the API's view per name is unambiguous."""
    rng = random.Random(index)
    names = [f"c{index}x{i}" for i in range(4)]
    base = f"/v1/pools/{POOL}/volumes"
    while time.monotonic() < deadline:
        name = rng.choice(names)
        op = rng.choices(
            ["create", "get", "list", "rename", "snapshot", "copy", "delete"], [4, 6, 2, 2, 2, 1, 2]
        )[0]
        path = f"{base}/container/{name}"
        try:
            if op == "create":
                response = await api.post(base, json={"name": name, "type": "container", "size": "64MiB"})
                if response.status_code == 201:
                    async with lock:
                        tally.exists[name] = response.json()["linstor_name"]
            elif op == "get":
                response = await api.get(path)
            elif op == "list":
                response = await api.get(base)
            elif op == "rename":
                new = rng.choice(names)
                response = await api.patch(path, json={"name": new})
                if response.status_code == 200 and new != name:
                    async with lock:
                        tally.exists[new] = tally.exists.pop(name, response.json()["linstor_name"])
            elif op == "snapshot":
                response = await api.post(f"{path}/snapshots", json={"name": f"s{rng.randrange(3)}"})
            elif op == "copy":
                target = rng.choice(names)
                response = await api.post(
                    base,
                    json={"name": target, "type": "container", "source": {"type": "container", "name": name}},
                )
                if response.status_code == 201:
                    async with lock:
                        tally.exists[target] = response.json()["linstor_name"]
            else:
                response = await api.delete(path)
                if response.status_code == 204:
                    async with lock:
                        tally.exists.pop(name, None)
        except httpx.HTTPError as exc:
            tally.unexplained.append(f"{op} {path}: {type(exc).__name__}: {exc}")
            continue
        tally.record(op, path, response)


async def inject_faults(emulator: httpx.AsyncClient, deadline: float) -> int:
    """A fault every two seconds, round-robin."""
    injected = 0
    while time.monotonic() < deadline - 3:
        await emulator.post("/_emulator/faults", json=FAULTS[injected % len(FAULTS)])
        injected += 1
        await asyncio.sleep(2.0)
    return injected


def rss_kib(pid: int) -> int:
    """The child's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def soak(clients: int, duration: float) -> int:
    """Run the whole soak; the exit code is 0 when every target is met."""
    port, emulator_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    env = {
        **os.environ,
        "LINSTOR_NAMES_CACHE_URL": f"sqlite:///{work / 'cache.db'}",
        "LINSTOR_NAMES_CLONE_TIMEOUT": "20",
        "LINSTOR_NAMES_REPAIR_GRACE": "0",
    }
    exe = str(Path(sys.executable).with_name("linstor-names"))
    cmd = [exe, "--log-level", "warning", "dev", "--port", str(port), "--emulator-port", str(emulator_port)]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as api,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{emulator_port}", timeout=10) as emulator,
        ):
            for _ in range(300):
                try:
                    if (await api.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            group = {"name": POOL, "select_filter": {"place_count": 2}}
            await emulator.post("/v1/resource-groups", json=group)
            rss_start = rss_kib(child.pid)
            tally, lock = Tally(), asyncio.Lock()
            started = time.monotonic()
            deadline = started + duration
            results = await asyncio.gather(
                inject_faults(emulator, deadline),
                *(client(api, i, deadline, tally, lock) for i in range(clients)),
            )
            elapsed = time.monotonic() - started
            rss_end = rss_kib(child.pid)
            await emulator.delete("/_emulator/faults")
            repair = await api.post(f"/v1/pools/{POOL}/orphans/repair", json={"apply": True})
            lost = []
            for name, rd in sorted(tally.exists.items()):
                response = await api.get(
                    f"/v1/pools/{POOL}/volumes/container/{name}", params={"project": "default"}
                )
                if response.status_code != 200 or response.json()["linstor_name"] != rd:
                    lost.append(f"{name} ({rd}): {response.status_code}")
            rds = (await emulator.get("/v1/resource-definitions")).json()
            ours = [
                rd
                for rd in rds
                if rd["name"].startswith("incus-volume-") and rd.get("resource_group_name") == POOL
            ]
            by_identity = Counter(rd.get("props", {}).get("Aux/Incus/name") for rd in ours)
            duplicated = [identity for identity, n in by_identity.items() if identity and n > 1]
            known = set(tally.exists.values())
            orphaned = [rd["name"] for rd in ours if rd["name"] not in known]
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    print(f"soak: {clients} clients, {elapsed:.0f} s, {results[0]} faults injected")
    statuses = dict(sorted(tally.statuses.items()))
    print(f"requests: {tally.requests}, {tally.requests / elapsed:.0f} req/s, statuses {statuses}")
    print(f"repair pass after the run: {repair.status_code}, {len(repair.json().get('orphans', []))} items")
    print(f"RSS: {rss_start / 1024:.0f} MiB at start, {rss_end / 1024:.0f} MiB at the end")
    print(f"unexplained 5xx: {len(tally.unexplained)}")
    for line in tally.unexplained[:10]:
        print(f"  {line}")
    print(f"lost: {len(lost)} {lost[:5]}")
    print(f"duplicated: {len(duplicated)} {duplicated[:5]}")
    print(f"orphaned: {len(orphaned)} {orphaned[:5]}")
    return 0 if not (tally.unexplained or lost or duplicated or orphaned) else 1


def main() -> None:
    """Parse the arguments, run, exit non-zero when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=120.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.clients, args.duration)))


if __name__ == "__main__":
    main()
