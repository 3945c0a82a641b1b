"""Shared fixtures: the LINSTOR emulator over real HTTP, every answer checked against LINBIT's spec."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from app.emulator import EmulatorState, create_emulator_app
from tests.conformance.spec import SpecValidator
from tests.linstor.tls import OPENSSL, Pki, make_pki
from tests.support.deps import skip_or_fail
from tests.support.postgres import PostgresUnavailable, postgres_server, scratch_database
from tests.support.server import serve


@dataclass
class Emulator:
    """A running emulator: its base URL and its in-process state (for arranging and inspecting)."""

    url: str
    state: EmulatorState


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """`linstor-names serve` points the root logger at the test's stderr; give later tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    # `serve` also freezes the collector's view of the process (app/cli.py): the tests' garbage must stay
    # collectable
    gc.unfreeze()


@pytest.fixture(scope="session")
def spec_validator() -> SpecValidator:
    """Validates every emulator answer against rest_v1_openapi.yaml (with the named deviations)."""
    return SpecValidator.load()


@pytest.fixture(scope="session")
def emulator_server(spec_validator: SpecValidator) -> Iterator[Emulator]:
    """One emulator per test session, served by uvicorn on 127.0.0.1."""
    state = EmulatorState()
    app = create_emulator_app(state=state, observer=spec_validator.observe)
    with serve(app) as url:
        yield Emulator(url=url, state=state)


@pytest.fixture
def emulator(emulator_server: Emulator, spec_validator: SpecValidator) -> Iterator[Emulator]:
    """The emulator, reset to its default cluster; the test fails if an answer broke the spec."""
    emulator_server.state.reset()
    spec_validator.take_failures()
    yield emulator_server
    failures = spec_validator.take_failures()
    assert not failures, "emulator answers that do not match LINBIT's spec:\n" + "\n".join(failures)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA with a server certificate for 127.0.0.1/localhost and a client certificate."""
    if OPENSSL is None:
        skip_or_fail("the openssl CLI is needed to make test certificates")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One PostgreSQL server for the session (LINSTOR_NAMES_TEST_PG_URL or a throwaway cluster)."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            skip_or_fail(str(exc))
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """An empty database of its own for one test."""
    with scratch_database(pg_server) as url:
        yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the replay figures (`replay: N/M exchanges equal`) and schemathesis's, of the tests that ran."""
    from tests.api.test_schemathesis import SUMMARIES
    from tests.conformance.test_replay import REPORTS

    for summary in SUMMARIES:
        terminalreporter.write_line(summary)

    for report in REPORTS:
        terminalreporter.write_line(report.summary())
    if REPORTS:
        equal = sum(r.count("equal") for r in REPORTS)
        total = sum(len(r.outcomes) for r in REPORTS)
        terminalreporter.write_line(f"replay: {equal}/{total} exchanges equal (all transcripts)")
