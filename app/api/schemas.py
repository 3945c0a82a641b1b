"""API schemas (kept apart from the cache's table models)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ByteSize, ConfigDict, Field, WithJsonSchema

from app.errors import InvalidInput
from app.identity import ContentType, SnapshotInfo, VolumeRecord, VolumeType
from app.identity import Pool as DomainPool
from app.naming import MAX_VOLUME_BYTES, validate_description, whole

_forbid = ConfigDict(extra="forbid")

# A number and a unit (any of pydantic's ByteSize, in any case); the sign is read, so that "-5" is refused as
# negative rather than as unreadable, and documented as refused (SIZE_STRING_RE)
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_SIZE_RE = re.compile(rf"\s*([-+]?)({_NUMBER})\s*([A-Za-z]*)\s*")
_ANY_CASE_UNIT = "|".join(
    "".join(f"[{c.lower()}{c.upper()}]" for c in unit) for unit in sorted(ByteSize.byte_sizes, key=len)[::-1]
)
MAX_SIZE_STRING = 64
SIZE_STRING_RE = whole(rf"\s*\+?(?:{_NUMBER})\s*(?:{_ANY_CASE_UNIT})?\s*", 1, MAX_SIZE_STRING)
_UNITS = "B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB or EiB"


def _size_bytes(value: object) -> object:
    """Bytes from an integer or a string with a unit ('10GiB', '500MB', '1.5TB'), as ByteSize reads them."""
    # errors are the domain's 422 invalid_size, which pydantic lets through (it collects only ValueErrors), so
    # that a size has one code whatever is wrong; the range is the domain's (app/builds.py, round_size_kib)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():  # JSON's 870.0 is the integer 870 (JSON Schema too)
        return int(value)
    if not isinstance(value, str):
        raise InvalidInput(
            "invalid_size", f"size must be a whole number of bytes or a string, not {value!r:.64}"
        )
    # no size needs more; and reading thousands of digits costs the event loop a tenth of a second
    if len(value) > MAX_SIZE_STRING:
        raise InvalidInput(
            "invalid_size", f"size {value[:64]!r}... is longer than any size ({MAX_SIZE_STRING} characters)"
        )
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        raise InvalidInput(
            "invalid_size", f"size {value[:64]!r} is not a number with an optional unit, such as '10GiB'"
        )
    sign, number, unit = match.groups()
    multiplier = ByteSize.byte_sizes.get(unit.lower() or "b")
    if multiplier is None:
        raise InvalidInput("invalid_size", f"size {value[:64]!r} has an unknown unit {unit!r}: use {_UNITS}")
    # exact arithmetic: a float loses bytes past 2**53
    size = int(Fraction(Decimal(number)) * Fraction(multiplier))
    return -size if sign == "-" else size


def _description(value: str) -> str:
    validate_description(value)
    return value


Size = Annotated[
    int,
    BeforeValidator(_size_bytes),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_VOLUME_BYTES},
                {
                    "type": "string",
                    "minLength": SIZE_STRING_RE.low,
                    "maxLength": SIZE_STRING_RE.high,
                    "pattern": SIZE_STRING_RE.pattern,
                    "examples": ["10GiB", "500MB"],
                },
            ]
        }
    ),
]
# the rule's schema is a component (app/api/inputs.py)
Description = Annotated[str, AfterValidator(_description)]


class VolumeSource(BaseModel):
    """The volume (or snapshot) a new volume is copied from."""

    model_config = _forbid
    type: VolumeType
    name: str
    project: str | None = Field(None, description="Defaults to the new volume's project.")
    pool: str | None = Field(None, description="Defaults to the new volume's pool.")
    snapshot: str | None = Field(None, description="Copy from this snapshot of the source instead.")


class VolumeCreate(BaseModel):
    """POST /v1/pools/{pool}/volumes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "c1", "type": "container", "content_type": "filesystem", "size": "10GiB"},
                {"name": "c2", "type": "container", "source": {"type": "container", "name": "c1"}},
            ]
        },
    )
    name: str
    type: VolumeType
    content_type: ContentType | None = Field(
        None,
        description="Defaults to block for virtual-machine, filesystem otherwise; a copy keeps its source's.",
    )
    project: str = Field(
        "default",
        description="Incus's project rules (no slashes, spaces, underscores or quotes), no control "
        "characters, at most 255 characters.",
    )
    size: Size | None = Field(
        None,
        description="Bytes, or a string with a unit such as '10GiB' or '500MB'; at most 1 PiB (LINSTOR's "
        "maximum volume size). Required unless copying.",
    )
    description: Description | None = Field(
        None, description="One line (no control characters) of at most 4096 UTF-16 code units."
    )
    source: VolumeSource | None = None


class VolumeRename(BaseModel):
    """PATCH /v1/pools/{pool}/volumes/{type}/{name}."""

    model_config = _forbid
    name: str


class VolumePart(BaseModel):
    """One LINSTOR volume definition of a volume (a VM has two: 0 block, 1 filesystem)."""

    number: int
    size_bytes: int


