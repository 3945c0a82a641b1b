"""A full sync's write: make the cache match one LINSTOR listing without undoing newer writes.

The rule, for a listing taken after `started_at` (all stamps on the database's clock, see store.py):

* a row or tombstone stamped after `started_at` was written by a write-through or by a newer sync of
  another replica: the listing may predate that change, so the row or tombstone wins;
* every other listed volume is written (stamped `started_at`) unless its row already holds the same
  content, so a steady-state sync writes nothing;
* every other row of a synced pool that the listing lacks is deleted and leaves a tombstone stamped
  `started_at`, so an older sync that commits later cannot bring it back;
* tombstones are kept for `retention` seconds, and a sync whose `started_at` is older than that is
  refused: the tombstones that protect against it may be gone.

Writers are serialized (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE), so the comparison and
the writes see one state.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from app.cache.queries import (
    VOLUME_COLUMNS,
    VolumeValues,
    bury,
    delete_by_rd,
    snapshot_rows,
    upsert,
    volume_row,
    volume_values,
)
from app.cache.tables import name_key, snapshots, tombstones, volumes
from app.identity import VolumeRecord


class StaleSyncError(RuntimeError):
    """A sync's listing is older than the tombstone retention: applying it could resurrect deleted RDs."""


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    """What a full sync changed in the cache."""

    written: int
    deleted: int
    unchanged: int
    kept_newer: int


def replace_all(
    conn: sa.Connection,
    now: float,
    records: Iterable[VolumeRecord],
    *,
    started_at: float,
    pools: Collection[str] | None,
    retention: float,
) -> ReplaceResult:
    """Apply one listing inside the caller's write transaction."""
    if started_at < now - retention:
        raise StaleSyncError(
            f"sync listing from {now - started_at:.0f}s ago is older than "
            f"the tombstone retention ({retention:.0f}s)"
        )
    current = _current(conn)
    # .all(): a Result has keys(), so dict() would take it for a mapping
    buried: dict[str, float] = dict(
        conn.execute(sa.select(tombstones.c.rd_key, tombstones.c.deleted_at)).all()
    )
    listed: dict[str, VolumeRecord] = {name_key(r.rd_name): r for r in records}
    writes: list[VolumeRecord] = []
    unchanged = kept = 0
    for rd_key, record in listed.items():
        old = current.get(rd_key)
        if buried.get(rd_key, 0.0) > started_at or (old is not None and old[1] > started_at):
            kept += 1
        elif old is not None and old[0] == volume_values(record) and old[2] == record.snapshots:
            unchanged += 1
        else:
            writes.append(record)
    scope = None if pools is None else {name_key(p) for p in pools}
    gone = [
        rd_key
        for rd_key, (values, updated_at, _) in current.items()
        if rd_key not in listed
        and updated_at <= started_at
        and (scope is None or name_key(values.pool) in scope)
    ]

    written_keys = [name_key(r.rd_name) for r in writes]
    upsert(conn, volumes, [volume_row(r, started_at) for r in writes], ["rd_key"])
    # only rows that exist are deleted: on a first sync, every key is new
    delete_by_rd(conn, snapshots, [k for k in written_keys if k in current and current[k][2]])
    snapshot_params = [row for r in writes for row in snapshot_rows(r)]
    if snapshot_params:
        conn.execute(snapshots.insert(), snapshot_params)
    delete_by_rd(conn, tombstones, [k for k in written_keys if k in buried])
    bury(conn, gone, started_at)
    conn.execute(tombstones.delete().where(tombstones.c.deleted_at < now - retention))
    return ReplaceResult(written=len(writes), deleted=len(gone), unchanged=unchanged, kept_newer=kept)


def _current(conn: sa.Connection) -> dict[str, tuple[VolumeValues, float, dict[str, str]]]:
    """Every cached volume: its content, stamp and snapshots."""
    current: dict[str, tuple[VolumeValues, float, dict[str, str]]] = {
        row[0]: (VolumeValues(*row[1:-1]), float(row[-1]), {})
        for row in conn.execute(sa.select(*VOLUME_COLUMNS))
    }
    for rd_key, name, linstor_name in conn.execute(
        sa.select(snapshots.c.rd_key, snapshots.c.name, snapshots.c.linstor_name)
    ):
        entry = current.get(rd_key)
        if entry is not None:
            entry[2][name] = linstor_name
    return current
