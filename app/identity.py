"""The identity of a volume as the service sees it, and the record of where it lives in LINSTOR."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class VolumeType(StrEnum):
    """Volume types in Incus's API words; `linstor` gives the word stored in Aux/<ns>/type."""

    CONTAINER = "container"
    VIRTUAL_MACHINE = "virtual-machine"
    IMAGE = "image"
    CUSTOM = "custom"

    @property
    def linstor(self) -> str:
        """The value Incus stores in Aux/Incus/type (its VolumeType constants)."""
        return _TO_LINSTOR[self]

    @classmethod
    def from_linstor(cls, value: str) -> VolumeType | None:
        """The API type for a stored Aux/Incus/type value, or None when it is not one of Incus's."""
        return _FROM_LINSTOR.get(value)


_TO_LINSTOR = {
    VolumeType.CONTAINER: "containers",
    VolumeType.VIRTUAL_MACHINE: "virtual-machines",
    VolumeType.IMAGE: "images",
    VolumeType.CUSTOM: "custom",
}
_FROM_LINSTOR = {v: k for k, v in _TO_LINSTOR.items()}


class ContentType(StrEnum):
    """Content types as Incus stores them in Aux/Incus/content-type."""

    FILESYSTEM = "filesystem"
    BLOCK = "block"
    ISO = "iso"


@dataclass(frozen=True, slots=True)
class VolumeKey:
    """What identifies a volume: pool (resource group), project, type and name."""

    pool: str
    project: str
    type: VolumeType
    name: str


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """A volume as resolved from one resource definition's properties."""

    key: VolumeKey
    rd_name: str
    content_type: ContentType
    description: str | None = None
    # sizes of the volume definitions, by volume number (a VM has two: 0 block, 1 filesystem)
    volume_sizes_kib: tuple[int, ...] = ()
    # Incus snapshot name -> LINSTOR snapshot name (Aux/<ns>/snapshot-name/<name>)
    snapshots: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool: the LINSTOR resource group volumes are placed by."""

    name: str
    description: str | None = None
    place_count: int | None = None
    storage_pools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A mapped snapshot: its Incus name and what LINSTOR reports of it."""

    name: str
    linstor_name: str
    created_on_ms: int | None = None
    nodes: tuple[str, ...] = ()
    volume_sizes_kib: tuple[int, ...] = ()
    flags: tuple[str, ...] = ()
