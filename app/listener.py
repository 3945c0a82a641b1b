"""The service's own listener: uvicorn's options for `serve` and `dev`, HTTPS included.

The TLS files are loaded once here, before uvicorn starts, the way uvicorn loads them
(`uvicorn.config.create_ssl_context`: a TLS server context, `load_cert_chain`, `load_verify_locations`). A
missing file, a key that does not match its certificate or a wrong password then stops the start with one
line that names the setting, rather than uvicorn's traceback. An encrypted key is loaded with the configured
password or an empty one, never without: OpenSSL would otherwise ask for it on the terminal.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from app.settings import Settings

# in-flight requests get this long on SIGTERM, inside the 60 s of systemd and Kubernetes
GRACEFUL_SHUTDOWN_S = 30

CERT = "LINSTOR_NAMES_TLS_CERT_FILE"
KEY = "LINSTOR_NAMES_TLS_KEY_FILE"
PASSWORD = "LINSTOR_NAMES_TLS_KEY_PASSWORD"
CLIENT_CA = "LINSTOR_NAMES_TLS_CLIENT_CA_FILE"


class ListenerError(ValueError):
    """The listener's settings cannot be used; the message is one line for the operator."""


def listener_options(settings: Settings, log_level: str) -> dict[str, Any]:
    """uvicorn's options for the service, TLS included (checked here); host and port are the caller's."""
    return {
        "access_log": False,
        "log_level": log_level,
        "log_config": None,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        **tls_options(settings),
    }


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's ssl_* options from the TLS settings, loaded once to check them; empty without TLS."""
    cert, key, client_ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    password = settings.tls_key_password.get_secret_value() if settings.tls_key_password else None
    if cert is None and key is None:
        # a client CA without TLS would serve plain HTTP to clients the operator meant to check
        extra = [name for name, value in ((PASSWORD, password), (CLIENT_CA, client_ca)) if value is not None]
        if extra:
            raise ListenerError(f"{', '.join(extra)}: set only with {CERT} and {KEY}, else HTTP is served")
        return {}
    if cert is None or key is None:
        raise ListenerError(
            f"{CERT}, {KEY}: specify both or none (the service's certificate needs its private key)"
        )
    _load(cert, key, password, client_ca)
    options: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if password is not None:
        options["ssl_keyfile_password"] = password
    if client_ca is not None:
        options |= {"ssl_ca_certs": str(client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def _load(cert: Path, key: Path, password: str | None, client_ca: Path | None) -> None:
    """Load the files as uvicorn will, or raise ListenerError saying which setting is wrong and why."""
    cert_pem, key_pem = _read(CERT, cert), _read(KEY, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, lambda: password or "")
    except ssl.SSLError as exc:
        # OpenSSL says "PEM lib" for most of these: find out which file it was
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ListenerError(f"{KEY}: {key} is not the key of the certificate in {CERT} ({cert})") from exc
        if not _holds_certificate(cert_pem):
            raise ListenerError(f"{CERT}: {cert} holds no PEM certificate") from exc
        if "ENCRYPTED" in key_pem:
            raise ListenerError(f"{KEY}: cannot decrypt {key}: wrong or missing {PASSWORD}") from exc
        raise ListenerError(f"{KEY}: {key} holds no PEM private key") from exc
    if client_ca is not None:
        if not _holds_certificate(_read(CLIENT_CA, client_ca)):
            raise ListenerError(f"{CLIENT_CA}: {client_ca} holds no PEM certificate")


def _read(name: str, path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise ListenerError(f"{name}: cannot read {path}: {exc.strerror or exc}") from exc


def _holds_certificate(pem: str) -> bool:
    # parsing as trusted CAs is the one way ssl offers to parse a certificate without its key
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        return False
    return True
