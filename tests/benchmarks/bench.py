"""`make bench`: every performance figure of the README in one run, on 127.0.0.1, bounded in time.

One table, in this order:
- lookups: the bare-route ceiling (tests/benchmarks/bare.py), then forward and reverse lookups in each cache
  mode (trust, verify, off) at each size, trust forward lookups without the request log line (what that line
  costs), and the lookup Incus makes (one props-filtered list of LINSTOR); wrk -t1, each cell a fixed time,
  every cell of a round before the next round, medians of the rounds; ratios against the bare route at the
  same concurrency are paired: the median of each round's ratio;
- mutations: the LINSTOR calls of create, rename, snapshot and delete (beside Incus's), what an
  Idempotency-Key adds to a create, and the service's own time per operation: the operation through the
  service, minus the same LINSTOR requests replayed straight to the emulator by this process, both timed
  with the same lean client (Plain), interleaved, the median of 21 rounds' differences or more (a round's
  operation and replay run seconds apart: paired, the machine's drift between rounds cancels); then both
  again with the emulator answering each LINSTOR call 5 ms late, a controller's pace, where an operation's
  time counts its round trips (calls sent together share one) more than anyone's CPU;
- the LINSTOR client at 1, 16 and 64 concurrent calls, against plain aiohttp (bench_client.py);
- memory and full syncs at the largest size (bench_sync.py).

Every process is started and ended here: the emulator (`linstor-names emulator`), the services
(`linstor-names serve`, default log level: one JSON line per request, to /dev/null), the bare route (uvicorn).

Run: make bench [BENCH_SIZES="10000 100000"] [BENCH_SECONDS=2] [BENCH_ROUNDS=3]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import httpx
import orjson

from app.emulator import EmulatorState
from app.emulator.rg_ops import create_rg
from app.linstor.transport import endpoint_template
from app.transcripts.format import Exchange, read_transcript
from tests.benchmarks import bench_client, bench_sync
from tests.benchmarks.harness import (
    POOL,
    SERVER_CPU,
    cpu_ns,
    emulator,
    fill,
    linstor_names,
    pinned,
    process,
    wait_http,
    wrk,
)
from tests.support.server import free_port

Stats = tuple[float, float, float, int]  # requests/s, p50 ms, p99 ms, non-2xx
QUIET = "trust, --log-level warning,"  # the trust service without its request lines
# The cells issue 12 compares with the bare route (trust hits: 0.8x its req/s, 1.3x its p99) run
# --ratio-rounds rounds when that is more than --rounds: their paired ratios' medians then hold when a round
# or two catch the machine in another phase. The slow cells (verify, off, Incus) keep --rounds.
RATIO_CELLS = ("bare route", "trust")
# LINSTOR REST calls the Incus driver makes per operation (shared/reference/incus-linstor-driver.md): create
# §5.1 spawn, props PUT, ExactSize PUT, autoplace (+3 to mount a filesystem: lookup, make-available, volumes);
# rename §4.1 lookup + PUT; snapshot §5.2 lookup + POST + PUT; delete §6.1 lookup (HasVolume), lookup, DELETE
INCUS_CALLS = {"create": "4", "rename": "2", "snapshot": "3", "delete": "3"}


@dataclass
class Row:
    """One line of the table."""

    area: str
    measurement: str
    result: str
    versus: str = ""


# ---- processes -----------------------------------------------------------------------------------------


@contextmanager
def service(
    linstor: str,
    cache: str,
    mode: str,
    log_level: str | None = None,
    *,
    env: dict[str, str] | None = None,
    prelude: str = "",
) -> Iterator[tuple[str, int]]:
    """`linstor-names serve` in cache `mode`, at its default log level (one line a request) unless
    `log_level` says otherwise, with `env` added to its environment and the Python `prelude` run before it
    starts; URL and PID once ready and synced."""
    port = free_port()
    environ = {
        "LS_CONTROLLERS": linstor,
        "LINSTOR_NAMES_CACHE_URL": cache if mode != "off" else "none",
        "LINSTOR_NAMES_CACHE_MODE": mode,
        "LINSTOR_NAMES_CACHE_RESYNC_INTERVAL": "3600",
        **(env or {}),
    }
    levels = ["--log-level", log_level] if log_level else []
    command = linstor_names(*levels, "serve", "--port", str(port), prelude=prelude)
    with process(pinned(command, SERVER_CPU), environ) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", timeout=600)
        if mode != "off":
            deadline = time.monotonic() + 600
            while httpx.get(f"{url}/v1/cache", timeout=60).json()["last_sync"] is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("the service's first cache sync did not end")
                time.sleep(0.1)
        yield url, proc.pid


@contextmanager
def bare_route() -> Iterator[str]:
    """The ceiling: tests/benchmarks/bare.py under uvicorn, as `serve` runs the service."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.benchmarks.bare:app",
        "--port",
        str(port),
        "--no-access-log",
    ]
    with process(pinned([*args, "--log-level", "warning"], SERVER_CPU)):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/bare/x")
        yield url


