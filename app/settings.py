"""The service's settings: one validated object, built at start-up and passed in."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.cache.sync import PAGE_SIZE
from app.logs import LogFormat

# LINSTOR names are at most 48 characters, start with a letter or '_' and go on with [A-Za-z0-9_-];
# the random part is 32 hex characters, so a prefix has at most 16 (incus-linstor-driver.md §1.3).
PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,15}$")
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_prefix(value: str) -> str:
    if not PREFIX_RE.fullmatch(value):
        raise ValueError(
            f"volume prefix {value!r} is invalid: it must match {PREFIX_RE.pattern} "
            "(at most 16 characters, so that prefix + 32 hex characters is a valid LINSTOR name)"
        )
    return value


def _check_namespace(value: str) -> str:
    if not NAMESPACE_RE.fullmatch(value):
        raise ValueError(f"property namespace {value!r} is invalid: it must match {NAMESPACE_RE.pattern}")
    return value


class CacheMode(StrEnum):
    """How cache hits are served."""

    VERIFY = "verify"
    TRUST = "trust"
    OFF = "off"


class Settings(BaseSettings):
    """Settings of linstor-names, read from LINSTOR_NAMES_* variables (the LINSTOR connection: LS_*)."""

    model_config = SettingsConfigDict(env_prefix="LINSTOR_NAMES_", extra="ignore", frozen=True)

    volume_prefix: Annotated[str, AfterValidator(_check_prefix)] = "incus-volume-"
    property_namespace: Annotated[str, AfterValidator(_check_namespace)] = "Incus"
    staging_resource_group: str = Field(
        "linstor-names-staging",
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]{1,47}$",
        description="Resource group that holds snapshot restores until their identity is rewritten.",
    )
    vm_filesystem_size: int = Field(500 * 1024 * 1024, gt=0, description="Bytes of a VM's filesystem volume.")
    clone_timeout: float = Field(300.0, gt=0, description="Seconds to wait for a LINSTOR clone.")
    clone_poll_interval: float = Field(0.5, gt=0)
    # the largest legitimate body, a create with a 4096-character description, stays under 25 KiB even with
    # every character \u-escaped (6 bytes each)
    max_body_bytes: int = Field(
        64 * 1024, gt=0, description="Largest request body accepted; larger ones are answered 413."
    )
    claim_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds after which an identity claim whose holder never released it (a crash, or an "
        "operation whose outcome LINSTOR left unknown) may be taken over.",
    )

    cache_url: str = "sqlite:///linstor-names-cache.db"
    cache_mode: CacheMode = CacheMode.VERIFY
    cache_resync_interval: float = Field(60.0, gt=0, description="Seconds between full resyncs.")
    cache_sync_page_size: int = Field(
        PAGE_SIZE,
        ge=0,
        description="RDs per page of a full sync's listing; 0 lists them in one GET (app/cache/sync.py).",
    )

    linstor_connect_timeout: float = Field(5.0, gt=0)
    linstor_read_timeout: float = Field(30.0, gt=0, description="Reads (GET).")
    linstor_write_timeout: float = Field(300.0, gt=0, description="Mutations block on satellites.")
    linstor_retries: int = Field(3, ge=0, description="Retries of idempotent calls on operational errors.")
    linstor_max_connections: int = Field(32, ge=1)
    linstor_read_deadline: float = Field(
        5.0,
        gt=0,
        description="Seconds a request that only reads may spend on LINSTOR in all (retries included), and "
        "any single read; 503/504 with Retry-After past it.",
    )
    linstor_write_deadline: float = Field(
        600.0,
        gt=0,
        description="Seconds a request that writes may spend on LINSTOR in all, from its start; a copy's "
        "wait for its clone is part of it.",
    )
    readiness_deadline: float = Field(
        1.0, gt=0, description="Seconds /readyz waits for LINSTOR and for the cache before it says why not."
    )
    repair_grace: float = Field(
        600.0,
        ge=0,
        description="Seconds after its start an unfinished operation (or an unmapped snapshot) is left alone "
        "by the repair; keep it above linstor_write_deadline, the longest an operation can run.",
    )
    repair_interval: float = Field(
        0.0, ge=0, description="Seconds between repair passes that apply (one at start-up); 0: none."
    )
    idempotency_expiry: float = Field(
        24 * 3600.0,
        gt=0,
        description="Seconds an Idempotency-Key's final answer is replayed, from when it was given; the key "
        "is then forgotten (expired keys are purged as requests come).",
    )
    tokens: str | None = Field(
        None,
        description="API token lines `name:scopes:hash` (linstor-names token create), separated by newlines "
        "or ';'. With no token here nor in tokens_file, authentication is off (serve: loopback only).",
    )
    tokens_file: Path | None = Field(None, description="A file of API token lines, one a line (# comments).")
    allow_unauthenticated: bool = Field(
        False,
        description="Let serve listen on a non-loopback address without tokens (anyone may change all).",
    )
    log_format: LogFormat | None = Field(
        None, description="Log lines as `json` or `text` (default: json for serve, text for dev)."
    )
    otel: bool = Field(
        False,
        description="FastAPI's own OpenTelemetry spans, metrics and logs, sent to the globally configured "
        "providers (opentelemetry-instrument); off, no request pays FastAPI's look for them.",
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) of the service's own listener: serve and dev answer HTTPS."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file; both or neither.")
    tls_key_password: SecretStr | None = Field(None, description="Password of an encrypted tls_key_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA(s): clients must then present a certificate signed by one of them (mTLS)."
    )

    @model_validator(mode="after")
    def _deadlines_fit(self) -> Self:
        # a copy waits up to clone_timeout inside its request: a shorter deadline would cut every slow clone
        if self.linstor_write_deadline <= self.clone_timeout:
            raise ValueError(
                f"linstor_write_deadline ({self.linstor_write_deadline:g}s) must be longer than "
                f"clone_timeout ({self.clone_timeout:g}s): a copy's wait for its clone counts against it"
            )
        return self

    @property
    def cache_enabled(self) -> bool:
        """Whether a cache database is configured and used."""
        return self.cache_url.lower() != "none" and self.cache_mode is not CacheMode.OFF
