"""What a create or copy request asks for, and the validated identity of a volume."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidInput
from app.identity import ContentType, VolumeKey, VolumeType
from app.naming import DEFAULT_PROJECT, validate_project, validate_volume_name


@dataclass(frozen=True)
class SourceSpec:
    """Where a copy comes from: a volume, or one of its snapshots."""

    type: VolumeType
    name: str
    project: str | None = None
    pool: str | None = None
    snapshot: str | None = None


@dataclass(frozen=True)
class CreateSpec:
    """A create or copy request, as the API received it."""

    name: str
    type: VolumeType
    content_type: ContentType | None = None
    project: str = DEFAULT_PROJECT
    size_bytes: int | None = None
    description: str | None = None
    source: SourceSpec | None = None


def make_key(pool: str, project: str, vtype: VolumeType, name: str) -> VolumeKey:
    """A validated volume identity."""
    validate_project(project)
    validate_volume_name(vtype, name)
    if vtype is VolumeType.IMAGE and project != DEFAULT_PROJECT:
        raise InvalidInput(
            "invalid_project", "Image volumes always belong to project 'default' (as in Incus)"
        )
    return VolumeKey(pool=pool, project=project, type=vtype, name=name)


def source_key(target: VolumeKey, source: SourceSpec) -> VolumeKey:
    """The source's identity; pool and project default to the target's."""
    return make_key(source.pool or target.pool, source.project or target.project, source.type, source.name)