# ---- lookups -------------------------------------------------------------------------------------------


def measure(base: str, paths: list[str], seconds: float, connections: int, work: Path) -> Stats:
    """wrk for `seconds`, unless a request alone takes over a tenth of that (a scan of 100k RDs without a
    cache): then 3 requests one after the other (median, max), never a queue of them left in the service."""
    times = []
    with httpx.Client(base_url=base, timeout=600) as client:
        for path in paths[:3]:
            t0 = time.perf_counter()
            status = client.get(path).status_code
            times.append(time.perf_counter() - t0)
    times.sort()
    if times[1] <= seconds / 10:
        return wrk(base, paths, seconds, connections, work)
    return 1 / times[1], times[1] * 1000, times[-1] * 1000, 0 if status < 300 else 1


def paired(samples: list[Stats], reference: list[Stats], figure: int = 0) -> float:
    """The median over rounds of a cell's `figure` (0 req/s, 2 p99) against the reference cell's of the same
    round: the machine's speed drifts between rounds more than within one. A cell of fewer rounds than its
    reference ran in the first of them."""
    pairs = zip(samples, reference, strict=False)
    return statistics.median(cell[figure] / top[figure] for cell, top in pairs)


def _median(samples: list[Stats]) -> Stats:
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
        statistics.median(s[2] for s in samples),
        sum(s[3] for s in samples),
    )


def _cell(stats: Stats) -> str:
    bad = f" ({stats[3]} non-2xx!)" if stats[3] else ""
    return f"{stats[0]:,.0f} req/s · p50 {stats[1]:.2f} ms · p99 {stats[2]:.2f} ms{bad}"


def lookup_paths(size: int, work: Path) -> tuple[Path, tuple[list[str], list[str], list[str], list[str]]]:
    """An emulator state of `size` volumes, saved in `work`, and the paths of the same 2,000 of its volumes
    (all of them, when fewer): forward and reverse lookups, the bare route's, Incus's lookup."""
    state = EmulatorState()
    volumes = fill(state, size)
    state_file = work / f"state-{size}.json"
    state.save(state_file)
    del state
    sample = random.Random(size).sample(volumes, min(2000, size))
    forward = [f"/v1/pools/{POOL}/volumes/container/{v.name}?project={v.project}" for v in sample]
    reverse = [f"/v1/resolve/{v.rd}" for v in sample]
    bare = [f"/bare/{v.name}" for v in sample]
    incus = [  # golinstor's GetAll with two props filters (incus-linstor-driver.md §3.1)
        "/v1/resource-definitions?"
        + urlencode(
            [
                ("props", f"Aux/Incus/name=incus-volume-{v.project}_{v.name}"),
                ("props", "Aux/Incus/type=containers"),
            ]
        )
        for v in sample
    ]
    return state_file, (forward, reverse, bare, incus)


