"""The console script: settings errors, cache migrate/rebuild, openapi, the emulator and python-linstor."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import linstor as pylinstor
import pytest

from app.cli import main
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import ResourceGroupCreate
from tests.conftest import Emulator
from tests.support.server import free_port

EXE = str(Path(sys.executable).with_name("linstor-names"))


def incus_container_c1_in(emulator: Emulator) -> None:
    """Pool `pool1` holding one container `c1` as Incus writes it, straight into the emulator."""

    async def arrange() -> None:
        async with LinstorClient(ConnectionConfig(urls=(emulator.url,))) as client:
            await client.create_resource_group(ResourceGroupCreate(name="pool1"))
            await client.create_resource_definition(
                "incus-volume-0123456789abcdef0123456789abcdef",
                resource_group="pool1",
                props={
                    "Aux/Incus/name": "incus-volume-c1",
                    "Aux/Incus/type": "containers",
                    "Aux/Incus/content-type": "filesystem",
                },
            )

    asyncio.run(arrange())


@pytest.mark.parametrize("prefix", ["incus-volume-toolong", "1abc", "bad.prefix", ""])
def test_a_bad_prefix_stops_the_service_with_a_clear_message(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINSTOR_NAMES_VOLUME_PREFIX", prefix)
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", str(free_port())])
    message = str(stopped.value.code)
    assert "volume_prefix" in message
    assert "at most 16 characters" in message


def test_cache_migrate_and_rebuild(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINSTOR_NAMES_CACHE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("LS_CONTROLLERS", emulator.url)
    main(["cache", "migrate"])
    assert "cache schema at head" in capsys.readouterr().out

    incus_container_c1_in(emulator)
    main(["cache", "rebuild"])
    assert "cache rebuilt from LINSTOR: 1 volumes" in capsys.readouterr().out


def test_cache_rebuild_with_linstor_down_says_so_in_one_line_and_keeps_the_cache(
    emulator: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    env = {**os.environ, "LINSTOR_NAMES_CACHE_URL": f"sqlite:///{db}", "LS_CONTROLLERS": emulator.url}
    env["LINSTOR_NAMES_LINSTOR_RETRIES"] = "0"  # the failure at once, and no retry lines around it

    incus_container_c1_in(emulator)
    rebuild = [EXE, "cache", "rebuild"]
    assert subprocess.run(rebuild, env=env, capture_output=True, check=False).returncode == 0
    emulator.state.add_fault(action="error", method="GET", path=r"^/v1/resource-definitions")
    try:
        failed = subprocess.run(rebuild, env=env, capture_output=True, text=True, check=False)
    finally:
        emulator.state.clear_faults()
    assert failed.returncode == 1
    assert failed.stderr == (
        "linstor-names: cache rebuild: LINSTOR is unavailable; the cache was left as it was\n"
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM volumes").fetchone()[0] == 1
    conn.close()


def test_cache_commands_refuse_without_a_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINSTOR_NAMES_CACHE_URL", "none")
    with pytest.raises(SystemExit, match="no cache configured"):
        main(["cache", "migrate"])


def test_openapi_command_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    main(["openapi"])
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "linstor-names"


def _wait_healthy(port: int) -> str:
    """The base URL of an emulator subprocess, once its /health answers (at most ~10 s)."""
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return url


def test_emulator_command_serves_python_linstor(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state.json"
    proc = subprocess.Popen([EXE, "emulator", "--port", str(port), "--state-file", str(state)])
    try:
        url = _wait_healthy(port)
        with pylinstor.Linstor(url) as lin:
            assert lin.controller_version().rest_api_version == "1.28.0"
            assert not lin.resource_group_create("rg1", place_count=2)[0].is_error()
            assert [rg.name for rg in lin.resource_group_list_raise().resource_groups] == [
                "DfltRscGrp",
                "rg1",
            ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # the state file is written at shutdown and loaded at the next start
    assert "rg1" in state.read_text()


def test_emulator_command_builds_a_bare_cluster_with_named_satellites() -> None:
    """`--layout bare --satellite server01=vm`: no nodes until created through the API; server01's
    satellite answers (ONLINE, host vm) and any other node stays OFFLINE (controller-api.jsonl #172-181)."""
    port = free_port()
    proc = subprocess.Popen(
        [EXE, "emulator", "--port", str(port), "--layout", "bare", "--satellite", "server01=vm"]
    )
    try:
        url = _wait_healthy(port)
        assert httpx.get(f"{url}/v1/nodes").json() == []
        for name in ("server01", "other"):
            net = {
                "name": "default",
                "address": "127.0.0.1",
                "satellite_port": 3366,
                "satellite_encryption_type": "PLAIN",
            }
            node = {"name": name, "type": "SATELLITE", "net_interfaces": [net]}
            assert httpx.post(f"{url}/v1/nodes", json=node).status_code == 201
        nodes = {n["name"]: n for n in httpx.get(f"{url}/v1/nodes").json()}
        assert nodes["server01"]["connection_status"] == "ONLINE"
        assert nodes["server01"]["props"]["NodeUname"] == "vm"
        assert nodes["other"]["connection_status"] == "OFFLINE"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_token_create_prints_a_token_and_a_line_that_parses_back(capsys: pytest.CaptureFixture[str]) -> None:
    from app.auth_tokens import Scope, parse_lines, verify

    main(["token", "create", "ci", "--scopes", "read,write"])
    token, line = capsys.readouterr().out.splitlines()
    assert token not in line
    (parsed,) = parse_lines(line)
    assert parsed.name == "ci"
    assert parsed.scopes == {Scope.READ, Scope.WRITE}
    assert verify([parsed], token) == parsed


def test_token_create_refuses_an_unknown_scope() -> None:
    with pytest.raises(SystemExit, match="unknown scope 'root'"):
        main(["token", "create", "ci", "--scopes", "read,root"])


@pytest.mark.parametrize(
    ("host", "tokens", "allowed", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("::1", False, False, False),
        ("localhost", False, False, False),
        ("0.0.0.0", False, False, True),
        ("::", False, False, True),
        ("192.0.2.7", False, False, True),
        ("names.example", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
    ],
)
def test_who_may_listen_without_tokens(host: str, tokens: bool, allowed: bool, refused: bool) -> None:
    from app.auth_tokens import unauthenticated_bind_refusal

    refusal = unauthenticated_bind_refusal(host, has_tokens=tokens, allow_unauthenticated=allowed)
    assert (refusal is not None) == refused


def test_serve_off_loopback_without_tokens_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr("app.cli.uvicorn.run", lambda app, host, **kw: ran.append(host))
    monkeypatch.delenv("LINSTOR_NAMES_TOKENS", raising=False)
    monkeypatch.delenv("LINSTOR_NAMES_TOKENS_FILE", raising=False)
    monkeypatch.setenv("LINSTOR_NAMES_CACHE_URL", "none")
    with pytest.raises(SystemExit, match=r"refusing to listen on 0\.0\.0\.0 without tokens"):
        main(["serve", "--host", "0.0.0.0", "--port", str(free_port())])
    assert ran == []
    monkeypatch.setenv("LINSTOR_NAMES_ALLOW_UNAUTHENTICATED", "true")
    main(["serve", "--host", "0.0.0.0", "--port", str(free_port())])
    assert ran == ["0.0.0.0"]


def test_serve_says_when_authentication_is_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("app.cli.uvicorn.run", lambda app, **kw: None)
    monkeypatch.delenv("LINSTOR_NAMES_TOKENS", raising=False)
    monkeypatch.delenv("LINSTOR_NAMES_TOKENS_FILE", raising=False)
    monkeypatch.setenv("LINSTOR_NAMES_CACHE_URL", "none")
    main(["serve", "--port", str(free_port())])
    err = capsys.readouterr().err.splitlines()
    assert err == ["linstor-names: no tokens configured, authentication is off: serving loopback only"]


def test_serve_with_a_bad_tokens_file_exits_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tokens").write_text("ops:read\n")
    monkeypatch.setenv("LINSTOR_NAMES_TOKENS_FILE", str(tmp_path / "tokens"))
    with pytest.raises(SystemExit, match=r"cannot use the tokens.*name:scopes:hash"):
        main(["serve", "--host", "0.0.0.0", "--port", str(free_port())])


def test_dev_turns_the_emulator_controls_on(tmp_path: Path) -> None:
    """The soak and benchmark scripts inject faults through `linstor-names dev`."""
    port, emulator_port = free_port(), free_port()
    env = {**os.environ, "LINSTOR_NAMES_CACHE_URL": f"sqlite:///{tmp_path / 'cache.db'}"}
    env.pop("LINSTOR_NAMES_TOKENS", None)
    cmd = [EXE, "--log-level", "warning", "dev", "--port", str(port), "--emulator-port", str(emulator_port)]
    proc = subprocess.Popen(cmd, env=env)
    try:
        url = _wait_healthy(emulator_port)
        assert httpx.get(f"{url}/_emulator/faults").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _busy_port() -> socket.socket:
    """A socket listening on 127.0.0.1 at a port of its own (close it when done)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("which", ["serve", "dev", "dev-emulator"])
def test_a_busy_port_stops_serve_and_dev_with_one_line(which: str, tmp_path: Path) -> None:
    env = {**os.environ, "LINSTOR_NAMES_CACHE_URL": f"sqlite:///{tmp_path / 'cache.db'}"}
    env.pop("LINSTOR_NAMES_TOKENS", None)
    env.pop("LINSTOR_NAMES_TOKENS_FILE", None)
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        if which == "serve":
            args = ["serve", "--port", str(port)]
        elif which == "dev":
            args = ["dev", "--port", str(port), "--emulator-port", str(free_port())]
        else:
            args = ["dev", "--port", str(free_port()), "--emulator-port", str(port)]
        done = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    # the only other line says that authentication is off
    assert lines[-1] == f"linstor-names: port {port} on 127.0.0.1 is in use"
    assert len(lines) == 2, done.stderr


def test_env_file_sets_the_linstor_connection_and_the_environment_wins(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "env"
    env_file.write_text(
        f"# as deploy/env.example mixes them\nLS_CONTROLLERS={emulator.url}\nLS_USERNAME=from-file\n"
        f"LINSTOR_NAMES_CACHE_URL=sqlite:///{tmp_path / 'c.db'}\n"
    )
    for name in ("LS_CONTROLLERS", "LINSTOR_NAMES_CACHE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LS_USERNAME", "from-environment")
    main(["--env-file", str(env_file), "cache", "rebuild"])  # reaches the emulator only through the file
    assert "cache rebuilt from LINSTOR" in capsys.readouterr().out
    assert os.environ["LS_USERNAME"] == "from-environment"


def test_a_missing_env_file_is_refused() -> None:
    with pytest.raises(SystemExit, match=r"--env-file /nonexistent/env: no such file"):
        main(["--env-file", "/nonexistent/env", "serve"])


def test_serve_bounds_the_graceful_shutdown_inside_the_deployments_stop_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr("app.cli.uvicorn.run", lambda app, **kw: seen.update(kw))
    monkeypatch.setenv("LINSTOR_NAMES_CACHE_URL", "none")
    main(["serve", "--port", str(free_port())])
    grace = seen["timeout_graceful_shutdown"]
    assert isinstance(grace, int)
    assert 0 < grace < 60  # TimeoutStopSec=60, terminationGracePeriodSeconds: 60
    unit = (Path(__file__).parents[1] / "deploy" / "linstor-names.service").read_text()
    assert "TimeoutStopSec=60" in unit


def test_serve_freezes_what_lives_as_long_as_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # ~140k objects of code and app: a full collection walking them paused every request ~90 ms
    frozen: list[int] = []
    monkeypatch.setattr("app.cli.uvicorn.run", lambda app, **kw: frozen.append(gc.get_freeze_count()))
    monkeypatch.setenv("LINSTOR_NAMES_CACHE_URL", "none")
    gc.unfreeze()
    main(["serve", "--port", str(free_port())])
    assert frozen[0] > 10_000  # the conftest's autouse fixture unfreezes after the test


def _documented_settings() -> set[str]:
    """The variables the README's settings table names (`LINSTOR_NAMES_A_B` / `_C`: LINSTOR_NAMES_A_C too)."""
    section = (Path(__file__).parents[1] / "README.md").read_text().split("\n## Configuration\n")[1]
    names: set[str] = set()
    for row in section.split("\n## ")[0].splitlines():
        if row.startswith("| `LINSTOR_NAMES_"):
            first = re.findall(r"`([A-Z_]+)`", row.split("|")[1])
            names.add(first[0])
            for suffix in first[1:]:  # a shorthand replaces as many of the last words as it has
                names.add("_".join(first[0].split("_")[: -len(suffix.strip("_").split("_"))]) + suffix)
    return names


def test_the_readme_settings_table_names_every_setting() -> None:
    from app.settings import Settings

    assert _documented_settings() == {f"LINSTOR_NAMES_{name.upper()}" for name in Settings.model_fields}
