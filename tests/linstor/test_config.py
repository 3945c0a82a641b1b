"""ConnectionConfig.from_env reads LS_* the way golinstor does; TLS against a real HTTPS server."""

from __future__ import annotations

import os
import ssl
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.linstor import LinstorClient, LinstorUnavailable
from app.linstor.config import ConnectionConfig, ConnectionConfigError, parse_controller
from tests.linstor.tls import Pki, serve_https

# ---- LS_CONTROLLERS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("ctrl", "http://ctrl:3370"),
        ("ctrl:4000", "http://ctrl:4000"),
        ("linstor://ctrl", "http://ctrl:3370"),
        ("linstor://ctrl:4000", "http://ctrl:4000"),
        ("linstor+ssl://ctrl", "https://ctrl:3371"),
        ("linstor+ssl://ctrl:4001", "https://ctrl:4001"),
        ("http://ctrl", "http://ctrl:3370"),
        ("http://ctrl:80", "http://ctrl:80"),
        ("https://ctrl", "https://ctrl:3371"),
        ("https://ctrl:443/", "https://ctrl:443"),
        ("HTTPS://ctrl", "https://ctrl:3371"),
        ("10.0.0.1", "http://10.0.0.1:3370"),
        ("[fd00::1]", "http://[fd00::1]:3370"),
        ("[fd00::1]:4000", "http://[fd00::1]:4000"),
        ("linstor+ssl://[fd00::1]", "https://[fd00::1]:3371"),
        ("https://[::1]:4001", "https://[::1]:4001"),
        ("  ctrl  ", "http://ctrl:3370"),
    ],
)
def test_controller_entry(entry: str, url: str) -> None:
    assert ConnectionConfig.from_env({"LS_CONTROLLERS": entry}).urls == (url,)


def test_unset_or_empty_means_localhost() -> None:
    assert ConnectionConfig.from_env({}).urls == ("http://localhost:3370",)
    assert ConnectionConfig.from_env({"LS_CONTROLLERS": ""}).urls == ("http://localhost:3370",)
    assert ConnectionConfig.from_env({"LS_CONTROLLERS": " , "}).urls == ("http://localhost:3370",)
    assert ConnectionConfig().urls == ("http://localhost:3370",)


def test_several_controllers_keep_their_order_and_skip_empty_entries() -> None:
    env = {"LS_CONTROLLERS": "linstor://a,, b:4000 ,linstor+ssl://c,"}
    assert ConnectionConfig.from_env(env).urls == ("http://a:3370", "http://b:4000", "https://c:3371")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("ftp://ctrl", "unknown scheme 'ftp'"),
        ("linstor+tls://ctrl", "unknown scheme 'linstor+tls'"),
        ("ctrl:port", "invalid port 'port'"),
        ("ctrl:", "invalid port ''"),
        ("ctrl:0", "invalid port '0'"),
        ("ctrl:65536", "invalid port '65536'"),
        ("fd00::1", "Put it in brackets"),
        ("[fd00::1", "unclosed '['"),
        ("[fd00::1]x", "unexpected 'x'"),
        ("http://ctrl:3370/api", "has a path"),
        ("http://admin@ctrl", "user info"),
        ("http://", "no host"),
        ("http://:3370", "no host"),
    ],
)
def test_bad_controller_entry(entry: str, message: str) -> None:
    with pytest.raises(ConnectionConfigError, match="LS_CONTROLLERS") as info:
        ConnectionConfig.from_env({"LS_CONTROLLERS": f"good,{entry}"})
    assert message in str(info.value)


def test_parse_controller_default_scheme() -> None:
    assert parse_controller("ctrl", default_scheme="https") == "https://ctrl:3371"
    assert parse_controller("linstor://ctrl", default_scheme="https") == "https://ctrl:3371"
    assert parse_controller("http://ctrl", default_scheme="https") == "http://ctrl:3370"


# ---- Basic auth and bearer token ---------------------------------------------------------------------


def test_basic_auth() -> None:
    config = ConnectionConfig.from_env({"LS_USERNAME": "admin", "LS_PASSWORD": "s3cret"})
    assert (config.username, config.password) == ("admin", "s3cret")
    config = ConnectionConfig.from_env({"LS_USERNAME": "admin"})
    assert (config.username, config.password) == ("admin", "")


def test_password_without_username_is_ignored() -> None:
    config = ConnectionConfig.from_env({"LS_USERNAME": "", "LS_PASSWORD": "s3cret"})
    assert (config.username, config.password) == (None, None)


def test_bearer_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  abc.def.ghi\n")
    config = ConnectionConfig.from_env({"LS_BEARER_TOKEN_FILE": str(token_file)})
    assert config.bearer_token == "abc.def.ghi"
    assert ConnectionConfig.from_env({}).bearer_token is None