def lookups(size: int, seconds: float, rounds: int, work: Path, ratio_rounds: int = 0) -> list[Row]:
    """Lookup cells at one size, `rounds` interleaved rounds (`ratio_rounds` for the bare route and the
    trust hits, when more); rows of medians."""
    state_file, (forward, reverse, bare, incus) = lookup_paths(size, work)
    cells: list[tuple[str, str, list[str], int]] = []  # (label, base URL, paths, connections)
    with ExitStack() as stack:
        linstor = stack.enter_context(emulator(state_file))
        ceiling = stack.enter_context(bare_route())
        services = {
            mode: stack.enter_context(service(linstor, f"sqlite:///{work}/cache-{size}-{mode}.db", mode))[0]
            for mode in ("trust", "verify", "off")
        }
        # the same trust service without its line a request: what that line costs
        quiet = f"sqlite:///{work}/cache-{size}-quiet.db"
        services[QUIET] = stack.enter_context(service(linstor, quiet, "trust", log_level="warning"))[0]
        for c in (8, 32):
            cells.append((f"bare route c{c}", ceiling, bare, c))
            for op, paths in (("forward", forward), ("reverse", reverse)):
                cells.append((f"trust {op} c{c}", services["trust"], paths, c))
            cells.append((f"{QUIET} forward c{c}", services[QUIET], forward, c))
        for mode in ("verify", "off"):
            for op, paths in (("forward", forward), ("reverse", reverse)):
                cells.append((f"{mode} {op} c8", services[mode], paths, 8))
        cells.append(("Incus lookup (props filter, to LINSTOR) c8", linstor, incus, 8))
        results: dict[str, list[Stats]] = {label: [] for label, *_ in cells}
        for round_ in range(max(rounds, ratio_rounds)):
            for label, base, paths, connections in cells:
                if round_ < rounds or label.startswith(RATIO_CELLS):
                    results[label].append(measure(base, paths, seconds, connections, work))
    rows = []
    for label, samples in results.items():
        versus = ""
        if not label.startswith("bare"):
            conc = label.rsplit(" ", 1)[1]
            bare_cells = results.get(f"bare route {conc}", results["bare route c8"])
            rps, p99 = (paired(samples, bare_cells, i) for i in (0, 2))
            versus = f"{rps:.2f}x the bare route's req/s, p99 {p99:.2f}x"
        rows.append(Row("lookups", f"{label}, {size:,} volumes", _cell(_median(samples)), versus))
    return rows


# ---- mutations -----------------------------------------------------------------------------------------

OPERATIONS = ("create", "rename", "snapshot", "delete")
# a round is one cycle through the service and its replay, ~30 ms: enough of them that the medians hold
MUTATION_ROUNDS = 21
# a GET by name on a real controller at 10,000 RDs (issue 12); its props-filtered scan takes 15 ms
SLOW_CALL = 0.005
SLOW_ROUNDS = 7


@dataclass
class Names:
    """The names one create-rename-snapshot-delete cycle uses."""

    volume: str
    renamed: str
    snapshot: str


