"""The async LINSTOR REST client: one method per API call, typed models in, typed models or errors out.

The transport (one httpx.AsyncClient per process, failover, retries, decoding) is app/linstor/transport.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError

from app.linstor.errors import (
    INFO_NO_RSC_SPAWNED,
    LinstorError,
    LinstorNotFound,
    LinstorProtocolError,
    error_for,
    rc_code,
    rc_is_info,
    rc_is_warning,
)
from app.linstor.lean import LeanResourceDefinition, decode_rd_list
from app.linstor.models import (
    ApiCallRc,
    AutoSelectFilter,
    CloneRequest,
    CloneStarted,
    CloneStatus,
    ControllerVersion,
    Resource,
    ResourceDefinition,
    ResourceGroup,
    ResourceGroupCreate,
    Snapshot,
    SpawnResult,
    VolumeDefinition,
)
from app.linstor.transport import LinstorSession, Timeouts


def _seg(name: str | int) -> str:
    return quote(str(name), safe="")


def _props_params(props: Iterable[str] | None) -> list[tuple[str, str]]:
    return [("props", p) for p in props or ()]


class LinstorClient(LinstorSession):
    """Async client of the LINSTOR controller REST API v1."""

    # ---- controller ------------------------------------------------------------------------------------

    async def controller_version(self) -> ControllerVersion:
        """GET /v1/controller/version."""
        return await self._get(ControllerVersion, "/v1/controller/version")

    # ---- resource groups -------------------------------------------------------------------------------

    async def list_resource_groups(
        self, names: Iterable[str] | None = None, props: Iterable[str] | None = None
    ) -> list[ResourceGroup]:
        """GET /v1/resource-groups."""
        params = [("resource_groups", n) for n in names or ()] + _props_params(props)
        return await self._list(_rg_list, "/v1/resource-groups", params=params)

    async def get_resource_group(self, name: str) -> ResourceGroup:
        """GET /v1/resource-groups/{rg}."""
        return await self._get(ResourceGroup, f"/v1/resource-groups/{_seg(name)}")

    async def create_resource_group(self, group: ResourceGroupCreate) -> list[ApiCallRc]:
        """POST /v1/resource-groups (the controller ignores props on create)."""
        return await self._call("POST", "/v1/resource-groups", body=group.model_dump(exclude_none=True))

    async def modify_resource_group(
        self,
        name: str,
        *,
        override_props: Mapping[str, str] | None = None,
        delete_props: Iterable[str] | None = None,
        select_filter: AutoSelectFilter | None = None,
        description: str | None = None,
    ) -> list[ApiCallRc]:
        """PUT /v1/resource-groups/{rg}."""
        body: dict[str, Any] = {
            "override_props": dict(override_props or {}),
            "delete_props": list(delete_props or []),
        }
        if select_filter is not None:
            body["select_filter"] = select_filter.model_dump(exclude_none=True)
        if description is not None:
            body["description"] = description
        return await self._call("PUT", f"/v1/resource-groups/{_seg(name)}", body=body)

    async def delete_resource_group(self, name: str) -> list[ApiCallRc]:
        """DELETE /v1/resource-groups/{rg}."""
        return await self._call("DELETE", f"/v1/resource-groups/{_seg(name)}")

    async def spawn(
        self,
        group: str,
        name: str,
        volume_sizes_kib: Sequence[int],
        *,
        props: Mapping[str, str] | None = None,
        definitions_only: bool = False,
    ) -> SpawnResult:
        """POST /v1/resource-groups/{rg}/spawn: RD, its props and volume definitions in one call."""
        body = {
            "resource_definition_name": name,
            "volume_sizes": list(volume_sizes_kib),
            "partial": False,
            "definitions_only": definitions_only,
            "resource_definition_props": dict(props or {}),
        }
        rcs = await self._call("POST", f"/v1/resource-groups/{_seg(group)}/spawn", body=body)
        return SpawnResult(messages=rcs, placed=not _spawned_without_resources(rcs))

    # ---- resource definitions --------------------------------------------------------------------------

    async def list_resource_definitions(
        self,
        *,
        names: Iterable[str] | None = None,
        props: Iterable[str] | None = None,
        with_volume_definitions: bool = False,
        offset: int = 0,
        limit: int = 0,
    ) -> list[ResourceDefinition]:
        """GET /v1/resource-definitions; `props` filters are ANDed by the controller."""
        params: list[tuple[str, str | int]] = [("resource_definitions", n) for n in names or ()]
        params += _props_params(props)
        if with_volume_definitions:
            params.append(("with_volume_definitions", "true"))
        if limit:
            params += [("offset", offset), ("limit", limit)]
        return await self._list(_rd_list, "/v1/resource-definitions", params=params)

    async def resource_definition_page(
        self, *, props: Iterable[str], offset: int = 0, limit: int = 0
    ) -> list[LeanResourceDefinition]:
        """GET /v1/resource-definitions with volume definitions, decoded into lean structs (full syncs).

        `limit` 0 lists every match; the controller pages after filtering, in upper-cased name order (§5.2).
        """
        params: list[tuple[str, str | int]] = [*_props_params(props), ("with_volume_definitions", "true")]
        if limit:
            params += [("offset", offset), ("limit", limit)]
        path = "/v1/resource-definitions"
        return await self._get_decoded(path, partial(decode_rd_list, path), params=params)

    async def get_resource_definition(self, name: str) -> ResourceDefinition:
        """GET /v1/resource-definitions/{rd} (never includes volume definitions)."""
        return await self._get(ResourceDefinition, f"/v1/resource-definitions/{_seg(name)}")

    async def create_resource_definition(
        self, name: str, *, resource_group: str | None = None, props: Mapping[str, str] | None = None
    ) -> list[ApiCallRc]:
        """POST /v1/resource-definitions with its props in the same transaction."""
        rd: dict[str, Any] = {"name": name}
        if resource_group:
            rd["resource_group_name"] = resource_group
        if props:
            rd["props"] = dict(props)
        return await self._call("POST", "/v1/resource-definitions", body={"resource_definition": rd})

    async def modify_resource_definition(
        self,
        name: str,
        *,
        override_props: Mapping[str, str] | None = None,
        delete_props: Iterable[str] | None = None,
        delete_namespaces: Iterable[str] | None = None,
        resource_group: str | None = None,
    ) -> list[ApiCallRc]:
        """PUT /v1/resource-definitions/{rd}: override, then delete, then delete namespaces, atomically."""
        body: dict[str, Any] = {
            "override_props": dict(override_props or {}),
            "delete_props": list(delete_props or []),
            "delete_namespaces": list(delete_namespaces or []),
        }
        if resource_group is not None:
            body["resource_group"] = resource_group
        return await self._call("PUT", f"/v1/resource-definitions/{_seg(name)}", body=body)

    async def delete_resource_definition(self, name: str) -> bool:
        """DELETE /v1/resource-definitions/{rd}; False when it was already gone (WARN_NOT_FOUND, HTTP 200)."""
        rcs = await self._call("DELETE", f"/v1/resource-definitions/{_seg(name)}")
        return not _has_not_found_warning(rcs)

    async def clone(self, source: str, request: CloneRequest) -> CloneStarted:
        """POST /v1/resource-definitions/{rd}/clone; answers CloneStarted (201) or raises."""
        path = f"/v1/resource-definitions/{_seg(source)}/clone"
        data = await self._json("POST", path, body=request.model_dump(exclude_none=True))
        try:
            started = CloneStarted.model_validate(data)
        except ValidationError as exc:
            raise LinstorProtocolError(f"POST {path}: unexpected answer: {exc}") from exc
        err = error_for(started.messages, status=201)
        if err is not None:
            raise err
        return started

    async def clone_status(self, source: str, clone: str) -> CloneStatus:
        """GET /v1/resource-definitions/{src}/clone/{clone}."""
        return await self._get(CloneStatus, f"/v1/resource-definitions/{_seg(source)}/clone/{_seg(clone)}")

    # ---- volume definitions and resources --------------------------------------------------------------

    async def list_volume_definitions(self, rd: str) -> list[VolumeDefinition]:
        """GET /v1/resource-definitions/{rd}/volume-definitions."""
        return await self._list(_vd_list, f"/v1/resource-definitions/{_seg(rd)}/volume-definitions")

    async def create_volume_definition(
        self, rd: str, size_kib: int, *, volume_number: int | None = None
    ) -> list[ApiCallRc]:
        """POST /v1/resource-definitions/{rd}/volume-definitions."""
        vd: dict[str, Any] = {"size_kib": size_kib}
        if volume_number is not None:
            vd["volume_number"] = volume_number
        path = f"/v1/resource-definitions/{_seg(rd)}/volume-definitions"
        return await self._call("POST", path, body={"volume_definition": vd})

    async def list_resources(self, rd: str) -> list[Resource]:
        """GET /v1/resource-definitions/{rd}/resources."""
        return await self._list(_rsc_list, f"/v1/resource-definitions/{_seg(rd)}/resources")

    async def autoplace(self, rd: str, select_filter: AutoSelectFilter | None = None) -> list[ApiCallRc]:
        """POST /v1/resource-definitions/{rd}/autoplace; an empty filter lets the RG decide."""
        body = {"select_filter": select_filter.model_dump(exclude_none=True)} if select_filter else {}
        return await self._call("POST", f"/v1/resource-definitions/{_seg(rd)}/autoplace", body=body)

    # ---- snapshots -------------------------------------------------------------------------------------

    async def create_snapshot(
        self, rd: str, name: str, *, nodes: Sequence[str] | None = None
    ) -> list[ApiCallRc]:
        """POST /v1/resource-definitions/{rd}/snapshots."""
        body: dict[str, Any] = {"name": name}
        if nodes:
            body["nodes"] = list(nodes)
        return await self._call("POST", f"/v1/resource-definitions/{_seg(rd)}/snapshots", body=body)

    async def list_snapshots(self, rd: str) -> list[Snapshot]:
        """GET /v1/resource-definitions/{rd}/snapshots."""
        return await self._list(_snap_list, f"/v1/resource-definitions/{_seg(rd)}/snapshots")

    async def get_snapshot(self, rd: str, name: str) -> Snapshot:
        """GET /v1/resource-definitions/{rd}/snapshots/{snap}."""
        return await self._get(Snapshot, f"/v1/resource-definitions/{_seg(rd)}/snapshots/{_seg(name)}")

    async def view_snapshots(
        self, *, resources: Iterable[str] | None = None, nodes: Iterable[str] | None = None
    ) -> list[Snapshot]:
        """GET /v1/view/snapshots: snapshots of every RD (no props filter exists here)."""
        params: list[tuple[str, str | int]] = [("resources", r) for r in resources or ()]
        params += [("nodes", n) for n in nodes or ()]
        return await self._list(_snap_list, "/v1/view/snapshots", params=params)

    async def delete_snapshot(self, rd: str, name: str) -> bool:
        """DELETE /v1/resource-definitions/{rd}/snapshots/{snap}; False when it was already gone."""
        rcs = await self._call("DELETE", f"/v1/resource-definitions/{_seg(rd)}/snapshots/{_seg(name)}")
        return not _has_not_found_warning(rcs)

    async def rollback_snapshot(self, rd: str, name: str) -> list[ApiCallRc]:
        """POST /v1/resource-definitions/{rd}/snapshot-rollback/{snap}."""
        return await self._call(
            "POST", f"/v1/resource-definitions/{_seg(rd)}/snapshot-rollback/{_seg(name)}", body={}
        )

    async def restore_volume_definitions(self, rd: str, snapshot: str, to_rd: str) -> list[ApiCallRc]:
        """POST …/snapshot-restore-volume-definition/{snap}: VDs with the snapshot's sizes on `to_rd`."""
        path = f"/v1/resource-definitions/{_seg(rd)}/snapshot-restore-volume-definition/{_seg(snapshot)}"
        return await self._call("POST", path, body={"to_resource": to_rd})

    async def restore_resources(
        self, rd: str, snapshot: str, to_rd: str, *, nodes: Sequence[str] | None = None
    ) -> list[ApiCallRc]:
        """POST …/snapshot-restore-resource/{snap}; copies the snapshot's RD props over `to_rd`'s."""
        body: dict[str, Any] = {"to_resource": to_rd}
        if nodes:
            body["nodes"] = list(nodes)
        path = f"/v1/resource-definitions/{_seg(rd)}/snapshot-restore-resource/{_seg(snapshot)}"
        return await self._call("POST", path, body=body)


def _spawned_without_resources(rcs: Iterable[ApiCallRc]) -> bool:
    """True when a spawn created definitions only (INFO_NO_RSC_SPAWNED)."""
    return any(rc_is_info(rc.ret_code) and rc_code(rc.ret_code) == INFO_NO_RSC_SPAWNED for rc in rcs)


def _has_not_found_warning(rcs: Iterable[ApiCallRc]) -> bool:
    return any(rc_is_warning(rc.ret_code) and rc_code(rc.ret_code) == 3000 for rc in rcs)


_rg_list = TypeAdapter(list[ResourceGroup])
_rd_list = TypeAdapter(list[ResourceDefinition])
_vd_list = TypeAdapter(list[VolumeDefinition])
_rsc_list = TypeAdapter(list[Resource])
_snap_list = TypeAdapter(list[Snapshot])

__all__ = ["LinstorClient", "LinstorError", "LinstorNotFound", "SpawnResult", "Timeouts"]