def test_bearer_token_file_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(ConnectionConfigError, match="LS_BEARER_TOKEN_FILE: cannot read"):
        ConnectionConfig.from_env({"LS_BEARER_TOKEN_FILE": str(tmp_path / "nope")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConnectionConfigError, match="is empty"):
        ConnectionConfig.from_env({"LS_BEARER_TOKEN_FILE": str(tmp_path / "empty")})


@pytest.mark.parametrize(
    ("config", "header"),
    [
        (ConnectionConfig(username="admin", password="pw"), "Basic YWRtaW46cHc="),
        (ConnectionConfig(bearer_token="tok"), "Bearer tok"),
        (ConnectionConfig(), None),
    ],
)
async def test_auth_headers_are_sent(config: ConnectionConfig, header: str | None) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"version": "1.34.0"})

    async with LinstorClient(config, transport=httpx.MockTransport(answer)) as client:
        await client.controller_version()
    assert seen[0].headers.get("Authorization") == header


# ---- TLS material ------------------------------------------------------------------------------------


def test_no_tls_means_plain_http_and_no_context() -> None:
    config = ConnectionConfig.from_env({"LS_CONTROLLERS": "ctrl"})
    assert config.ssl_context is None


def test_https_url_gets_a_verifying_context_with_system_cas() -> None:
    context = ConnectionConfig.from_env({"LS_CONTROLLERS": "https://ctrl"}).ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.mark.parametrize("variable", ["LS_ROOT_CA", "LS_USER_CERTIFICATE"])
def test_tls_variables_make_https_the_default_scheme(pki: Pki, variable: str) -> None:
    """golinstor's defaultScheme(): any TLS variable turns bare and linstor:// entries into https."""
    env = {"LS_CONTROLLERS": "a,linstor://b,http://c,d:4000"}
    if variable == "LS_ROOT_CA":
        env["LS_ROOT_CA"] = pki.ca_cert.read_text()
    else:
        env |= {"LS_USER_CERTIFICATE": pki.client_cert.read_text(), "LS_USER_KEY": pki.client_key.read_text()}
    config = ConnectionConfig.from_env(env)
    assert config.urls == ("https://a:3371", "https://b:3371", "http://c:3370", "https://d:4000")
    assert ConnectionConfig.from_env({k: v for k, v in env.items() if k != "LS_CONTROLLERS"}).urls == (
        "https://localhost:3371",
    )


def test_root_ca_replaces_the_system_cas(pki: Pki) -> None:
    context = ConnectionConfig.from_env({"LS_ROOT_CA": pki.ca_cert.read_text()}).ssl_context
    assert context is not None
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "linstor-names-test-ca"),),)]
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_root_ca_file_form(pki: Pki) -> None:
    context = ConnectionConfig.from_env({"LS_ROOT_CA_FILE": str(pki.ca_cert)}).ssl_context
    assert context is not None
    assert len(context.get_ca_certs()) == 1


def test_pem_text_wins_over_file_form(pki: Pki, tmp_path: Path) -> None:
    env = {"LS_ROOT_CA": pki.ca_cert.read_text(), "LS_ROOT_CA_FILE": str(tmp_path / "missing.pem")}
    assert ConnectionConfig.from_env(env).ssl_context is not None