class Plain:
    """A keep-alive HTTP/1.1 connection of the standard library: the cheapest client there is (~50 µs a call).

    The mutation cells time the service and the replay with it, so that a heavier client's cost (httpx:
    ~0.3 ms a call) is not counted once per LINSTOR request in the replay and once per operation only in the
    service's time: that made the service's own time look smaller than it is, below zero for create.
    """

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self._conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)

    def __enter__(self) -> Plain:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._conn.close()

    def request(
        self, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of one request; a JSON `body`."""
        sent = {"content-type": "application/json"} if body else {}
        self._conn.request(method, target, body=body, headers=sent | (headers or {}))
        response = self._conn.getresponse()
        return response.status, response.read()


VOLUMES = f"/v1/pools/{POOL}/volumes"


def _new_volume(name: str) -> dict[str, str]:
    """The body of a create of a 1 GiB custom volume."""
    return {"name": name, "type": "custom", "size": "1GiB"}


def _answered(what: str, status: int, answer: bytes) -> None:
    """Raise unless the service answered 2xx: a benchmark of failing requests would measure nothing."""
    if status >= 300:
        raise RuntimeError(f"{what}: {status} {answer.decode(errors='replace')}")


def _cycle(
    client: Plain, names: Names, after: Callable[[str], None] | None = None
) -> dict[str, tuple[float, str]]:
    """Create, rename, snapshot and delete a volume through the service: (seconds, the answer's LINSTOR name)
    per operation; `after(op)` is called when each has answered."""
    requests = {
        "create": ("POST", VOLUMES, _new_volume(names.volume)),
        "rename": ("PATCH", f"{VOLUMES}/custom/{names.volume}", {"name": names.renamed}),
        "snapshot": ("POST", f"{VOLUMES}/custom/{names.renamed}/snapshots", {"name": names.snapshot}),
        "delete": ("DELETE", f"{VOLUMES}/custom/{names.renamed}", None),
    }
    out: dict[str, tuple[float, str]] = {}
    for op in OPERATIONS:
        method, path, body = requests[op]
        content = orjson.dumps(body) if body is not None else None
        t0 = time.perf_counter()
        status, answer = client.request(method, path, content)
        seconds = time.perf_counter() - t0
        _answered(op, status, answer)
        out[op] = (seconds, orjson.loads(answer).get("linstor_name", "") if answer else "")
        if after is not None:
            after(op)
    return out


Request = tuple[str, str, bytes]  # method, path with its query, body


def _substitute(exchange: Exchange, names: dict[str, str]) -> Request:
    """A recorded request with the calibration cycle's names replaced by another cycle's."""

    def sub(text: str) -> str:
        for old, new in names.items():
            text = text.replace(old, new)
        return text

    query = urlencode([(sub(k), sub(v)) for k, v in exchange.query])
    target = quote(sub(exchange.path)) + (f"?{query}" if query else "")
    return exchange.method, target, sub(exchange.body).encode()


def _replay(client: Plain, requests: list[Request]) -> float:
    t0 = time.perf_counter()
    for method, target, body in requests:
        status, answer = client.request(method, target, body or None)
        if status >= 500:
            raise RuntimeError(f"replay {method} {target}: {status} {answer.decode(errors='replace')}")
    return time.perf_counter() - t0


def mutations(rounds: int, work: Path) -> list[Row]:
    """LINSTOR calls per operation, and the service's own time per operation (medians of `rounds`)."""
    state = EmulatorState()
    create_rg(state, {"name": POOL, "select_filter": {"place_count": 2}})
    state_file = work / "state-mutations.json"
    state.save(state_file)
    transcript = work / "mutations.jsonl"
    with ExitStack() as stack:
        linstor = stack.enter_context(emulator(state_file, controls=True))  # controls: _latency
        # calibration: the same service behind the recording proxy, to learn each operation's LINSTOR requests
        proxy_port = free_port()
        record = linstor_names("--log-level", "warning", "record", "--upstream", linstor)
        stack.enter_context(process([*record, "--out", str(transcript), "--port", str(proxy_port)]))
        wait_http(f"http://127.0.0.1:{proxy_port}/v1/controller/version")
        recorded_via, _ = stack.enter_context(
            service(f"http://127.0.0.1:{proxy_port}", f"sqlite:///{work}/cache-record.db", "verify")
        )
        direct, direct_pid = stack.enter_context(
            service(linstor, f"sqlite:///{work}/cache-direct.db", "verify")
        )
        with Plain(recorded_via) as client:
            _cycle(client, Names("warmup", "warmup2", "s0"))  # first-use calls (pool lookups) stay out
            start = len(read_transcript(transcript))
            calibration = Names("calibvol", "calibren", "calibsnap")
            # the proxy writes (and flushes) each exchange before it answers: the file's length marks each op
            marks: list[int] = []
            calibrated = _cycle(
                client, calibration, lambda _op: marks.append(len(read_transcript(transcript)))
            )
        made = {op: name for op, (_, name) in calibrated.items()}
        exchanges = read_transcript(transcript)
        per_op = {op: exchanges[a:b] for op, a, b in zip(OPERATIONS, [start, *marks], marks, strict=False)}
        service_s: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        service_cpu: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        replay_s: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        keyed_s: list[float] = []  # a create with an Idempotency-Key, and one without timed beside it
        unkeyed_s: list[float] = []
        keyed_cpu: list[float] = []
        with (
            Plain(direct) as to_service,
            Plain(linstor) as raw,
        ):
            _cycle(to_service, Names("warmupd", "warmupd2", "s0"))
            cpu: list[int] = []  # the service's CPU at the start of a cycle and after each operation
            for k in range(rounds):
                cpu[:] = [cpu_ns(direct_pid)]
                timed = _cycle(
                    to_service,
                    Names(f"svc{k}vol", f"svc{k}ren", f"svc{k}snap"),
                    lambda _op: cpu.append(cpu_ns(direct_pid)),
                )
                for i, op in enumerate(OPERATIONS):
                    service_s[op].append(timed[op][0])
                    service_cpu[op].append((cpu[i + 1] - cpu[i]) / 1e9)
                for op, seconds in _replays(raw, per_op, _fresh(made, calibration, f"rpl{k}")).items():
                    replay_s[op].append(seconds)
                with_key, without, cpu_s = _key_cost(to_service, direct_pid, k)
                keyed_s.append(with_key)
                unkeyed_s.append(without)
                keyed_cpu.append(cpu_s)
            # LINSTOR at a controller's pace: each call answered SLOW_CALL later, so that an operation's
            # time counts its round trips (calls sent together share one) more than anyone's CPU
            slow_s: dict[str, list[float]] = {op: [] for op in OPERATIONS}
            slow_replay_s: dict[str, list[float]] = {op: [] for op in OPERATIONS}
            with _latency(linstor, SLOW_CALL):
                for k in range(SLOW_ROUNDS):
                    timed = _cycle(to_service, Names(f"slw{k}vol", f"slw{k}ren", f"slw{k}snap"))
                    replays = _replays(raw, per_op, _fresh(made, calibration, f"srp{k}"))
                    for op in OPERATIONS:
                        slow_s[op].append(timed[op][0])
                        slow_replay_s[op].append(replays[op])
    rows = []
    for op in OPERATIONS:
        calls = Counter(f"{e.method} {endpoint_template(e.path)}" for e in per_op[op])
        named = ", ".join(f"{n}x {call}" if n > 1 else call for call, n in calls.items())
        rows.append(
            Row(
                "mutations",
                f"{op}: LINSTOR calls",
                f"{len(per_op[op])} ({named})",
                f"Incus: {INCUS_CALLS[op]}",
            )
        )
    for op in OPERATIONS:
        svc, rpl, own = _paired_ms(service_s[op], replay_s[op])
        cpu_ms = statistics.median(service_cpu[op]) * 1000
        rows.append(
            Row(
                "mutations",
                f"{op}: service's own time",
                f"{own:.2f} ms (through the service {svc:.2f} ms; "
                f"its LINSTOR calls replayed {rpl:.2f} ms); the service's CPU {cpu_ms:.2f} ms",
                "target < 2 ms",
            )
        )
    for op in OPERATIONS:
        svc, rpl, own = _paired_ms(slow_s[op], slow_replay_s[op])
        rows.append(
            Row(
                "mutations",
                f"{op}, LINSTOR answering each call in {SLOW_CALL * 1000:.0f} ms",
                f"through the service {svc:.1f} ms; its {len(per_op[op])} LINSTOR calls replayed one after "
                f"another {rpl:.1f} ms",
                f"{own:+.1f} ms",
            )
        )
    keyed, _, extra = _paired_ms(keyed_s, unkeyed_s)
    rows.append(
        Row(
            "mutations",
            "create with an Idempotency-Key: through the service",
            f"{keyed:.2f} ms ({extra:+.2f} ms against a create without one, timed beside it); "
            f"the service's CPU {statistics.median(keyed_cpu) * 1000:.2f} ms",
            "the key's claim and answer: two cache writes",
        )
    )
    return rows


def _paired_ms(first: list[float], second: list[float]) -> tuple[float, float, float]:
    """Milliseconds: the medians of two series timed round by round (an operation through the service and
    its replay, say) and the median of each round's difference, first minus second (the two of a round run
    seconds apart; rounds drift more)."""
    own = statistics.median(a - b for a, b in zip(first, second, strict=True))
    return statistics.median(first) * 1000, statistics.median(second) * 1000, own * 1000


def _replays(raw: Plain, per_op: dict[str, list[Exchange]], names: dict[str, str]) -> dict[str, float]:
    """Each operation's recorded LINSTOR requests replayed straight to the emulator with `names`: seconds."""
    return {op: _replay(raw, [_substitute(e, names) for e in per_op[op]]) for op in OPERATIONS}


def _fresh(made: dict[str, str], calibration: Names, prefix: str) -> dict[str, str]:
    """The calibration cycle's names (its RDs' and its volume's) mapped to unused ones, for a replay."""
    return {
        made["create"]: f"incus-volume-{random.getrandbits(128):032x}",
        made["snapshot"]: f"incus-volume-{random.getrandbits(128):032x}",
        calibration.volume: f"{prefix}vol",
        calibration.renamed: f"{prefix}ren",
        calibration.snapshot: f"{prefix}snap",
    }


@contextmanager
def _latency(linstor: str, seconds: float) -> Iterator[None]:
    """The emulator answers every LINSTOR request `seconds` late while the block runs (its fault API)."""
    fault = {"action": "latency", "path": "^/v1/", "seconds": seconds}
    httpx.post(f"{linstor}/_emulator/faults", json=fault, timeout=60).raise_for_status()
    try:
        yield
    finally:
        httpx.delete(f"{linstor}/_emulator/faults", timeout=60).raise_for_status()


def _key_cost(client: Plain, pid: int, k: int) -> tuple[float, float, float]:
    """A create with an Idempotency-Key and one without, back to back through the service (which first
    alternates by round): (seconds with, seconds without, the service's CPU seconds with). Both volumes
    are deleted after, untimed."""
    timed: dict[bool, tuple[float, float]] = {}
    for keyed in (k % 2 == 0, k % 2 == 1):
        name = f"key{k}{'k' if keyed else 'p'}"
        key = {"idempotency-key": f"bench-{random.getrandbits(64):016x}"} if keyed else None
        cpu, t0 = cpu_ns(pid), time.perf_counter()
        status, answer = client.request("POST", VOLUMES, orjson.dumps(_new_volume(name)), key)
        timed[keyed] = (time.perf_counter() - t0, (cpu_ns(pid) - cpu) / 1e9)
        _answered("create", status, answer)
    for name in (f"key{k}k", f"key{k}p"):
        _answered("delete", *client.request("DELETE", f"{VOLUMES}/custom/{name}"))
    return timed[True][0], timed[False][0], timed[True][1]


# ---- the LINSTOR client (bench_client) ------------------------------------------------------------------


def client(seconds: float, rounds: int) -> list[Row]:
    """bench_client's cells: the service's LINSTOR client, and httpx's own pool, against plain aiohttp."""
    rows = []
    for r in bench_client.run(seconds, rounds):
        result = f"{r.calls_per_s:,.0f} calls/s · p50 {r.p50_ms:.2f} ms · p99 {r.p99_ms:.2f} ms"
        versus = "" if r.target == "aiohttp" else f"{r.vs_aiohttp:.2f}x aiohttp's calls/s"
        if r.target == "client" and r.concurrency > 1:
            versus += " (target >= 0.7" + ("; p99 < 50 ms)" if r.concurrency == 64 else ")")
        rows.append(
            Row(
                "LINSTOR client",
                f"{r.target} c{r.concurrency}",
                f"{result} · CPU {r.cpu_ms_per_call:.3f} ms/call",
                versus,
            )
        )
    return rows


# ---- memory and full syncs (bench_sync) ------------------------------------------------------------------

SYNC_TARGETS = {
    "peak RSS (start-up, resync, rebuild)": "target < 250 MiB",
    "rebuild wall (POST /v1/cache/rebuild)": "target < 4 s",
    "resync service CPU": "target < 3 s",
}


def syncs(size: int, rounds: int) -> list[Row]:
    """bench_sync's figures at `size`: fresh services, one periodic resync and one rebuild each."""
    # a resync every 10 s: longer than a rebuild of 100k volumes, short enough for make bench
    return [
        Row("memory", f"{r.name}, {size:,} volumes", f"{r.median:.2f} {r.unit}", SYNC_TARGETS.get(r.name, ""))
        for r in bench_sync.run(size, rounds, interval=10.0)
    ]


# ---- the table -----------------------------------------------------------------------------------------


def main() -> None:
    """Run every part and print one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per wrk cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument(
        "--ratio-rounds", type=int, default=5, help="rounds of the bare route and trust hits, when more"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("make bench needs wrk (Debian: apt-get install wrk)")
    # a benchmark stopped by SIGTERM ends its children too: SystemExit runs every `with` block's exit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="linstor-names-bench-") as tmp:
        work = Path(tmp)
        # mutations first: a few milliseconds each, they are the cells the big fills' disk writes disturb most
        mutation_rows = mutations(max(args.rounds, MUTATION_ROUNDS), work)
        for size in args.sizes:
            rows += lookups(size, args.seconds, args.rounds, work, args.ratio_rounds)
        rows += mutation_rows
    rows += client(args.seconds, args.rounds)
    rows += syncs(max(args.sizes), args.rounds)
    print(
        f"make bench, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, 127.0.0.1; "
        f"wrk -t1 {args.seconds:g} s per cell, {args.rounds} interleaved rounds "
        f"({max(args.rounds, args.ratio_rounds)} for the bare route and trust hits), medians; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print("| area | measurement | result | versus |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.area} | {row.measurement} | {row.result} | {row.versus} |")


if __name__ == "__main__":
    main()
