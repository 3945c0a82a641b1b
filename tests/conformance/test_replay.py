"""Replay conformance: the emulator answers the real controller's recorded requests as the controller did.

Three recordings of linstor-server 1.33.3 (tests/conformance/linstor/transcripts, verbatim, hashes checked)
are replayed in order against a fresh emulator built like the recorded cluster through the real API. Every
exchange must match in status and ret_code list, and in body after normalisation, unless it is a named
deviation in `replay_deviations.py`; each deviation must still reproduce (a fixed one fails its test).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from app.transcripts.replay import Outcome, Report, replay_file
from tests.conformance.replay_deviations import DEVIATIONS, Deviation, deviation_for
from tests.conformance.spec import SpecValidator

TRANSCRIPTS = Path(__file__).parent / "linstor" / "transcripts"
# sha256 of the recordings as LINBIT's controller answered them (shared/linstor/transcripts)
RECORDED = {
    "linstor-1.33.3-controller-api.jsonl": (
        "8aa6564aa3f6f94be086fdc0270848bcea843ee3866800a102658abc29cc4357"
    ),
    "linstor-1.33.3-golinstor-traffic.jsonl": (
        "abcec6e207594144d00b47b2260c134c9979557fedcfbf18a4bff3e27bc8ec4b"
    ),
    "linstor-1.33.3-service-traffic.jsonl": (
        "be4987c0aa07ddab1c09790a962e38dd70f90d0dcd66d9be9388bb9d60d60931"
    ),
}
REPORTS: list[Report] = []  # printed by tests/conftest.py's terminal summary


def test_transcripts_are_the_recorded_ones() -> None:
    """A changed recording would silently move the target: the hashes are pinned here."""
    for name, digest in RECORDED.items():
        assert hashlib.sha256((TRANSCRIPTS / name).read_bytes()).hexdigest() == digest, name


@pytest.fixture(scope="module")
def replayed(spec_validator: SpecValidator) -> tuple[dict[str, Report], list[str]]:
    """Each recording replayed once against its own fresh emulator (siblings supply pre-existing objects),
    every answer also validated against LINBIT's spec; the reports and the spec failures."""
    out = {}
    spec_validator.take_failures()
    for name in RECORDED:
        siblings = [TRANSCRIPTS / other for other in RECORDED if other != name]
        report = asyncio.run(replay_file(TRANSCRIPTS / name, siblings, observer=spec_validator.observe))
        out[name] = report
        REPORTS.append(report)
    return out, spec_validator.take_failures()


@pytest.fixture
def reports(replayed: tuple[dict[str, Report], list[str]]) -> dict[str, Report]:
    """The replay reports by transcript name."""
    return replayed[0]


def test_replayed_answers_conform_to_linbits_spec(replayed: tuple[dict[str, Report], list[str]]) -> None:
    """The spec validation holds for every answer the replay produced (named spec deviations aside)."""
    assert replayed[1] == []


def _unexplained(report: Report, aspect: str) -> list[str]:
    lines = []
    for outcome in report.outcomes:
        if getattr(outcome, f"{aspect}_equal"):
            continue
        found = deviation_for(report.name, outcome.index + 1)
        if found is None or aspect not in found.aspects:
            exchange = outcome.expected
            lines.append(f"#{outcome.index + 1} {exchange.method} {exchange.path}: {outcome.difference}")
    return lines


def test_the_recorded_cluster_is_built_through_the_api(reports: dict[str, Report]) -> None:
    """Every set-up request (nodes, pools, groups, pre-existing RDs) succeeds on the emulator."""
    for report in reports.values():
        assert report.setup_failures == [], report.name


@pytest.mark.parametrize("aspect", ["status", "codes", "body"])
def test_every_difference_is_a_named_deviation(reports: dict[str, Report], aspect: str) -> None:
    """Statuses, ret_code lists and bodies equal the recording, or the exchange is a named deviation."""
    problems = [f"{name} {line}" for name, r in reports.items() for line in _unexplained(r, aspect)]
    assert problems == [], "\n".join(problems)


def test_targets(reports: dict[str, Report]) -> None:
    """100% of statuses and ret_code lists, and at least 95% of bodies (the issue's targets)."""
    outcomes: list[Outcome] = [o for r in reports.values() for o in r.outcomes]
    total = len(outcomes)
    assert sum(o.status_equal for o in outcomes) == total
    assert sum(o.codes_equal for o in outcomes) == total
    assert sum(o.body_equal for o in outcomes) >= 0.95 * total


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=lambda d: d.name)
def test_deviation_still_reproduces(reports: dict[str, Report], deviation: Deviation) -> None:
    """A named deviation that no longer differs must be removed from the list."""
    report = reports[deviation.transcript]
    for number in deviation.exchanges:
        outcome = report.outcomes[number - 1]
        assert not outcome.equal, f"{deviation.name}: #{number} now matches the recording"
        for aspect in ("status", "codes", "body"):
            if not getattr(outcome, f"{aspect}_equal"):
                assert aspect in deviation.aspects, f"{deviation.name}: #{number} also differs in {aspect}"
