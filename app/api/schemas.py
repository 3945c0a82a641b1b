"""API schemas (kept apart from the cache's table models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ByteSize, ConfigDict, Field

from app.identity import ContentType, SnapshotInfo, VolumeRecord, VolumeType
from app.identity import Pool as DomainPool

_forbid = ConfigDict(extra="forbid")


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
    project: str = "default"
    size: ByteSize | None = Field(
        None,
        description="Bytes, or a string with a unit such as '10GiB' or '500MB'. Required unless copying.",
    )
    description: str | None = Field(None, max_length=4096)
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
        k = record.key
        return cls(
            pool=k.pool,
            project=k.project,
            type=k.type,
            name=k.name,
            content_type=record.content_type,
            description=record.description,
            linstor_name=record.rd_name,
            volumes=[
                VolumePart(number=i, size_bytes=s * 1024) for i, s in enumerate(record.volume_sizes_kib)
            ],
            snapshots=sorted(record.snapshots),
        )


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


class SnapshotCreate(BaseModel):
    """POST …/snapshots."""

    model_config = _forbid
    name: str


class SnapshotRename(BaseModel):
    """PATCH …/snapshots/{snapshot}."""

    model_config = _forbid
    name: str


class SnapshotRestore(BaseModel):
    """POST …/snapshots/{snapshot}/restore."""

    model_config = _forbid
    delete_newer_snapshots: bool = Field(
        False,
        description="Delete the snapshots newer than this one first (LINSTOR only restores the latest).",
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


class RebuildReport(BaseModel):
    """POST /v1/cache/rebuild."""

    volumes: int
    duration_seconds: float
