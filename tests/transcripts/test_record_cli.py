"""`linstor-names record` and `linstor-names replay` as the console script runs them."""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.transcripts.format import read_transcript
from tests.conftest import Emulator
from tests.support.server import free_port

EXE = str(Path(sys.executable).with_name("linstor-names"))


def record(upstream: str, out: Path, *extra: str) -> list[tuple[int, str]]:
    """Run `linstor-names record`, send two requests through it, stop it; (status, text) of both answers."""
    port = free_port()
    command = [EXE, "record", "--upstream", upstream, "--out", str(out), "--port", str(port), *extra]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    answers: list[tuple[int, str]] = []
    try:
        # a refused connection never reaches the controller, so nothing is recorded while we wait
        for _ in range(200):
            if proc.poll() is not None:
                break
            try:
                first = httpx.get(f"{url}/v1/controller/version")
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            second = httpx.get(f"{url}/v1/resource-groups/nope")
            answers = [(first.status_code, first.text), (second.status_code, second.text)]
            break
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert answers, f"the recorder did not serve: {stderr}"
    assert f"recording proxy on http://127.0.0.1:{port} -> {upstream}" in stderr
    assert str(out) in stderr
    return answers


def test_record_writes_the_transcript_and_append_adds_to_it(emulator: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "my.jsonl"
    answers = record(emulator.url, out)
    assert [(e.method, e.path, e.status, e.response) for e in read_transcript(out)] == [
        ("GET", "/v1/controller/version", *answers[0]),
        ("GET", "/v1/resource-groups/nope", *answers[1]),
    ]
    assert answers[1][0] == 404

    more = record(emulator.url, out, "--append")
    assert [(e.path, e.status, e.response) for e in read_transcript(out)[2:]] == [
        ("/v1/controller/version", *more[0]),
        ("/v1/resource-groups/nope", *more[1]),
    ]


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusals must come before uvicorn starts (else the test would hang in it)."""

    def run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the recorder was started")

    monkeypatch.setattr("app.cli.uvicorn.run", run)


@pytest.mark.usefixtures("no_server")
def test_record_never_overwrites_a_transcript(tmp_path: Path) -> None:
    out = tmp_path / "my.jsonl"
    out.write_text("kept\n")
    with pytest.raises(SystemExit, match="exists; pass --append"):
        main(["record", "--upstream", "http://127.0.0.1:3370", "--out", str(out)])
    assert out.read_text() == "kept\n"


@pytest.mark.usefixtures("no_server")
def test_record_refuses_a_bad_upstream(tmp_path: Path) -> None:
    out = tmp_path / "my.jsonl"
    with pytest.raises(SystemExit, match="give an http:// or https:// URL"):
        main(["record", "--upstream", "controller:3370", "--out", str(out)])
    assert not out.exists()


@pytest.mark.usefixtures("no_server")
def test_record_refuses_a_ca_file_it_cannot_load(tmp_path: Path) -> None:
    out = tmp_path / "my.jsonl"
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(SystemExit, match="cannot load --ca-file"):
        main(
            [
                "record",
                "--upstream",
                "https://c:3371",
                "--out",
                str(out),
                "--ca-file",
                str(tmp_path / "ca.pem"),
            ]
        )
    assert not out.exists()


def test_replay_exits_with_the_code_of_the_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []

    def replay(path: str, verbose: bool) -> int:
        calls.append((path, verbose))
        return 3

    module = types.ModuleType("app.transcripts.replay")
    module.main = replay  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "app.transcripts.replay", module)
    with pytest.raises(SystemExit) as exited:
        main(["replay", "my.jsonl", "--verbose"])
    assert exited.value.code == 3
    with pytest.raises(SystemExit):
        main(["replay", "other.jsonl"])
    assert calls == [("my.jsonl", True), ("other.jsonl", False)]
