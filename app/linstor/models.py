"""Typed models of the LINSTOR REST API v1 objects the service uses (SPEC: rest_v1_openapi.yaml).

LINSTOR omits empty maps, lists and nulls (linstor-rest-api.md §1.2), so every collection has a default.
Request bodies are dumped with exclude_none: LINSTOR rejects unknown fields and some explicit nulls (§1.3).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ApiCallRc(_Model):
    """One entry of an ApiCallRc list."""

    ret_code: int
    message: str = ""
    cause: str | None = None
    details: str | None = None
    correction: str | None = None
    error_report_ids: list[str] = Field(default_factory=list)
    obj_refs: dict[str, str] = Field(default_factory=dict)
    created_at: str | None = None


class ControllerVersion(_Model):
    """GET /v1/controller/version."""

    version: str
    git_hash: str = ""
    build_time: str = ""
    rest_api_version: str = ""


class AutoSelectFilter(_Model):
    """Placement rules of a resource group or an autoplace request."""

    place_count: int | None = None
    storage_pool: str | None = None
    storage_pool_list: list[str] | None = None
    layer_stack: list[str] | None = None
    provider_list: list[str] | None = None
    diskless_on_remaining: bool | None = None


class ResourceGroup(_Model):
    """A resource group (an Incus storage pool)."""

    name: str
    description: str | None = None
    props: dict[str, str] = Field(default_factory=dict)
    select_filter: AutoSelectFilter = Field(default_factory=AutoSelectFilter)
    uuid: str | None = None


class VolumeDefinition(_Model):
    """A volume definition of a resource definition."""

    volume_number: int = 0
    size_kib: int
    props: dict[str, str] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    uuid: str | None = None


class ResourceDefinition(_Model):
    """A resource definition (an Incus volume)."""

    name: str
    external_name: str | None = None
    props: dict[str, str] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    uuid: str | None = None
    resource_group_name: str = "DfltRscGrp"
    volume_definitions: list[VolumeDefinition] = Field(default_factory=list)


class ResourceState(_Model):
    """Runtime state of a resource."""

    in_use: bool | None = None


class Resource(_Model):
    """A resource: a resource definition deployed on one node."""

    name: str
    node_name: str
    props: dict[str, str] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    state: ResourceState | None = None
    uuid: str | None = None
    create_timestamp: int | None = None


class SnapshotVolumeDefinition(_Model):
    """Size of one volume at snapshot time."""

    volume_number: int = 0
    size_kib: int = 0


class SnapshotNode(_Model):
    """The per-node part of a snapshot."""

    snapshot_name: str | None = None
    node_name: str
    create_timestamp: int | None = None
    flags: list[str] = Field(default_factory=list)
    uuid: str | None = None


class Snapshot(_Model):
    """A snapshot definition with its per-node snapshots."""

    name: str
    resource_name: str
    nodes: list[str] = Field(default_factory=list)
    props: dict[str, str] = Field(default_factory=dict)
    snapshot_definition_props: dict[str, str] = Field(default_factory=dict)
    resource_definition_props: dict[str, str] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    volume_definitions: list[SnapshotVolumeDefinition] = Field(default_factory=list)
    uuid: str | None = None
    snapshots: list[SnapshotNode] = Field(default_factory=list)

    @property
    def created_on(self) -> int | None:
        """Creation time in ms since the epoch, as the first node reports it (LINSTOR applies one to all)."""
        stamps = [s.create_timestamp for s in self.snapshots if s.create_timestamp is not None]
        return min(stamps) if stamps else None


class CloneStarted(_Model):
    """Answer of POST /v1/resource-definitions/{rd}/clone."""

    location: str | None = None
    source_name: str | None = None
    clone_name: str | None = None
    messages: list[ApiCallRc] = Field(default_factory=list)


class CloneStatus(_Model):
    """GET /v1/resource-definitions/{src}/clone/{clone}."""

    status: Literal["CLONING", "COMPLETE", "FAILED"]


class ResourceGroupCreate(_Model):
    """POST /v1/resource-groups (props are ignored by the controller on create)."""

    name: str
    description: str | None = None
    select_filter: AutoSelectFilter | None = None


class CloneRequest(_Model):
    """POST /v1/resource-definitions/{rd}/clone: props are applied in the clone's own transaction."""

    name: str
    resource_group: str | None = None
    override_props: dict[str, str] | None = None
    delete_props: list[str] | None = None
    delete_namespaces: list[str] | None = None


class SpawnResult(_Model):
    """What a spawn did: LINSTOR's messages, and whether it placed resources (not only definitions)."""

    messages: list[ApiCallRc]
    placed: bool
