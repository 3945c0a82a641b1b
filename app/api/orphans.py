"""Orphans of a pool: the repair's report, and the repair (a dry run unless asked to apply)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from app.api.common import ERRORS
from app.api.deps import IDEMPOTENT, ServicesDep
from app.api.schemas import DestructiveFlag
from app.identity import VolumeType
from app.repair import Orphan, OrphanKind, Outcome, RepairAction, RepairReport

router = APIRouter(tags=["repair"], responses=ERRORS)


class OrphanVolume(BaseModel):
    """The identity an orphan RD carries."""

    project: str
    type: VolumeType
    name: str


class OrphanItem(BaseModel):
    """One piece of damage and what the repair does (or did) about it."""

    kind: OrphanKind
    resource_definition: str
    snapshot: str | None = Field(None, description="The LINSTOR snapshot concerned, or mapped by `key`.")
    key: str | None = Field(None, description="The mapping property, for the snapshot-key kinds.")
    volume: OrphanVolume | None = None
    reason: str
    action: RepairAction
    outcome: Outcome
    error: str | None = None

    @classmethod
    def of(cls, orphan: Orphan) -> OrphanItem:
        """The API's view of a domain orphan."""
        v = orphan.volume
        return cls(
            kind=orphan.kind,
            resource_definition=orphan.rd,
            snapshot=orphan.snapshot,
            key=orphan.key,
            volume=OrphanVolume(project=v.project, type=v.type, name=v.name) if v is not None else None,
            reason=orphan.reason,
            action=orphan.action,
            outcome=orphan.outcome,
            error=orphan.error,
        )


class OrphanReport(BaseModel):
    """A repair pass over one pool."""

    pool: str
    applied: bool
    grace_seconds: float
    orphans: list[OrphanItem]

    @classmethod
    def of(cls, report: RepairReport) -> OrphanReport:
        """The API's view of a domain report."""
        return cls(
            pool=report.pool,
            applied=report.applied,
            grace_seconds=report.grace_seconds,
            orphans=[OrphanItem.of(o) for o in report.orphans],
        )


class RepairRequest(BaseModel):
    """Whether to act; without `apply` a repair is a dry run."""

    model_config = ConfigDict(extra="forbid")

    apply: DestructiveFlag = Field(False, description="Act on what is found. Strictly `true` or `false`.")


@router.get("/v1/pools/{pool}/orphans")
async def list_orphans(pool: str, services: ServicesDep) -> OrphanReport:
    """What a repair of the pool would do: unfinished, duplicated and unidentified RDs, leftovers."""
    return OrphanReport.of(await services.repair.report(pool))


@router.post("/v1/pools/{pool}/orphans/repair", dependencies=[IDEMPOTENT])
async def repair_orphans(
    pool: str, services: ServicesDep, body: Annotated[RepairRequest | None, Body()] = None
) -> OrphanReport:
    """Repair the pool's orphans; a dry run unless the body asks `{"apply": true}`."""
    apply = body is not None and body.apply
    return OrphanReport.of(await services.repair.repair(pool, apply=apply))