class Volume(BaseModel):
    """A volume and where it lives in LINSTOR."""

    pool: str
    project: str
    type: VolumeType
    name: str
    content_type: ContentType
    description: str | None = None
    linstor_name: Annotated[str, Field(description="The LINSTOR resource definition name.")]
    volumes: list[VolumePart]
    snapshots: list[str] = Field(description="Incus names of the volume's snapshots.")

    @classmethod
    def of(cls, record: VolumeRecord) -> Volume:
        """The API view of a record."""
        return cls.model_validate(volume_view(record))


def volume_view(record: VolumeRecord) -> dict[str, Any]:
    """A record as the JSON object of a `Volume`: the lookup routes answer it without a validation pass
    (tests/api/test_volumes.py checks it stays what `Volume` itself serializes)."""
    k = record.key
    return {
        "pool": k.pool,
        "project": k.project,
        "type": k.type.value,
        "name": k.name,
        "content_type": record.content_type.value,
        "description": record.description,
        "linstor_name": record.rd_name,
        "volumes": [{"number": i, "size_bytes": s * 1024} for i, s in enumerate(record.volume_sizes_kib)],
        "snapshots": sorted(record.snapshots),
    }


class VolumeList(BaseModel):
    """A list of volumes."""

    volumes: list[Volume]


class Pool(BaseModel):
    """A pool: a LINSTOR resource group."""

    name: str
    description: str | None = None
    place_count: int | None = None
    storage_pools: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, pool: DomainPool) -> Pool:
        """The API view of a pool."""
        return cls(
            name=pool.name,
            description=pool.description,
            place_count=pool.place_count,
            storage_pools=list(pool.storage_pools),
        )


class PoolList(BaseModel):
    """The pools."""

    pools: list[Pool]


class Resolution(BaseModel):
    """What a LINSTOR name stands for."""

    linstor_name: str
    kind: Annotated[str, Field(description="resource-definition or snapshot")]
    volume: Volume
    snapshot: str | None = Field(None, description="The Incus snapshot name, for a LINSTOR snapshot name.")


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable `code`."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None


# Enforced by the domain (naming.validate_snapshot_name) with its own code, invalid_name; documented as the
# component SnapshotName (app/api/inputs.py)
SnapshotName = str


class SnapshotCreate(BaseModel):
    """POST …/snapshots."""

    model_config = _forbid
    name: SnapshotName


class SnapshotRename(BaseModel):
    """PATCH …/snapshots/{snapshot}."""

    model_config = _forbid
    name: SnapshotName


# A flag that destroys data: JSON's true or false only, never 0, 1 or "yes" coerced (422 invalid_request)
DestructiveFlag = Annotated[bool, Field(strict=True)]


class SnapshotRestore(BaseModel):
    """POST …/snapshots/{snapshot}/restore."""

    model_config = _forbid
    delete_newer_snapshots: DestructiveFlag = Field(
        False,
        description="Delete the snapshots newer than this one first (LINSTOR only restores the latest). "
        "Strictly `true` or `false`.",
    )


class SnapshotOut(BaseModel):
    """A snapshot of a volume and what LINSTOR reports of it."""

    name: str
    linstor_name: str
    created_on: datetime | None = None
    nodes: list[str]
    volumes: list[VolumePart]
    flags: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, snap: SnapshotInfo) -> SnapshotOut:
        """The API view of a mapped snapshot."""
        created = snap.created_on_ms
        return cls(
            name=snap.name,
            linstor_name=snap.linstor_name,
            created_on=datetime.fromtimestamp(created / 1000, tz=UTC) if created is not None else None,
            nodes=list(snap.nodes),
            volumes=[
                VolumePart(number=number, size_bytes=size * 1024)
                for number, size in enumerate(snap.volume_sizes_kib)
            ],
            flags=list(snap.flags),
        )


class SnapshotList(BaseModel):
    """The snapshots of a volume, oldest first."""

    snapshots: list[SnapshotOut]


class RestoreResult(BaseModel):
    """The outcome of a restore."""

    restored: str
    deleted_snapshots: list[str]


class CacheReport(BaseModel):
    """GET /v1/cache."""

    enabled: bool
    mode: str
    backend: str | None = None
    volumes: int = 0
    snapshots: int = 0
    last_sync: datetime | None = None
    age_seconds: float | None = Field(None, description="Seconds since the last full sync.")
    resync_interval_seconds: float
    hits: int
    misses: int
    warm: bool = Field(
        False, description="A full sync of this replica succeeded; until then lists ask LINSTOR."
    )
    rebuilding: bool = Field(False, description="A rebuild runs; lists ask LINSTOR meanwhile.")
    last_error: str | None = Field(
        None, description="Why the latest full sync failed; null once one succeeds."
    )
    last_error_at: datetime | None = Field(None, description="When the latest full sync failed.")
    failing_since: datetime | None = Field(
        None, description="When the full syncs started failing (the first of the failures in a row)."
    )


class RebuildReport(BaseModel):
    """POST /v1/cache/rebuild."""

    volumes: int
    duration_seconds: float
