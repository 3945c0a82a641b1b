"""A throwaway PKI (CA, server and client certificates made with the openssl CLI) and an HTTPS test server."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import serve

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Pki:
    """PEM files of one CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(directory: Path, name: str, extensions: str) -> None:
    """A P-256 key and a certificate for it, signed by the CA in `directory`."""
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=linstor-names-test-{name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    """Create the CA and sign a server and a client certificate with it."""
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=linstor-names-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _issue(directory, "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _issue(directory, "client", "extendedKeyUsage=clientAuth\n")
    return Pki(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


async def version_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI app that answers every request like GET /v1/controller/version."""
    body = b'{"version":"1.34.0","git_hash":"test","build_time":"now","rest_api_version":"1.28.0"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve_https(pki: Pki, *, require_client_cert: bool = False, app: Any = version_app) -> Iterator[str]:
    """Run `app` (default `version_app`) under uvicorn with TLS on 127.0.0.1; yields its https base URL."""
    with serve(
        app,
        log_level="critical",
        lifespan="off",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        ssl_ca_certs=str(pki.ca_cert) if require_client_cert else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE,
    ) as url:
        yield url
