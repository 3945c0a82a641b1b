"""LINSTOR connection settings, read from LS_* variables the way golinstor reads them."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_HTTP_PORT = 3370
DEFAULT_HTTPS_PORT = 3371


class ConnectionConfigError(ValueError):
    """An LS_* variable has a value that cannot be used."""


@dataclass(frozen=True)
class ConnectionConfig:
    """Where and how to reach the LINSTOR controller(s)."""

    urls: tuple[str, ...] = (f"http://localhost:{DEFAULT_HTTP_PORT}",)
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionConfig:
        """Parse LS_CONTROLLERS and friends (placeholder: replaced by the full golinstor parsing)."""
        raw = env.get("LS_CONTROLLERS", "")
        urls = tuple(parse_controller(c) for c in raw.split(",") if c.strip()) or cls.urls
        return cls(urls=urls)


def parse_controller(value: str) -> str:
    """One LS_CONTROLLERS entry as a base URL."""
    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "linstor", value
    scheme = {"linstor": "http", "linstor+ssl": "https"}.get(scheme, scheme)
    if scheme not in ("http", "https"):
        raise ConnectionConfigError(f"LS_CONTROLLERS: unknown scheme in {value!r}")
    host = rest.rstrip("/")
    if ":" not in host.rsplit("]", 1)[-1]:
        host = f"{host}:{DEFAULT_HTTPS_PORT if scheme == 'https' else DEFAULT_HTTP_PORT}"
    return f"{scheme}://{host}"
