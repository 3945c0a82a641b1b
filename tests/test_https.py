"""HTTPS for the service itself (LINSTOR_NAMES_TLS_*) and mTLS towards LINSTOR, end to end, with a test CA."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.emulator import EmulatorState, create_emulator_app
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import AutoSelectFilter, ResourceGroupCreate
from app.listener import listener_options
from app.main import create_app
from app.settings import Settings
from tests.conftest import Emulator
from tests.linstor.tls import OPENSSL, Pki, make_pki, serve_https
from tests.support.api import POOL, assert_problem
from tests.support.server import free_port, serve

EXE = str(Path(sys.executable).with_name("linstor-names"))
PASSWORD = "s3cret"
# what a client sees when the service drops it during or right after the handshake: no HTTP answer at all
NO_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError)


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Pki:
    """A second CA with its own certificates: trusted by nobody here."""
    return make_pki(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="module")
def encrypted_key(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server key, encrypted with PASSWORD."""
    assert OPENSSL is not None  # the pki fixture skipped otherwise
    path = tmp_path_factory.mktemp("encrypted") / "server.key"
    subprocess.run(
        [
            OPENSSL,
            "pkey",
            "-in",
            str(pki.server_key),
            "-aes256",
            "-passout",
            f"pass:{PASSWORD}",
            "-out",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def trusting(pki: Pki, *, client_cert: Pki | None = None) -> ssl.SSLContext:
    """A client context that trusts `pki`'s CA, presenting `client_cert`'s client certificate if given."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if client_cert is not None:
        context.load_cert_chain(client_cert.client_cert, client_cert.client_key)
    return context


def tls_settings(pki: Pki, cache_dir: Path, **overrides: object) -> Settings:
    """The service's settings with its own certificate from `pki` and a SQLite cache in `cache_dir`."""
    values: dict[str, object] = {
        "cache_url": f"sqlite:///{cache_dir / 'cache.db'}",
        "cache_resync_interval": 3600.0,
        "tls_cert_file": pki.server_cert,
        "tls_key_file": pki.server_key,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def command_env(**settings: str) -> dict[str, str]:
    """The environment of a `linstor-names` subprocess: this one's with `settings`, and no tokens."""
    tokens = ("LINSTOR_NAMES_TOKENS", "LINSTOR_NAMES_TOKENS_FILE")
    return {k: v for k, v in os.environ.items() if k not in tokens} | settings


# ---- start-up errors: one line, no traceback ----------------------------------------------------------


def _tls_env(pki: Pki, encrypted_key: Path, tmp_path: Path, case: str) -> dict[str, str]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM\n")
    cert, key = str(pki.server_cert), str(pki.server_key)
    return {
        "cert without key": {"CERT_FILE": cert},
        "key without cert": {"KEY_FILE": key},
        "client CA without cert": {"CLIENT_CA_FILE": str(pki.ca_cert)},
        "password without key": {"KEY_PASSWORD": PASSWORD},
        "missing cert file": {"CERT_FILE": str(tmp_path / "missing.crt"), "KEY_FILE": key},
        "key file a directory": {"CERT_FILE": cert, "KEY_FILE": str(tmp_path)},
        "key of another certificate": {"CERT_FILE": cert, "KEY_FILE": str(pki.client_key)},
        "cert not PEM": {"CERT_FILE": str(garbage), "KEY_FILE": key},
        "key not PEM": {"CERT_FILE": cert, "KEY_FILE": str(garbage)},
        "encrypted key without password": {"CERT_FILE": cert, "KEY_FILE": str(encrypted_key)},
        "encrypted key, wrong password": {
            "CERT_FILE": cert,
            "KEY_FILE": str(encrypted_key),
            "KEY_PASSWORD": "wrong",
        },
        "client CA not PEM": {"CERT_FILE": cert, "KEY_FILE": key, "CLIENT_CA_FILE": str(garbage)},
        "missing client CA": {"CERT_FILE": cert, "KEY_FILE": key, "CLIENT_CA_FILE": str(tmp_path / "no.crt")},
    }[case]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("cert without key", "LINSTOR_NAMES_TLS_CERT_FILE, LINSTOR_NAMES_TLS_KEY_FILE: specify both or none"),
        ("key without cert", "LINSTOR_NAMES_TLS_CERT_FILE, LINSTOR_NAMES_TLS_KEY_FILE: specify both or none"),
        (
            "client CA without cert",
            "LINSTOR_NAMES_TLS_CLIENT_CA_FILE: set only with LINSTOR_NAMES_TLS_CERT_FILE",
        ),
        ("password without key", "LINSTOR_NAMES_TLS_KEY_PASSWORD: set only with LINSTOR_NAMES_TLS_CERT_FILE"),
        ("missing cert file", "LINSTOR_NAMES_TLS_CERT_FILE: cannot read .*: No such file or directory"),
        ("key file a directory", "LINSTOR_NAMES_TLS_KEY_FILE: cannot read .*: Is a directory"),
        ("key of another certificate", "LINSTOR_NAMES_TLS_KEY_FILE: .* is not the key of the certificate in"),
        ("cert not PEM", "LINSTOR_NAMES_TLS_CERT_FILE: .*garbage.pem holds no PEM certificate"),
        ("key not PEM", "LINSTOR_NAMES_TLS_KEY_FILE: .*garbage.pem holds no PEM private key"),
        (
            "encrypted key without password",
            "cannot decrypt .*: wrong or missing LINSTOR_NAMES_TLS_KEY_PASSWORD",
        ),
        (
            "encrypted key, wrong password",
            "cannot decrypt .*: wrong or missing LINSTOR_NAMES_TLS_KEY_PASSWORD",
        ),
        ("client CA not PEM", "LINSTOR_NAMES_TLS_CLIENT_CA_FILE: .*garbage.pem holds no PEM certificate"),
        ("missing client CA", "LINSTOR_NAMES_TLS_CLIENT_CA_FILE: cannot read .*: No such file or directory"),
    ],
)
def test_unusable_tls_settings_stop_serve_with_one_line(
    case: str,
    message: str,
    pki: Pki,
    encrypted_key: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[object] = []
    monkeypatch.setattr("app.cli.uvicorn.run", lambda app, **kw: ran.append(kw))
    monkeypatch.setenv("LINSTOR_NAMES_CACHE_URL", "none")
    for name, value in _tls_env(pki, encrypted_key, tmp_path, case).items():
        monkeypatch.setenv(f"LINSTOR_NAMES_TLS_{name}", value)
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", str(free_port())])
    assert ran == []
    line = str(stopped.value.code)
    assert "\n" not in line
    assert line.startswith("linstor-names: ")
    assert re.search(message, line), line


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_the_real_command_says_a_mismatched_key_in_one_line_without_a_traceback(
    command: str, pki: Pki, tmp_path: Path
) -> None:
    env = command_env(
        LINSTOR_NAMES_CACHE_URL="none",
        LINSTOR_NAMES_TLS_CERT_FILE=str(pki.server_cert),
        LINSTOR_NAMES_TLS_KEY_FILE=str(pki.client_key),
    )
    args = [EXE, command, "--port", str(free_port())]
    if command == "dev":
        args += ["--emulator-port", str(free_port())]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    # the line before says that authentication is off
    assert done.stderr.splitlines()[1:] == [
        f"linstor-names: LINSTOR_NAMES_TLS_KEY_FILE: {pki.client_key} is not the key of the certificate in "
        f"LINSTOR_NAMES_TLS_CERT_FILE ({pki.server_cert})"
    ], done.stderr


# ---- the service over HTTPS ----------------------------------------------------------------------------


def _wait_https(url: str, pki: Pki, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", verify=trusting(pki)).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer over HTTPS")


async def _create_pool(linstor: ConnectionConfig) -> None:
    async with LinstorClient(linstor, retries=0) as client:
        await client.create_resource_group(
            ResourceGroupCreate(name=POOL, select_filter=AutoSelectFilter(place_count=2))
        )


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_the_real_command_serves_https_to_clients_that_trust_its_ca(
    command: str, emulator: Emulator, pki: Pki, tmp_path: Path
) -> None:
    port, emulator_port = free_port(), free_port()
    env = command_env(
        LINSTOR_NAMES_CACHE_URL=f"sqlite:///{tmp_path / 'cache.db'}",
        LINSTOR_NAMES_TLS_CERT_FILE=str(pki.server_cert),
        LINSTOR_NAMES_TLS_KEY_FILE=str(pki.server_key),
        LS_CONTROLLERS=emulator.url,
    )
    args = [EXE, "--log-format", "text", command, "--port", str(port)]
    linstor_url = emulator.url
    if command == "dev":  # dev brings its own emulator
        args += ["--emulator-port", str(emulator_port)]
        linstor_url = f"http://127.0.0.1:{emulator_port}"
    url = f"https://127.0.0.1:{port}"
    log = tmp_path / "stderr"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(args, env=env, stderr=stderr)
    try:
        _wait_https(url, pki, proc)
        asyncio.run(_create_pool(ConnectionConfig(urls=(linstor_url,))))
        with httpx.Client(base_url=url, verify=trusting(pki), timeout=30) as api:
            created = api.post(
                f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": "1GiB"}
            )
            assert created.status_code == 201, created.text
            found = api.get(f"/v1/pools/{POOL}/volumes/container/c1")
            assert found.status_code == 200, found.text
            assert found.json()["linstor_name"] == created.json()["linstor_name"]
        # the command-line client trusts the CA through SSL_CERT_FILE, as httpx reads it (README, TLS)
        listing = subprocess.run(
            [EXE, "volume", "list", "--pool", POOL, "--url", url, "--output", "json"],
            env={**env, "SSL_CERT_FILE": str(pki.ca_cert)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listing.returncode == 0, listing.stderr
        assert "c1" in listing.stdout
        # a client that does not trust the test CA (httpx's default: certifi's CAs) refuses the service
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz")
        # plain HTTP to the TLS port gets no HTTP answer, not even an error page
        with pytest.raises(NO_ANSWER):
            httpx.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    lines = log.read_text()
    assert f"running on https://127.0.0.1:{port}" in lines  # uvicorn's start-up line
    if command == "dev":
        assert f"linstor-names on https://127.0.0.1:{port} (Swagger UI: /docs)" in lines


def test_an_encrypted_key_is_used_with_its_password(pki: Pki, encrypted_key: Path, tmp_path: Path) -> None:
    settings = tls_settings(pki, tmp_path, tls_key_file=encrypted_key, tls_key_password=PASSWORD)
    with serve(create_app(settings), **listener_options(settings, "warning")) as url:
        assert url.startswith("https://")
        assert httpx.get(f"{url}/healthz", verify=trusting(pki)).status_code == 200


def test_a_client_ca_makes_the_service_require_a_client_certificate(
    pki: Pki, other_pki: Pki, tmp_path: Path
) -> None:
    settings = tls_settings(pki, tmp_path, tls_client_ca_file=pki.ca_cert)
    with serve(create_app(settings), **listener_options(settings, "warning")) as url:
        assert httpx.get(f"{url}/healthz", verify=trusting(pki, client_cert=pki)).status_code == 200
        # TLS 1.3: the service refuses after the client's side of the handshake; the client sees a closed
        # connection at its first read
        with pytest.raises(NO_ANSWER):
            httpx.get(f"{url}/healthz", verify=trusting(pki))
        with pytest.raises(NO_ANSWER):
            httpx.get(f"{url}/healthz", verify=trusting(pki, client_cert=other_pki))


# ---- mTLS towards LINSTOR, end to end ------------------------------------------------------------------


@pytest.fixture
def mtls_linstor(pki: Pki) -> Iterator[str]:
    """A fresh emulator over HTTPS that requires a client certificate signed by the test CA; its URL."""
    with serve_https(pki, require_client_cert=True, app=create_emulator_app(state=EmulatorState())) as url:
        yield url


def linstor_env(url: str, pki: Pki, client: Pki | None) -> ConnectionConfig:
    """The LINSTOR connection as LS_* give it: our CA, and `client`'s client certificate if any."""
    env = {"LS_CONTROLLERS": url, "LS_ROOT_CA_FILE": str(pki.ca_cert)}
    if client is not None:
        env |= {
            "LS_USER_CERTIFICATE_FILE": str(client.client_cert),
            "LS_USER_KEY_FILE": str(client.client_key),
        }
    return ConnectionConfig.from_env(env)


@asynccontextmanager
async def https_service(
    settings: Settings, linstor: ConnectionConfig, pki: Pki
) -> AsyncIterator[httpx.AsyncClient]:
    """The service over HTTPS (the listener serve and dev build), in front of `linstor`; a client of it."""
    app = create_app(settings, linstor=linstor)
    with serve(app, **listener_options(settings, "warning")) as url:
        async with httpx.AsyncClient(base_url=url, verify=trusting(pki), timeout=30) as client:
            yield client


async def test_the_service_works_through_linstor_that_requires_a_client_certificate(
    mtls_linstor: str, pki: Pki, tmp_path: Path
) -> None:
    linstor = linstor_env(mtls_linstor, pki, client=pki)
    await _create_pool(linstor)
    async with https_service(tls_settings(pki, tmp_path), linstor, pki) as api:
        body = {"name": "c1", "type": "container", "size": "1GiB"}
        created = await api.post(f"/v1/pools/{POOL}/volumes", json=body)
        assert created.status_code == 201, created.text
        found = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
        assert found.status_code == 200, found.text
        assert found.json()["linstor_name"] == created.json()["linstor_name"]
        renamed = await api.patch(f"/v1/pools/{POOL}/volumes/container/c1", json={"name": "c2"})
        assert renamed.status_code == 200, renamed.text
        assert (await api.get(f"/v1/pools/{POOL}/volumes/container/c2")).status_code == 200
        assert (await api.delete(f"/v1/pools/{POOL}/volumes/container/c2")).status_code == 204
        gone = await api.get(f"/v1/pools/{POOL}/volumes/container/c2")
        assert_problem(gone, 404, "volume_not_found")


@pytest.mark.parametrize("client", ["none", "another CA's"])
async def test_without_an_accepted_client_certificate_linstor_is_unavailable_at_once(
    client: str, mtls_linstor: str, pki: Pki, other_pki: Pki, tmp_path: Path
) -> None:
    await _create_pool(linstor_env(mtls_linstor, pki, client=pki))
    refused = linstor_env(mtls_linstor, pki, client=None if client == "none" else other_pki)
    async with https_service(tls_settings(pki, tmp_path), refused, pki) as api:
        started = time.monotonic()
        answer = await api.post(
            f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": "1GiB"}
        )
        # The controller drops the connection once it has checked the client's certificate (TLS 1.3: after the
        # handshake, at the first read): httpx raises RemoteProtocolError or ReadError, which the transport
        # turns into LinstorUnavailable (`except httpx.TransportError` in _send_once), retried as any
        # operational error of a GET, and app/translate.py answers 503 linstor_unavailable.
        assert_problem(answer, 503, "linstor_unavailable")
        assert time.monotonic() - started < 5  # the retries' backoff, not a timeout
        ready = await api.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["linstor"].startswith("unavailable: ")
