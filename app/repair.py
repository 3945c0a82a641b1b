"""Repair: what crashes and races leave behind in a pool, reported, and removed where that is safe.

One rule decides, for one read of LINSTOR's state, what is damage and what to do about it
(`RepairService.find`). A pass applies it, and before each action reads the object again and asks the same
rule, so nothing that changed since the scan (a retry adopted an unfinished RD, a snapshot got its mapping)
is touched. The repair never deletes a volume a client was told exists: it deletes only RDs that carry
linstor-names' `pending` mark past the grace period (their operation never answered success), identity
duplicates beyond the winner (the smallest name, as `VolumeService.settle`), expired claims and restores
left in the staging group; besides, LINSTOR snapshots no key maps (past the grace period) and mapping keys
that name no snapshot of their RD. Every action is one line on the `linstor_names.audit` logger.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from enum import Enum

from app.claims import CLAIM_PREFIX
from app.errors import ServiceError
from app.identity import VolumeKey, VolumeRecord
from app.linstor.models import ResourceDefinition, Snapshot
from app.markers import CLAIM, OWN_NAME, PENDING, STARTED
from app.repair_types import Orphan, OrphanKind, Outcome, RepairAction, RepairReport, View
from app.resolver import same_pool
from app.translate import linstor_errors, translates_linstor_errors
from app.volumes import VolumeService

__all__ = ["Orphan", "OrphanKind", "Outcome", "RepairAction", "RepairReport", "RepairService", "View"]

log = logging.getLogger(__name__)
audit = logging.getLogger("linstor_names.audit")


class _Progress(Enum):
    FINISHED = "finished"  # no `pending` mark
    RUNNING = "running"  # pending, within the grace period: an operation may still be at work
    STALE = "stale"  # pending past the grace period, marked by this RD's own operation
    COPIED = "copied"  # pending past the grace period, but the marks name another RD


def _age(rd: ResourceDefinition, now: float) -> float:
    """Seconds since the RD's operation (or claim) started; a missing or unreadable mark is old."""
    try:
        return now - float(rd.props[STARTED])
    except (KeyError, ValueError):
        return math.inf


