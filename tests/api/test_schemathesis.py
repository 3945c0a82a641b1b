"""Schemathesis, every check, against the service over real HTTP in front of the emulator: the OpenAPI
document tells the truth (issue 11, item 5).

`st run --checks all` runs its four phases (examples, coverage, fuzzing, stateful: the document's links and
those it infers from Location headers) on every operation. The service has one admin token (admin implies
write and read), given as the OpenAPI security scheme's value so that the authentication checks can leave it
out or spoil it; path `pool` is the test pool 8 times in 10, so that creates succeed. The run is bounded by
a time budget (BUDGET_SECONDS, about 50 s in all) and a fixed seed. It must be clean; its figures are printed
at the end of the session (tests/conftest.py).

Exclusions, each named and justified where it is made:
- no check is excluded, and no operation;
- the stateful phase infers links from Location headers only, beside the document's own links (see
  EXCLUSION 3 below);
- tests/support/schemathesis_hooks.py: (1) create requests whose size string stands for 0 or more than
  1 PiB are not sent (no JSON Schema keyword bounds the number a string stands for); (2) well-formed
  Idempotency-Keys are made unique per request (a key reused for another request is 422 by design, and no
  schema can say "unique").
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from app.auth_tokens import Scope, create_token
from tests.api.conftest import ServiceFactory
from tests.support.api import POOL

ROOT = Path(__file__).resolve().parents[2]
ST = Path(sys.executable).with_name("st")
BUDGET_SECONDS = 45  # fuzzing and stateful testing repeat until the budget is spent
SEED = 11
SUMMARIES: list[str] = []
TOKEN, HASHED = create_token("schemathesis", [Scope.ADMIN])


async def test_schemathesis_all_checks_find_nothing(service: ServiceFactory, tmp_path: Path) -> None:
    report, hooks = tmp_path / "report.json", tmp_path / "hooks.json"
    async with service(tokens=HASHED.line()) as client:
        # the token as the OpenAPI security scheme's value: schemathesis then knows to leave it out, or
        # spoil it, when it checks that authentication is required (a plain --header would be resent)
        config = tmp_path / "schemathesis.toml"
        # and the test pool most of the time, so that creates succeed and the stateful phase follows links
        config.write_text(
            f'[auth.openapi.bearer]\nbearer = "{TOKEN}"\n\n'
            f'[dictionaries.pools]\nvalues = ["{POOL}"]\n\n'
            '[parameters]\n"path.pool" = { dictionary = "pools", probability = 0.8 }\n\n'
            # EXCLUSION 3: of the link inference, dependency analysis is off; the Location headers and the
            # document's own links remain. It matched a snapshot's body `name` to a volume's path `name`,
            # sending a snapshot name where an instance name goes: a request outside the schema, which
            # schemathesis then counts as "schema-valid but refused".
            '[phases.stateful.inference]\nalgorithms = ["location-headers"]\n'
        )
        command = [
            str(ST),
            "--config-file",
            str(config),
            "run",
            str(client.base_url.join("/openapi.json")),
            "--checks",
            "all",
            "--max-examples",
            "10",
            "--max-time",
            str(BUDGET_SECONDS),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
            "ST_HOOK_REPORT": str(hooks),
        }
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=tmp_path,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=BUDGET_SECONDS + 120)
    text = output.decode(errors="replace")
    assert report.exists(), text[-20000:]
    result = json.loads(report.read_text())
    hooked = json.loads(hooks.read_text()) if hooks.exists() else {}
    cases = result["test_cases"]
    stateful = " ".join(
        " ".join(line.split())
        for line in text.splitlines()
        if line.strip().startswith(("Scenarios:", "API Links:"))
    )
    phases = ", ".join(
        " ".join(line.split()[1:])
        for line in text.splitlines()
        if line.split()[1:2] in (["Examples"], ["Coverage"], ["Fuzzing"], ["Stateful"]) and "(in " in line
    )
    summary = (
        f"schemathesis: {cases['generated']} cases on {result['operations']['tested']} operations in "
        f"{result['running_time']:.0f}s, {cases['with_failures']} with failures, "
        f"{len(result['failures'])} kinds of failure, {len(result['errors'])} errors; checks excluded: none; "
        f"operations excluded: none; hooks: {hooked or 'nothing changed'}; phases: {phases}; "
        f"stateful: {stateful}"
    )
    SUMMARIES.append(summary)  # printed at the end of the run (tests/conftest.py)
    assert process.returncode == 0, text[-20000:]
    assert result["failures"] == [], text[-20000:]
    assert result["errors"] == [], text[-20000:]
    assert result["operations"]["tested"] == result["operations"]["total"]
    assert cases["generated"] > 0
