"""What a repair pass reports: the kinds of orphans, the actions taken on them, and the view it read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from app.identity import VolumeKey
from app.linstor.models import ResourceDefinition, Snapshot


class OrphanKind(StrEnum):
    """What is wrong."""

    NO_IDENTITY = "no_identity"  # a prefixed RD in the pool without a decodable identity
    DUPLICATE = "duplicate"  # one of several RDs of one identity, not the winner
    UNFINISHED = "unfinished"  # a create or copy whose `pending` mark outlived the grace period
    STAGED_RESTORE = "staged_restore"  # a new volume from a snapshot left in the staging group
    STAGED_UNKNOWN = "staged_unknown"  # an RD in the staging group without our marks
    EXPIRED_CLAIM = "expired_claim"  # an identity claim whose holder never released it
    STALE_SNAPSHOT_KEY = "stale_snapshot_key"  # a mapping key to a snapshot LINSTOR no longer has
    INHERITED_SNAPSHOT_KEY = "inherited_snapshot_key"  # a mapping key copied from another RD
    UNMAPPED_SNAPSHOT = "unmapped_snapshot"  # a prefixed LINSTOR snapshot no key maps


class RepairAction(StrEnum):
    """What the repair does about it."""

    DELETE_RD = "delete_rd"  # its snapshots first: LINSTOR refuses to delete an RD that has some
    DELETE_SNAPSHOT = "delete_snapshot"
    REMOVE_KEY = "remove_key"
    WAIT = "wait"  # not yet: a later pass of this process acts if it still applies then
    NONE = "none"  # reported for an operator; not safe to decide here


class Outcome(StrEnum):
    """What became of the action."""

    PLANNED = "planned"  # a dry run: the action a repair would take
    REPORTED = "reported"  # action wait or none
    DONE = "done"
    SKIPPED = "skipped"  # the object changed since the scan; the next pass looks again
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Orphan:
    """One piece of damage: its kind, the RD (and snapshot or key), why, and what the repair does."""

    kind: OrphanKind
    rd: str
    reason: str
    action: RepairAction
    snapshot: str | None = None
    key: str | None = None  # the mapping property, for the key kinds
    volume: VolumeKey | None = None  # the identity the RD carries, when it has one
    outcome: Outcome = Outcome.PLANNED
    error: str | None = None

    @property
    def target(self) -> tuple[str, str, str, str]:
        """What the action acts on (the kind may read differently on a partial re-read)."""
        return (self.action, self.rd.upper(), (self.snapshot or "").upper(), self.key or "")

    @property
    def mapping(self) -> tuple[str, str, str]:
        """The mapping a key kind is about: RD, key, mapped snapshot."""
        return (self.rd.upper(), self.key or "", (self.snapshot or "").upper())

    @property
    def acts(self) -> bool:
        """Whether a pass that applies acts on it now."""
        return self.action not in (RepairAction.WAIT, RepairAction.NONE)


@dataclass(frozen=True, slots=True)
class RepairReport:
    """One pass over one pool."""

    pool: str
    applied: bool
    grace_seconds: float
    orphans: tuple[Orphan, ...]


@dataclass(frozen=True, slots=True)
class View:
    """What one pass read of LINSTOR, and when: resource definitions and snapshots."""

    rds: Sequence[ResourceDefinition]
    snapshots: Sequence[Snapshot]
    now: float
    # since when earlier passes saw each mapping (Orphan.mapping) name a snapshot LINSTOR does not have
    missing_since: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
