"""LINSTOR connection settings, read from LS_* variables the way golinstor reads them.

Source: LINBIT/golinstor `client/client.go` (`NewClient`, `buildHttpClient`, `defaultScheme`, `defaultPort`,
`parseBaseURL`, `parseURLs`) and the golinstor TLS test that sets `RootCAFileEnv`/`UserCertFileEnv`/
`UserKeyFileEnv` (the `LS_*_FILE` forms, golinstor >= 0.63.0). What we copy from it:

* `LS_CONTROLLERS` is split at ",", each entry parsed on its own; unset or empty means
  `<default scheme>://localhost:<default port>`.
* An entry without "://" gets the default scheme; the scheme `linstor` *is* the default scheme. The default
  scheme is https as soon as any TLS variable (root CA, client certificate, client key) is set, else http
  (`defaultScheme()` checks `LS_ROOT_CA`, `LS_USER_CERTIFICATE`, `LS_USER_KEY`).
* Default ports: 3371 for https, 3370 otherwise (`defaultPort()`).
* A client certificate without its key (or the reverse) is an error ("specify both or none").
* A root CA replaces the system CAs (`tls.Config.RootCAs = pool`); without one the system CAs are used.
  Verification is never switched off.
* HTTP Basic is sent only when `LS_USERNAME` is non-empty; `LS_PASSWORD` may be empty.

Where we knowingly differ (each is a configuration golinstor accepts only by accident or rejects late):
`linstor+ssl://` is accepted as https (python-linstor does; golinstor passes the scheme through and then fails
on every request); empty entries in `LS_CONTROLLERS` are skipped (golinstor turns them into `localhost`);
IPv6 literals in brackets work (golinstor splits at every ":"); unknown schemes, paths, user info and bad
ports are rejected here, at start-up, instead of at the first request; a variable set to "" counts as unset.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HTTP_PORT = 3370
DEFAULT_HTTPS_PORT = 3371
DEFAULT_HOST = "localhost"

ENV_CONTROLLERS = "LS_CONTROLLERS"
ENV_USERNAME = "LS_USERNAME"
ENV_PASSWORD = "LS_PASSWORD"
ENV_USER_CERTIFICATE = "LS_USER_CERTIFICATE"
ENV_USER_KEY = "LS_USER_KEY"
ENV_ROOT_CA = "LS_ROOT_CA"
ENV_BEARER_TOKEN_FILE = "LS_BEARER_TOKEN_FILE"
FILE_SUFFIX = "_FILE"

_SCHEMES = {"http": "http", "https": "https", "linstor+ssl": "https"}


class ConnectionConfigError(ValueError):
    """An LS_* variable has a value that cannot be used."""


@dataclass(frozen=True)
class TlsMaterial:
    """PEM texts of the root CA and the client certificate/key, wherever they came from."""

    root_ca: str | None = None
    certificate: str | None = None
    key: str | None = None

    @property
    def configured(self) -> bool:
        """True when any TLS variable is set: golinstor then defaults to https."""
        return any((self.root_ca, self.certificate, self.key))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TlsMaterial:
        """Read LS_ROOT_CA, LS_USER_CERTIFICATE, LS_USER_KEY (PEM) or their *_FILE forms (paths)."""
        material = cls(
            root_ca=_pem_or_file(env, ENV_ROOT_CA),
            certificate=_pem_or_file(env, ENV_USER_CERTIFICATE),
            key=_pem_or_file(env, ENV_USER_KEY),
        )
        if (material.certificate is None) != (material.key is None):
            raise ConnectionConfigError(
                f"{ENV_USER_CERTIFICATE}, {ENV_USER_KEY}: specify both or none "
                f"(a client certificate needs its private key and vice versa; the *{FILE_SUFFIX} forms count)"
            )
        return material


@dataclass(frozen=True)
class ConnectionConfig:
    """Where and how to reach the LINSTOR controller(s)."""

    urls: tuple[str, ...] = (f"http://{DEFAULT_HOST}:{DEFAULT_HTTP_PORT}",)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # secrets stay out of logs
    bearer_token: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    client_certificate: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionConfig:
        """Parse LS_CONTROLLERS, LS_USERNAME/LS_PASSWORD, LS_BEARER_TOKEN_FILE and the TLS variables."""
        tls = TlsMaterial.from_env(env)
        default_scheme = "https" if tls.configured else "http"
        urls = parse_controllers(env.get(ENV_CONTROLLERS, ""), default_scheme=default_scheme)
        username = env.get(ENV_USERNAME) or None
        ssl_context = None
        if tls.configured or any(u.startswith("https://") for u in urls):
            ssl_context = build_ssl_context(tls)
        return cls(
            urls=urls,
            username=username,
            password=env.get(ENV_PASSWORD, "") if username else None,
            bearer_token=_bearer_token(env),
            ssl_context=ssl_context,
            client_certificate=tls.certificate is not None,
        )


def parse_controllers(value: str, *, default_scheme: str = "http") -> tuple[str, ...]:
    """LS_CONTROLLERS as base URLs; empty or unset means the default controller on localhost."""
    urls = tuple(parse_controller(c, default_scheme=default_scheme) for c in value.split(",") if c.strip())
    return urls or (parse_controller(DEFAULT_HOST, default_scheme=default_scheme),)


def parse_controller(value: str, *, default_scheme: str = "http") -> str:
    """One LS_CONTROLLERS entry as a base URL such as `https://[fd00::1]:3371`."""
    entry = value.strip()
    scheme, sep, rest = entry.partition("://")
    if not sep:
        scheme, rest = default_scheme, entry
    scheme = scheme.lower()
    if scheme == "linstor":
        scheme = default_scheme
    elif scheme in _SCHEMES:
        scheme = _SCHEMES[scheme]
    else:
        raise ConnectionConfigError(
            f"{ENV_CONTROLLERS}: unknown scheme {scheme!r} in {entry!r}; "
            "use linstor://, linstor+ssl://, http://, https:// or no scheme"
        )
    authority = rest[:-1] if rest.endswith("/") else rest
    if "/" in authority or "?" in authority or "#" in authority:
        raise ConnectionConfigError(
            f"{ENV_CONTROLLERS}: {entry!r} has a path; give only [scheme://]host[:port]"
        )
    if "@" in authority:
        raise ConnectionConfigError(
            f"{ENV_CONTROLLERS}: {entry!r} has user info; use LS_USERNAME/LS_PASSWORD"
        )
    host, port = _split_host_port(authority, entry)
    if port is None:
        port = DEFAULT_HTTPS_PORT if scheme == "https" else DEFAULT_HTTP_PORT
    return f"{scheme}://{host}:{port}"


def _split_host_port(authority: str, entry: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ConnectionConfigError(f"{ENV_CONTROLLERS}: unclosed '[' in {entry!r}")
        host, tail = authority[: end + 1], authority[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ConnectionConfigError(
                f"{ENV_CONTROLLERS}: unexpected {tail!r} after the address in {entry!r}"
            )
        port_text = tail[1:] if tail else None
    elif authority.count(":") > 1:
        raise ConnectionConfigError(
            f"{ENV_CONTROLLERS}: {entry!r} is an IPv6 address? Put it in brackets: [fd00::1]:3370"
        )
    else:
        host, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host or host == "[]":
        raise ConnectionConfigError(f"{ENV_CONTROLLERS}: no host in {entry!r}")
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ConnectionConfigError(f"{ENV_CONTROLLERS}: invalid port {port_text!r} in {entry!r}")
    return host, int(port_text)


def _pem_or_file(env: Mapping[str, str], name: str) -> str | None:
    # The PEM text wins over the *_FILE path: deployments that bridge the file into the variable
    # (for golinstor < 0.63.0) set both, with the same content.
    pem = env.get(name)
    if pem:
        return pem
    path = env.get(name + FILE_SUFFIX)
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConnectionConfigError(
            f"{name}{FILE_SUFFIX}: cannot read {path!r}: {exc.strerror or exc}"
        ) from exc


def _bearer_token(env: Mapping[str, str]) -> str | None:
    path = env.get(ENV_BEARER_TOKEN_FILE)
    if not path:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConnectionConfigError(
            f"{ENV_BEARER_TOKEN_FILE}: cannot read {path!r}: {exc.strerror or exc}"
        ) from exc
    if not token:
        raise ConnectionConfigError(f"{ENV_BEARER_TOKEN_FILE}: {path!r} is empty")
    return token


def build_ssl_context(tls: TlsMaterial) -> ssl.SSLContext:
    """One client SSLContext: server verification always on, optional own CA and client certificate."""
    try:
        # With cadata the context trusts only that CA (no system CAs), as golinstor's RootCAs pool does.
        context = ssl.create_default_context(cadata=tls.root_ca)
    except (ssl.SSLError, ValueError) as exc:
        raise ConnectionConfigError(f"{ENV_ROOT_CA}: no valid PEM certificate: {exc}") from exc
    if tls.certificate is not None and tls.key is not None:
        # ssl can load a certificate chain only from files: write private temporary copies, load, delete.
        with _private_file(tls.certificate) as cert_path, _private_file(tls.key) as key_path:
            try:
                context.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                raise ConnectionConfigError(
                    f"{ENV_USER_CERTIFICATE}/{ENV_USER_KEY}: cannot load the client certificate/key: {exc}"
                ) from exc
    return context


@contextlib.contextmanager
def _private_file(content: str) -> Iterator[str]:
    fd, path = tempfile.mkstemp(prefix="linstor-names-", suffix=".pem")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