class RepairService:
    """Reports and repairs orphans in a pool; LINSTOR errors come out as ServiceErrors."""

    def __init__(self, volumes: VolumeService, *, clock: Callable[[], float] = time.time) -> None:
        self.volumes = volumes
        self.clock = clock
        # A snapshot create writes its mapping before it takes the snapshot, and no date tells a mapping in
        # that window from one a crash left: only one still missing a grace period after this process first
        # saw it is removed. (Per process: a fresh one, such as the CLI, waits again unless the grace is 0.)
        self.missing_since: dict[tuple[str, str, str], float] = {}
        self.client = volumes.client
        self.codec = volumes.codec
        self.settings = volumes.settings
        self.prefix = volumes.settings.volume_prefix
        self.grace = volumes.settings.repair_grace

    @translates_linstor_errors("report orphans")
    async def report(self, pool: str) -> RepairReport:
        """What a repair of `pool` would do; changes nothing."""
        return await self._pass(pool, apply=False)

    @translates_linstor_errors("repair orphans")
    async def repair(self, pool: str, *, apply: bool) -> RepairReport:
        """The pool's orphans, acted on when `apply`; one failed action does not stop the rest."""
        return await self._pass(pool, apply=apply)

    async def keep_repaired(self) -> None:
        """A repair of every pool now and then every repair interval, until cancelled."""
        interval = self.settings.repair_interval
        while True:
            try:
                for pool in await self.volumes.pools():
                    report = await self.repair(pool.name, apply=True)
                    found = len(report.orphans)
                    done = sum(o.outcome is Outcome.DONE for o in report.orphans)
                    if found:  # what only an operator can decide comes again every pass: info level
                        level = logging.WARNING if done else logging.INFO
                        log.log(level, "repair of %s: %d found, %d fixed", pool.name, found, done)
            except ServiceError as exc:  # LINSTOR down: try again next interval
                log.warning("repair pass failed: %s; retrying in %ss", exc.detail, interval)
            except Exception:  # a bug must not end the loop; it is logged with its traceback
                log.exception("repair pass failed; retrying in %ss", interval)
            await asyncio.sleep(interval)

    async def _pass(self, pool: str, *, apply: bool) -> RepairReport:
        group = (await self.volumes.require_pool(pool)).name
        rds = await self.client.list_resource_definitions()
        view = View(rds, await self.client.view_snapshots(), self.clock(), self.missing_since)
        orphans = self.find(group, view)
        self._remember_missing(group, view, orphans)
        if apply:
            orphans = [await self._fix(group, o) for o in orphans]
        else:
            orphans = [o if o.acts else replace(o, outcome=Outcome.REPORTED) for o in orphans]
        return RepairReport(pool=group, applied=apply, grace_seconds=self.grace, orphans=tuple(orphans))

    def _remember_missing(self, pool: str, view: View, orphans: list[Orphan]) -> None:
        """Keep the first sighting of each mapping to a missing snapshot of this pool; forget the rest."""
        missing = {o.mapping for o in orphans if o.kind is OrphanKind.STALE_SNAPSHOT_KEY}
        group_of = {rd.name.upper(): rd.resource_group_name for rd in view.rds}
        kept = {
            m: t
            for m, t in self.missing_since.items()
            if m[0] in group_of and not same_pool(group_of[m[0]], pool)  # another pool's: its pass decides
        }
        self.missing_since = kept | {m: self.missing_since.get(m, view.now) for m in missing}

    # ---- the rule --------------------------------------------------------------------------------------

    def find(self, pool: str, view: View) -> list[Orphan]:
        """The orphans of `pool` in `view`, in a stable order (kind, RD, snapshot, key)."""
        found: list[Orphan] = []
        volumes: dict[VolumeKey, list[tuple[ResourceDefinition, VolumeRecord]]] = defaultdict(list)
        group_of = {rd.name.upper(): rd.resource_group_name for rd in view.rds}
        for rd in view.rds:
            if same_pool(rd.resource_group_name, self.settings.staging_resource_group):
                found += self._staged(rd, pool, view.now, group_of)
            elif same_pool(rd.resource_group_name, pool):
                record = self.codec.decode(rd.resource_group_name, rd.name, rd.props)
                orphan = self._in_pool(rd, record, view.now)
                if orphan is not None:
                    found.append(orphan)
                elif record is not None and self._progress(rd, view.now) is _Progress.FINISHED:
                    volumes[record.key].append((rd, record))
        snaps_of: dict[str, list[Snapshot]] = defaultdict(list)
        for snap in view.snapshots:
            snaps_of[snap.resource_name.upper()].append(snap)
        owner = {s.name.upper(): s.resource_name for s in view.snapshots}
        for key, holders in volumes.items():
            (winner, _), *extras = sorted(holders, key=lambda h: h[0].name.upper())
            found += [self._duplicate(rd, key, winner.name) for rd, _ in extras]
            found += self._mappings(winner, snaps_of[winner.name.upper()], owner, view)
        order = list(OrphanKind)
        return sorted(found, key=lambda o: (order.index(o.kind), o.rd, o.snapshot or "", o.key or ""))

    def _progress(self, rd: ResourceDefinition, now: float) -> _Progress:
        if PENDING not in rd.props:
            return _Progress.FINISHED
        if _age(rd, now) <= self.grace:
            return _Progress.RUNNING
        return _Progress.STALE if rd.props.get(OWN_NAME) == rd.name else _Progress.COPIED

    def _in_pool(self, rd: ResourceDefinition, record: VolumeRecord | None, now: float) -> Orphan | None:
        """An RD of the pool that is no volume, or an unfinished one; None for volumes and running work."""
        progress = self._progress(rd, now)
        pending = rd.props.get(PENDING)
        if progress is _Progress.RUNNING:
            return None
        if record is None:
            if not rd.name.startswith(self.prefix):
                return None  # not named by Incus or by us: not ours to judge
            if progress is _Progress.STALE:
                why = f"no identity, and a {pending} by linstor-names unfinished for {_age(rd, now):.0f}s"
                return Orphan(OrphanKind.NO_IDENTITY, rd.name, why, RepairAction.DELETE_RD)
            why = (
                f"prefixed but no identity under {self.codec.keys.root}; left for an operator (only an RD "
                "that also carries linstor-names' pending mark is removed: Incus writes the identity after "
                "its spawn)"
            )
            return Orphan(OrphanKind.NO_IDENTITY, rd.name, why, RepairAction.NONE)
        if progress is _Progress.STALE:
            why = (
                f"{pending} unfinished for {_age(rd, now):.0f}s (grace {self.grace:g}s): never reported as "
                "created"
            )
            return Orphan(OrphanKind.UNFINISHED, rd.name, why, RepairAction.DELETE_RD, volume=record.key)
        if progress is _Progress.COPIED:
            copied = rd.props.get(OWN_NAME)
            why = f"pending mark copied from {copied}: not this RD's operation; left for an operator"
            return Orphan(OrphanKind.UNFINISHED, rd.name, why, RepairAction.NONE, volume=record.key)
        return None

    def _duplicate(self, rd: ResourceDefinition, key: VolumeKey, winner: str) -> Orphan:
        why = f"{winner} carries the same identity and has the smallest name (the rule of create's settle)"
        return Orphan(OrphanKind.DUPLICATE, rd.name, why, RepairAction.DELETE_RD, volume=key)

    def _staged(
        self, rd: ResourceDefinition, pool: str, now: float, group_of: dict[str, str]
    ) -> list[Orphan]:
        """Claims past their timeout, restores past the grace period, and strangers, of the staging group."""
        if rd.name.upper().startswith(CLAIM_PREFIX.upper()) or CLAIM in rd.props:
            claimed = rd.props.get(CLAIM, "")
            claim_pool = claimed.partition("/")[0]
            if _age(rd, now) <= self.settings.claim_timeout or (
                claim_pool and not same_pool(claim_pool, pool)
            ):
                return []
            why = f"claim on {claimed or '?'} held {_age(rd, now):.0f}s, past the claim timeout: holder gone"
            return [Orphan(OrphanKind.EXPIRED_CLAIM, rd.name, why, RepairAction.DELETE_RD)]
        # a restore copies its parent's props, own-name mark included: the parent's group is the pool
        parent = rd.props.get(OWN_NAME, "")
        parent_pool = group_of.get(parent.upper()) if parent.upper() != rd.name.upper() else None
        where = "of this pool" if parent_pool else "whose pool is unknown (listed with every pool)"
        if (parent_pool and not same_pool(parent_pool, pool)) or self._progress(rd, now) is _Progress.RUNNING:
            return []
        if PENDING in rd.props:
            age = _age(rd, now)
            why = f"a {rd.props[PENDING]} {where} left in the staging group {age:.0f}s ago: never finished"
            return [Orphan(OrphanKind.STAGED_RESTORE, rd.name, why, RepairAction.DELETE_RD)]
        why = f"in the staging group without linstor-names' marks ({where}); left for an operator"
        return [Orphan(OrphanKind.STAGED_UNKNOWN, rd.name, why, RepairAction.NONE)]

    def _mappings(
        self, rd: ResourceDefinition, snaps: list[Snapshot], owner: dict[str, str], view: View
    ) -> list[Orphan]:
        """A volume's mapping keys that name no snapshot of its own, and its snapshots no key names."""
        found: list[Orphan] = []
        own = {s.name.upper(): s for s in snaps}
        mapped: set[str] = set()
        copied = rd.props.get(OWN_NAME, rd.name)
        origin = f" (its props were copied from {copied})" if copied != rd.name else ""
        keys, record = self.codec.keys, self.codec.decode(rd.resource_group_name, rd.name, rd.props)
        volume = record.key if record is not None else None
        for prefix in (keys.snapshot_prefix, keys.doc_snapshot_prefix):
            for prop, target in rd.props.items():
                if not prop.startswith(prefix) or prop == prefix:
                    continue
                if target.upper() in own:
                    mapped.add(target.upper())
                    continue
                kind, action = OrphanKind.STALE_SNAPSHOT_KEY, RepairAction.REMOVE_KEY
                missing = view.now - view.missing_since.get((rd.name.upper(), prop, target.upper()), view.now)
                if target.upper() in owner:
                    kind, why = (
                        OrphanKind.INHERITED_SNAPSHOT_KEY,
                        f"{prop} maps a snapshot of {owner[target.upper()]}",
                    )
                elif missing >= self.grace:
                    why = f"{prop} maps a snapshot LINSTOR does not have{origin}, missing for {missing:.0f}s"
                else:
                    action = RepairAction.WAIT
                    why = (
                        f"{prop} maps a snapshot LINSTOR does not have{origin}; removed when still missing "
                        f"{self.grace:g}s after first seen (a snapshot being taken is mapped first)"
                    )
                found.append(Orphan(kind, rd.name, why, action, target, prop, volume))
        for name, snap in own.items():
            if name in mapped or not snap.name.startswith(self.prefix):
                continue
            if snap.created_on is None:
                why = "no key maps it and LINSTOR gives no creation time; left for an operator"
                action = RepairAction.NONE
            elif view.now - snap.created_on / 1000 > self.grace:
                why = f"no key maps it, {view.now - snap.created_on / 1000:.0f}s after it was taken"
                action = RepairAction.DELETE_SNAPSHOT
            else:
                continue  # young: a create or its undo may still be at work on it
            found.append(Orphan(OrphanKind.UNMAPPED_SNAPSHOT, rd.name, why, action, snap.name, None, volume))
        return found

    # ---- the actions -----------------------------------------------------------------------------------

    async def _fix(self, pool: str, orphan: Orphan) -> Orphan:
        """Act on one orphan if the same rule still asks for it on a fresh read; audit what was done."""
        if not orphan.acts:
            return replace(orphan, outcome=Outcome.REPORTED)
        line = f"rd={orphan.rd} snapshot={orphan.snapshot or '-'} reason={orphan.reason}"
        try:
            with linstor_errors(f"repair {orphan.action}"):
                async with self._guard(orphan):
                    if not await self._still(pool, orphan):
                        log.info("repair %s skipped: %s changed since the scan", orphan.action, orphan.rd)
                        return replace(orphan, outcome=Outcome.SKIPPED, error="changed since the scan")
                    await self._act(orphan)
        except ServiceError as exc:
            audit.error("repair %s failed %s error=%s", orphan.action, line, exc.detail)
            return replace(orphan, outcome=Outcome.FAILED, error=exc.detail)
        audit.warning("repair %s %s", orphan.action, line)  # warning: seen without a logging config
        return replace(orphan, outcome=Outcome.DONE)

    @asynccontextmanager
    async def _guard(self, orphan: Orphan) -> AsyncIterator[None]:
        """The identity's lock, as every write of this process; for an RD deletion its claim too, so that a
        retry on another replica cannot adopt the RD while it goes (it gets 409 operation_in_progress)."""
        if orphan.volume is None:
            yield
            return
        async with self.volumes.locks.hold(orphan.volume):
            if orphan.action is RepairAction.DELETE_RD:
                async with self.volumes.claims.hold(orphan.volume):
                    yield
            else:
                yield

    async def _still(self, pool: str, orphan: Orphan) -> bool:
        """Whether a fresh read of the orphan's RD (and, for a duplicate, its rivals) still finds it."""
        if orphan.kind is OrphanKind.DUPLICATE and orphan.volume is not None:
            rds = await self.client.list_resource_definitions(props=self.codec.lookup_filters(orphan.volume))
        else:
            rds = await self.client.list_resource_definitions(names=[orphan.rd])
        # an inherited key's snapshot belongs to another RD: only a full listing shows it is still there
        every = orphan.kind is OrphanKind.INHERITED_SNAPSHOT_KEY
        snaps = await self.client.view_snapshots(resources=None if every else [rd.name for rd in rds])
        fresh = self.find(pool, View(rds, snaps, self.clock(), self.missing_since))
        return any(f.target == orphan.target for f in fresh)

    async def _act(self, orphan: Orphan) -> None:
        if orphan.action is RepairAction.DELETE_RD:
            for snap in await self.client.list_snapshots(orphan.rd):
                await self.client.delete_snapshot(orphan.rd, snap.name)
            await self.client.delete_resource_definition(orphan.rd)
            await self.volumes.resolver.forget(orphan.rd)
        elif orphan.action is RepairAction.DELETE_SNAPSHOT and orphan.snapshot is not None:
            await self.client.delete_snapshot(orphan.rd, orphan.snapshot)
        elif orphan.action is RepairAction.REMOVE_KEY and orphan.key is not None:
            await self.client.modify_resource_definition(orphan.rd, delete_props=[orphan.key])
            await self._refresh(orphan.rd)

    async def _refresh(self, rd_name: str) -> None:
        """The cache learns the volume without the removed mapping (a forgotten entry would leave lists)."""
        rds = await self.client.list_resource_definitions(names=[rd_name], with_volume_definitions=True)
        record = self.volumes.resolver.decode(rds[0]) if rds else None
        if record is not None:
            await self.volumes.resolver.remember(record)