def test_bad_root_ca(tmp_path: Path) -> None:
    with pytest.raises(ConnectionConfigError, match="LS_ROOT_CA: no valid PEM certificate"):
        ConnectionConfig.from_env({"LS_ROOT_CA": "not a certificate"})
    with pytest.raises(ConnectionConfigError, match="LS_ROOT_CA_FILE: cannot read"):
        ConnectionConfig.from_env({"LS_ROOT_CA_FILE": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize(
    "present",
    [("LS_USER_CERTIFICATE",), ("LS_USER_KEY",), ("LS_USER_CERTIFICATE_FILE",), ("LS_USER_KEY_FILE",)],
)
def test_certificate_and_key_come_together(pki: Pki, present: tuple[str, ...]) -> None:
    values = {
        "LS_USER_CERTIFICATE": pki.client_cert.read_text(),
        "LS_USER_KEY": pki.client_key.read_text(),
        "LS_USER_CERTIFICATE_FILE": str(pki.client_cert),
        "LS_USER_KEY_FILE": str(pki.client_key),
    }
    with pytest.raises(ConnectionConfigError, match="specify both or none"):
        ConnectionConfig.from_env({name: values[name] for name in present})


def test_mismatched_certificate_and_key(pki: Pki) -> None:
    env = {"LS_USER_CERTIFICATE": pki.client_cert.read_text(), "LS_USER_KEY": pki.server_key.read_text()}
    with pytest.raises(ConnectionConfigError, match="cannot load the client certificate/key"):
        ConnectionConfig.from_env(env)


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile at an empty directory of our own, to see what the config writes there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_client_key_is_loaded_from_private_temp_files_that_are_deleted(
    pki: Pki, private_tempdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        modes.extend(stat.S_IMODE(os.stat(p).st_mode) for p in (certfile, keyfile))
        assert Path(certfile).parent == private_tempdir
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    env = {"LS_USER_CERTIFICATE": pki.client_cert.read_text(), "LS_USER_KEY": pki.client_key.read_text()}
    config = ConnectionConfig.from_env(env)
    assert config.client_certificate
    assert modes == [0o600, 0o600]
    assert list(private_tempdir.iterdir()) == []


def test_temp_files_are_deleted_when_loading_fails(pki: Pki, private_tempdir: Path) -> None:
    env = {"LS_USER_CERTIFICATE": pki.client_cert.read_text(), "LS_USER_KEY": "garbage"}
    with pytest.raises(ConnectionConfigError):
        ConnectionConfig.from_env(env)
    assert list(private_tempdir.iterdir()) == []


# ---- TLS against a real HTTPS server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def https_url(pki: Pki) -> Iterator[str]:
    """An HTTPS server whose certificate is signed by the test CA; no client certificate needed."""
    with serve_https(pki) as url:
        yield url


@pytest.fixture(scope="module")
def mtls_url(pki: Pki) -> Iterator[str]:
    """An HTTPS server that requires a client certificate signed by the test CA."""
    with serve_https(pki, require_client_cert=True) as url:
        yield url


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


async def test_https_with_the_root_ca(pki: Pki, https_url: str) -> None:
    # No scheme: LS_ROOT_CA alone makes golinstor (and us) talk https on the given port.
    env = {"LS_CONTROLLERS": f"127.0.0.1:{_port(https_url)}", "LS_ROOT_CA": pki.ca_cert.read_text()}
    config = ConnectionConfig.from_env(env)
    assert config.urls == (https_url,)
    async with LinstorClient(config, retries=0) as client:
        assert (await client.controller_version()).version == "1.34.0"


async def test_https_without_the_root_ca_fails_verification(https_url: str) -> None:
    config = ConnectionConfig.from_env({"LS_CONTROLLERS": https_url})
    async with LinstorClient(config, retries=0) as client:
        with pytest.raises(LinstorUnavailable) as info:
            await client.controller_version()
    assert "CERTIFICATE_VERIFY_FAILED" in repr(info.value.__cause__)


async def test_https_checks_the_host_name(pki: Pki, https_url: str) -> None:
    """The server certificate names 127.0.0.1 and localhost, so another name for the same host fails."""
    env = {
        "LS_CONTROLLERS": f"linstor+ssl://127.0.0.2:{_port(https_url)}",
        "LS_ROOT_CA_FILE": str(pki.ca_cert),
    }
    async with LinstorClient(ConnectionConfig.from_env(env), retries=0) as client:
        with pytest.raises(LinstorUnavailable):
            await client.controller_version()


async def test_mtls_with_the_client_certificate(pki: Pki, mtls_url: str) -> None:
    env = {
        "LS_CONTROLLERS": f"linstor+ssl://127.0.0.1:{_port(mtls_url)}",
        "LS_ROOT_CA": pki.ca_cert.read_text(),
        "LS_USER_CERTIFICATE": pki.client_cert.read_text(),
        "LS_USER_KEY": pki.client_key.read_text(),
    }
    async with LinstorClient(ConnectionConfig.from_env(env), retries=0) as client:
        assert (await client.controller_version()).version == "1.34.0"


async def test_mtls_with_the_file_forms(pki: Pki, mtls_url: str) -> None:
    env = {
        "LS_CONTROLLERS": mtls_url,
        "LS_ROOT_CA_FILE": str(pki.ca_cert),
        "LS_USER_CERTIFICATE_FILE": str(pki.client_cert),
        "LS_USER_KEY_FILE": str(pki.client_key),
    }
    async with LinstorClient(ConnectionConfig.from_env(env), retries=0) as client:
        assert (await client.controller_version()).version == "1.34.0"


async def test_mtls_without_a_client_certificate_is_refused(pki: Pki, mtls_url: str) -> None:
    env = {"LS_CONTROLLERS": mtls_url, "LS_ROOT_CA": pki.ca_cert.read_text()}
    async with LinstorClient(ConnectionConfig.from_env(env), retries=0) as client:
        with pytest.raises(LinstorUnavailable):
            await client.controller_version()


def test_secrets_are_not_in_the_repr() -> None:
    config = ConnectionConfig(username="admin", password="s3cret", bearer_token="t0ken")
    assert "admin" in repr(config)
    assert "s3cret" not in repr(config)
    assert "t0ken" not in repr(config)
