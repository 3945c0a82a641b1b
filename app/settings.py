"""The service's settings: one validated object, built at start-up and passed in."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    cache_url: str = "sqlite:///linstor-names-cache.db"
    cache_mode: CacheMode = CacheMode.VERIFY
    cache_resync_interval: float = Field(60.0, gt=0, description="Seconds between full resyncs.")

    linstor_connect_timeout: float = Field(5.0, gt=0)
    linstor_read_timeout: float = Field(30.0, gt=0, description="Reads (GET).")
    linstor_write_timeout: float = Field(300.0, gt=0, description="Mutations block on satellites.")
    linstor_retries: int = Field(3, ge=0, description="Retries of idempotent calls on operational errors.")
    linstor_max_connections: int = Field(32, ge=1)

    @property
    def cache_enabled(self) -> bool:
        """Whether a cache database is configured and used."""
        return self.cache_url.lower() != "none" and self.cache_mode is not CacheMode.OFF
