"""A full sync's write: make the cache match one LINSTOR listing without undoing newer writes.

The rule, for a listing taken after `started_at` (all stamps on the database's clock, see store.py):

* a row or tombstone stamped after `started_at` was written by a write-through or by a newer sync of
  another replica: the listing may predate that change, so the row or tombstone wins;
* every other listed volume is written (stamped `started_at`) unless its row already holds the same
  content (the same fingerprint, queries.fingerprint), so a steady-state sync writes nothing;
* every other row of a synced pool that the listing lacks is deleted and leaves a tombstone stamped
  `started_at`, so an older sync that commits later cannot bring it back;
* tombstones are kept for `retention` seconds, and a sync whose `started_at` is older than that is
  refused: the tombstones that protect against it may be gone.

Writers are serialized (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE), so the comparison and
the writes see one state.

A listing holds every listed volume's fingerprint but the records of only those the sync expects to write:
the ones whose fingerprint differed from the cache's when it was listed (sync.py). Should the comparison
here find another to write (a replica's sync or a rebuild changed the row in between, stamped with a time
before this listing's), MissingRecords says so and nothing is written: the sync lists again, keeping every
record.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from app.cache.queries import bury, delete_by_rd, fingerprint, snapshot_rows, upsert, volume_row
from app.cache.tables import name_key, snapshots, tombstones, volumes
from app.identity import VolumeRecord

# Rows of one INSERT … ON CONFLICT: a first sync of 100k volumes never holds all their parameters at once.
WRITE_CHUNK = 2000


class StaleSyncError(RuntimeError):
    """A sync's listing is older than the tombstone retention: applying it could resurrect deleted RDs."""


class MissingRecords(RuntimeError):
    """A listed volume must be written, but the listing kept only its fingerprint (see the module's doc)."""


@dataclass(slots=True)
class Listing:
    """What a sync listed: every volume's fingerprint by rd_key, and the records it may have to write.

    A sync's fingerprint is that of the listed RD's inputs to the decoder (sync.py), so an unchanged RD is
    never decoded. A row written through (store.put) holds its record's fingerprint, as a listing of records
    does (`of`), which no listed RD's matches: the next sync of LINSTOR's listing rewrites it once.
    """

    fingerprints: dict[str, int] = field(default_factory=dict)
    records: dict[str, VolumeRecord] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[VolumeRecord]) -> Listing:
        """A listing that keeps every record."""
        listing = cls()
        for record in records:
            rd_key = name_key(record.rd_name)
            listing.fingerprints[rd_key] = fingerprint(record)
            listing.records[rd_key] = record
        return listing


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
    listing: Listing,
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
    current = _current(conn, with_pools=pools is not None)
    # .all(): a Result has keys(), so dict() would take it for a mapping
    buried: dict[str, float] = dict(
        conn.execute(sa.select(tombstones.c.rd_key, tombstones.c.deleted_at)).all()
    )
    writes: list[VolumeRecord] = []
    unchanged = kept = missing = 0
    for rd_key, print_ in listing.fingerprints.items():
        old = current.get(rd_key)
        if buried.get(rd_key, 0.0) > started_at or (old is not None and old[1] > started_at):
            kept += 1
        elif old is not None and old[0] == print_:
            unchanged += 1
        elif (record := listing.records.get(rd_key)) is not None:
            writes.append(record)
        else:
            missing += 1
    if missing:
        raise MissingRecords(f"{missing} listed volumes changed in the cache since they were listed")
    scope = None if pools is None else {name_key(p) for p in pools}
    gone = [
        rd_key
        for rd_key, (_, updated_at, pool_key) in current.items()
        if rd_key not in listing.fingerprints
        and updated_at <= started_at
        and (scope is None or pool_key in scope)
    ]

    written_keys = [name_key(r.rd_name) for r in writes]
    for start in range(0, len(writes), WRITE_CHUNK):
        chunk = writes[start : start + WRITE_CHUNK]
        rows = [volume_row(r, started_at, listing.fingerprints[name_key(r.rd_name)]) for r in chunk]
        upsert(conn, volumes, rows, ["rd_key"])
    # only rows that exist are deleted: on a first sync, every key is new
    delete_by_rd(conn, snapshots, [k for k in written_keys if k in current])
    for start in range(0, len(writes), WRITE_CHUNK):
        snapshot_params = [row for r in writes[start : start + WRITE_CHUNK] for row in snapshot_rows(r)]
        if snapshot_params:
            conn.execute(snapshots.insert(), snapshot_params)
    delete_by_rd(conn, tombstones, [k for k in written_keys if k in buried])
    bury(conn, gone, started_at)
    conn.execute(tombstones.delete().where(tombstones.c.deleted_at < now - retention))
    return ReplaceResult(written=len(writes), deleted=len(gone), unchanged=unchanged, kept_newer=kept)


def _current(conn: sa.Connection, *, with_pools: bool) -> dict[str, tuple[int | None, float, str | None]]:
    """Every cached volume: its fingerprint, stamp and (`with_pools`) pool key; no content is loaded."""
    pool = volumes.c.pool_key if with_pools else sa.null()
    rows = conn.execute(sa.select(volumes.c.rd_key, volumes.c.fingerprint, volumes.c.updated_at, pool))
    return {rd_key: (print_, float(updated_at), pool_key) for rd_key, print_, updated_at, pool_key in rows}
