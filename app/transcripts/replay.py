"""Replay a transcript against a fresh emulator and compare every answer with the recorded one.

Compared per exchange: the status, the ret_code list (values and order), and the body after normalising
what varies from run to run (key order, list order, name casing and message texts included).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.transcripts.format import Exchange, read_transcript
from app.transcripts.normalize import normalize, ret_codes
from app.transcripts.prelude import Request, cluster_requests, prelude

BASE_URL = "http://linstor.replay"
ERROR = 0xC000000000000000  # ApiCallRc's error bits; a warning in a set-up answer is not a failure


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one replayed exchange compares with its recording."""

    index: int
    expected: Exchange
    status: int
    response: str
    status_equal: bool
    codes_equal: bool
    body_equal: bool
    difference: str

    @property
    def equal(self) -> bool:
        """Status, ret_codes and body all as recorded."""
        return self.status_equal and self.codes_equal and self.body_equal


@dataclass(frozen=True, slots=True)
class Report:
    """The outcomes of one replay and the set-up requests that failed."""

    name: str
    outcomes: list[Outcome]
    setup_failures: list[str]

    def count(self, attribute: str) -> int:
        """How many outcomes have `attribute` true."""
        return sum(1 for outcome in self.outcomes if getattr(outcome, attribute))

    def summary(self) -> str:
        """`replay: N/M exchanges equal` plus the per-criterion counts."""
        total = len(self.outcomes)
        return (
            f"replay: {self.count('equal')}/{total} exchanges equal "
            f"(status {self.count('status_equal')}/{total}, ret_codes {self.count('codes_equal')}/{total}, "
            f"bodies {self.count('body_equal')}/{total}) {self.name}"
        )


def _decode(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


def first_difference(expected: Any, actual: Any, path: str = "$") -> str:
    """Where two normalised JSON values first differ, as a short readable line ('' when equal)."""
    if type(expected) is not type(actual):
        return f"{path}: {_short(expected)} != {_short(actual)}"
    if isinstance(expected, dict):
        if list(expected) != list(actual):
            return f"{path} keys: {list(expected)} != {list(actual)}"
        for key in expected:
            found = first_difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(expected, list):
        for index, (left, right) in enumerate(zip(expected, actual, strict=False)):
            found = first_difference(left, right, f"{path}[{index}]")
            if found:
                return found
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} items != {len(actual)}"
        return ""
    return "" if expected == actual else f"{path}: {_short(expected)} != {_short(actual)}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."


def compare(index: int, expected: Exchange, status: int, response: str) -> Outcome:
    """Compare one answer with its recording."""
    want = _decode(expected.response)
    got = _decode(response)
    body_difference = first_difference(normalize(want), normalize(got))
    status_equal = status == expected.status
    codes_equal = ret_codes(want) == ret_codes(got)
    difference = (
        body_difference if status_equal else f"status {expected.status} != {status}; {body_difference}"
    )
    return Outcome(
        index=index,
        expected=expected,
        status=status,
        response=response,
        status_equal=status_equal,
        codes_equal=codes_equal,
        body_equal=not body_difference,
        difference=difference,
    )


async def _send(
    client: httpx.AsyncClient, method: str, path: str, query: Sequence[tuple[str, str]], body: str
) -> httpx.Response:
    headers = {"Content-Type": "application/json"} if body else {}
    return await client.request(method, path, params=list(query), content=body.encode(), headers=headers)


async def run_setup(client: httpx.AsyncClient, requests: list[Request]) -> list[str]:
    """Send the set-up requests; the ones that did not succeed, described."""
    failures = []
    for request in requests:
        body = "" if request.body is None else json.dumps(request.body)
        answer = await _send(client, request.method, request.path, (), body)
        codes = ret_codes(_decode(answer.text)) or []
        if answer.status_code >= 300 or any(code & ERROR == ERROR for code in codes):
            failures.append(f"{request.method} {request.path}: {answer.status_code} {answer.text[:300]}")
    return failures


async def replay(
    client: httpx.AsyncClient, exchanges: list[Exchange], setup: list[Request], name: str = ""
) -> Report:
    """Build the recorded cluster, then send every recorded request in order and compare the answers."""
    failures = await run_setup(client, setup)
    outcomes = []
    for index, exchange in enumerate(exchanges):
        answer = await _send(client, exchange.method, exchange.path, exchange.query, exchange.body)
        outcomes.append(compare(index, exchange, answer.status_code, answer.text))
    return Report(name=name, outcomes=outcomes, setup_failures=failures)


def recorded_setup(exchanges: list[Exchange], siblings: Sequence[list[Exchange]] = ()) -> list[Request]:
    """The recorded cluster's topology and the objects the recording finds already there."""
    return cluster_requests() + prelude(exchanges, list(siblings))


def replay_emulator_state() -> Any:
    """A fresh emulator without topology but with one reachable satellite, `server01` on host `vm`."""
    from app.emulator import EmulatorState

    return EmulatorState(layout="bare", satellites={"server01": "vm"})  # the recording host is `vm`


async def replay_file(
    path: str | Path, siblings: Sequence[str | Path] = (), observer: Callable[[Any], None] | None = None
) -> Report:
    """Replay one JSONL file against a fresh in-process emulator; `observer` sees every /v1 exchange."""
    from app.emulator import create_emulator_app

    exchanges = read_transcript(path)
    setup = recorded_setup(exchanges, [read_transcript(s) for s in siblings])
    app = create_emulator_app(state=replay_emulator_state(), observer=observer)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as client:
        return await replay(client, exchanges, setup, Path(path).name)


def main(path: str, verbose: bool = False) -> int:
    """`linstor-names replay FILE`: print every difference (with --verbose) and the figures; 0 when all equal.

    Other recordings in the same folder are taken as recordings of the same cluster: objects that FILE
    finds already there are rebuilt from the requests that made them in those files.
    """
    siblings = sorted(p for p in Path(path).parent.glob("*.jsonl") if p.resolve() != Path(path).resolve())
    report = asyncio.run(replay_file(path, siblings))
    for failure in report.setup_failures:
        print(f"set-up failed: {failure}", file=sys.stderr)
    for outcome in report.outcomes:
        if not outcome.equal and verbose:
            exchange = outcome.expected
            query = "?" + "&".join(f"{k}={v}" for k, v in exchange.query) if exchange.query else ""
            print(f"#{outcome.index + 1} {exchange.method} {exchange.path}{query}: {outcome.difference}")
    print(report.summary())
    return 0 if report.count("equal") == len(report.outcomes) else 1
