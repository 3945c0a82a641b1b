"""Every SQL statement of the cache, and the conversion between rows and VolumeRecords.

Reads select a volume's columns joined with its snapshots (one row per snapshot, or one row with NULL
snapshot columns), so a lookup is one round trip on every backend.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from app.cache.tables import idempotency_keys, name_key, snapshots, sync_state, tombstones, volumes
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType

SYNC_STATE_ID = 1
DELETE_CHUNK = 1000


class CachedVolume(NamedTuple):
    """A cached volume and when its row was written (epoch seconds, the database's clock)."""

    record: VolumeRecord
    updated_at: float


# The volume columns in the order of VolumeValues, then updated_at; rows from every query start with them.
VOLUME_COLUMNS = (
    volumes.c.rd_key,
    volumes.c.rd_name,
    volumes.c.pool,
    volumes.c.project,
    volumes.c.type,
    volumes.c.name,
    volumes.c.content_type,
    volumes.c.description,
    volumes.c.volume_sizes_kib,
    volumes.c.updated_at,
)
_UPDATED_AT = len(VOLUME_COLUMNS) - 1
_SNAPSHOT_NAME = len(VOLUME_COLUMNS)
_WITH_SNAPSHOTS = volumes.outerjoin(snapshots, snapshots.c.rd_key == volumes.c.rd_key)
_SELECT = sa.select(*VOLUME_COLUMNS, snapshots.c.name, snapshots.c.linstor_name).select_from(_WITH_SNAPSHOTS)

BY_RD = _SELECT.where(volumes.c.rd_key == sa.bindparam("rd_key"))
BY_KEY = _SELECT.where(
    volumes.c.pool_key == sa.bindparam("pool_key"),
    volumes.c.project == sa.bindparam("project"),
    volumes.c.type == sa.bindparam("type"),
    volumes.c.name == sa.bindparam("name"),
)
# The owner's rd_key as a scalar subquery: the plan stays two index lookups even before PostgreSQL has
# statistics (a join here was planned as a hash join over every snapshot on a freshly filled cache).
# LINSTOR snapshot names are random, so one owner; should two claim a name, the first RD wins.
_OWNER = (
    sa.select(sa.func.min(snapshots.c.rd_key))
    .where(snapshots.c.linstor_key == sa.bindparam("linstor_key"))
    .scalar_subquery()
)
BY_SNAPSHOT = _SELECT.where(volumes.c.rd_key == _OWNER)
CLOCK_SQL = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
# the lock serializing every writer of a shared PostgreSQL cache, taken before the clock is read
LOCK_AND_CLOCK_SQL = f"SELECT ({CLOCK_SQL}) FROM (SELECT pg_advisory_xact_lock(:lock)) AS locked"

_sqlite_named = SQLiteDialect_pysqlite(paramstyle="named")


def sqlite_sql(statement: sa.Executable) -> str:
    """The statement as SQL with :name parameters, for sqlite3 itself (the ~4 µs path)."""
    return str(statement.compile(dialect=_sqlite_named))  # type: ignore[attr-defined]


def list_statement(pool: str, project: str | None, type_: VolumeType | None) -> sa.Select[Any]:
    """Volumes of a pool, optionally of one project and type."""
    statement = _SELECT.where(volumes.c.pool_key == name_key(pool))
    if project is not None:
        statement = statement.where(volumes.c.project == project)
    if type_ is not None:
        statement = statement.where(volumes.c.type == type_.value)
    return statement


def key_params(key: VolumeKey) -> dict[str, str]:
    """Parameters of BY_KEY."""
    return {"pool_key": name_key(key.pool), "project": key.project, "type": key.type.value, "name": key.name}


def collect(rows: Iterable[Sequence[Any]]) -> list[CachedVolume]:
    """Volumes from joined rows, in the order each volume first appears."""
    grouped: dict[str, tuple[Sequence[Any], dict[str, str]]] = {}
    for row in rows:
        entry = grouped.get(row[0])
        if entry is None:
            entry = grouped[row[0]] = (row, {})
        if row[_SNAPSHOT_NAME] is not None:
            entry[1][row[_SNAPSHOT_NAME]] = row[_SNAPSHOT_NAME + 1]
    return [_cached(row, snaps) for row, snaps in grouped.values()]


_TYPES = {t.value: t for t in VolumeType}
_CONTENT_TYPES = {c.value: c for c in ContentType}


def _cached(row: Sequence[Any], snaps: dict[str, str]) -> CachedVolume:
    # dict lookups instead of Enum calls: this runs 100k times for a big pool's listing
    sizes = row[8]
    record = VolumeRecord(
        key=VolumeKey(row[2], row[3], _TYPES[row[4]], row[5]),
        rd_name=row[1],
        content_type=_CONTENT_TYPES[row[6]],
        description=row[7],
        volume_sizes_kib=tuple(map(int, sizes.split(","))) if sizes else (),
        snapshots=dict(sorted(snaps.items())) if len(snaps) > 1 else snaps,
    )
    return CachedVolume(record, row[_UPDATED_AT])


def sort_key(volume: CachedVolume) -> tuple[str, str, str, str]:
    """Listing order: project, type, name (then RD), by code point on every backend."""
    key = volume.record.key
    return (key.project, key.type.value, key.name, volume.record.rd_name)


class VolumeValues(NamedTuple):
    """A volume row's content without its key and stamp: what a sync compares."""

    rd_name: str
    pool: str
    project: str
    type: str
    name: str
    content_type: str
    description: str | None
    volume_sizes_kib: str


def volume_values(record: VolumeRecord) -> VolumeValues:
    """The row content of a record."""
    key = record.key
    return VolumeValues(
        record.rd_name,
        key.pool,
        key.project,
        key.type.value,
        key.name,
        record.content_type.value,
        record.description,
        ",".join(str(size) for size in record.volume_sizes_kib),
    )


def fingerprint_of(content: Any) -> int:
    """A signed 64-bit hash of JSON-able `content`: equal on every replica and every run."""
    return int.from_bytes(hashlib.blake2b(orjson.dumps(content), digest_size=8).digest(), "big", signed=True)


def fingerprint(record: VolumeRecord) -> int:
    """The fingerprint of everything a record's rows hold (a listing of records, not of LINSTOR's RDs)."""
    return fingerprint_of(["record", tuple(volume_values(record)), sorted(record.snapshots.items())])


def volume_row(record: VolumeRecord, updated_at: float, fingerprint: int | None = None) -> dict[str, Any]:
    """The parameters of a volume upsert; `fingerprint` that of the listed RD it was decoded from."""
    values = volume_values(record)._asdict()
    values.update(
        rd_key=name_key(record.rd_name),
        pool_key=name_key(record.key.pool),
        updated_at=updated_at,
        fingerprint=fingerprint,
    )
    return values


def snapshot_rows(record: VolumeRecord) -> list[dict[str, str]]:
    """The parameters of a volume's snapshot inserts."""
    rd_key = name_key(record.rd_name)
    return [
        {"rd_key": rd_key, "name": name, "linstor_name": linstor, "linstor_key": name_key(linstor)}
        for name, linstor in record.snapshots.items()
    ]


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE every other column, on SQLite or PostgreSQL."""
    if not rows:
        return
    conn.execute(_upsert_statement(conn.dialect.name, table, tuple(key)), list(rows))


@functools.cache
def _upsert_statement(dialect: str, table: sa.Table, key: tuple[str, ...]) -> Any:
    # built once per table: `excluded` proxies every column anew, over half of a write-through's time
    statement = _insert_of(dialect)(table)
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in key}
    return statement.on_conflict_do_update(index_elements=list(key), set_=updates)


def delete_by_rd(conn: sa.Connection, table: sa.Table, rd_keys: Sequence[str]) -> None:
    """Delete the rows of these RDs from a table keyed by rd_key."""
    # chunks: one statement per key is slow on PostgreSQL, one for all would pass the parameter limits
    for start in range(0, len(rd_keys), DELETE_CHUNK):
        conn.execute(table.delete().where(table.c.rd_key.in_(rd_keys[start : start + DELETE_CHUNK])))


# ---- write-through: one volume's statements, run by SQLAlchemy (any backend) or by sqlite3 itself --------

Params = dict[str, Any] | list[dict[str, Any]]  # one statement's parameters, or its rows (executemany)
Writes = list[tuple[sa.Executable, Params]]

_ONE_RD: sa.BindParameter[str] = sa.bindparam("rd_key")
# built once: building a statement anew costs ~30 µs of SQLAlchemy a write-through
_DELETE_VOLUME_OF = volumes.delete().where(volumes.c.rd_key == _ONE_RD)
_DELETE_SNAPSHOTS_OF = snapshots.delete().where(snapshots.c.rd_key == _ONE_RD)
_DELETE_TOMBSTONE_OF = tombstones.delete().where(tombstones.c.rd_key == _ONE_RD)
_INSERT_SNAPSHOTS = snapshots.insert()


def volume_writes(dialect: str, record: VolumeRecord, updated_at: float) -> Writes:
    """Upsert one volume and replace its snapshot rows; clear its tombstone."""
    rd = {"rd_key": name_key(record.rd_name)}
    row = volume_row(record, updated_at, fingerprint(record))
    writes: Writes = [(_upsert_statement(dialect, volumes, ("rd_key",)), [row]), (_DELETE_SNAPSHOTS_OF, rd)]
    if record.snapshots:
        writes.append((_INSERT_SNAPSHOTS, snapshot_rows(record)))
    writes.append((_DELETE_TOMBSTONE_OF, rd))
    return writes


def burial_writes(dialect: str, rd_name: str, deleted_at: float) -> Writes:
    """Delete one volume and its snapshots, leaving a tombstone stamped `deleted_at` (`bury` of one RD)."""
    rd = {"rd_key": name_key(rd_name)}
    tombstone = [{**rd, "deleted_at": deleted_at}]
    return [
        (_DELETE_VOLUME_OF, rd),
        (_DELETE_SNAPSHOTS_OF, rd),
        (_upsert_statement(dialect, tombstones, ("rd_key",)), tombstone),
    ]


def run_writes(conn: sa.Connection, writes: Writes) -> None:
    """Execute `writes` on a SQLAlchemy connection, in its transaction."""
    for statement, params in writes:
        conn.execute(statement, params)


def bury(conn: sa.Connection, rd_keys: Sequence[str], deleted_at: float) -> None:
    """Delete volumes and their snapshots, leaving tombstones stamped `deleted_at`."""
    delete_by_rd(conn, volumes, rd_keys)
    delete_by_rd(conn, snapshots, rd_keys)
    upsert(conn, tombstones, [{"rd_key": k, "deleted_at": deleted_at} for k in rd_keys], ["rd_key"])


def read_last_sync(conn: sa.Connection) -> float | None:
    """The last full sync's time, if any."""
    value = conn.execute(
        sa.select(sync_state.c.last_full_sync).where(sync_state.c.id == SYNC_STATE_ID)
    ).scalar_one_or_none()
    return None if value is None else float(value)


def write_last_sync(conn: sa.Connection, at: float | None) -> None:
    """Set the last full sync's time."""
    upsert(conn, sync_state, [{"id": SYNC_STATE_ID, "last_full_sync": at}], ["id"])


# ---- idempotency keys (app/api/idempotency.py) ----------------------------------------------------------


class StoredAnswer(NamedTuple):
    """The final answer to a key's first request: what a retry with the key is answered."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class KeyClaim(NamedTuple):
    """A key as a request found it: held by this request (`held`), or by an earlier one."""

    held: bool
    owner: str
    fingerprint: str
    answer: StoredAnswer | None  # None while the holder runs


_KEYS = idempotency_keys.c
# built once, bound per call: building them anew cost more than running them
_TAKE_OVER = idempotency_keys.delete().where(
    _KEYS.key == sa.bindparam("key"), _KEYS.expires_at <= sa.bindparam("now")
)
_READ_KEY = sa.select(_KEYS.owner, _KEYS.fingerprint, _KEYS.status, _KEYS.headers, _KEYS.body).where(
    _KEYS.key == sa.bindparam("key")
)
# an UPDATE's parameters are named apart from its table's columns, names SQLAlchemy reserves for itself
_HOLDER = (
    _KEYS.key == sa.bindparam("held_key"),
    _KEYS.owner == sa.bindparam("held_owner"),
    _KEYS.status.is_(None),
)
_ANSWER = (
    idempotency_keys.update()
    .where(*_HOLDER)
    .values(
        status=sa.bindparam("answer_status"),
        headers=sa.bindparam("answer_headers"),
        body=sa.bindparam("answer_body"),
        expires_at=sa.bindparam("until"),
    )
)
_RELEASE = idempotency_keys.delete().where(*_HOLDER)


def take_over_expired_key(conn: sa.Connection, key: str, now: float) -> None:
    """Delete the key's row if it has expired: a replay window that ended, or a holder that never answered."""
    conn.execute(_TAKE_OVER, {"key": key, "now": now})


def insert_key(conn: sa.Connection, key: str, fingerprint: str, owner: str, now: float, lease: float) -> bool:
    """Claim a free key for `owner` until `now + lease`; False when a row holds it already."""
    row = {
        "key": key,
        "fingerprint": fingerprint,
        "owner": owner,
        "created_at": now,
        "expires_at": now + lease,
    }
    return conn.execute(_insert_key_statement(conn.dialect.name), row).first() is not None


@functools.cache
def _insert_key_statement(dialect: str) -> Any:
    # the key's primary key decides: of two concurrent inserts (any replicas) the second does nothing;
    # RETURNING tells which, where psycopg's rowcount of this statement does not
    insert = _insert_of(dialect)(idempotency_keys).on_conflict_do_nothing(index_elements=["key"])
    return insert.returning(_KEYS.key)


def read_key(conn: sa.Connection, key: str) -> KeyClaim | None:
    """The key's row as a claim held by someone else, or None when there is none."""
    row = conn.execute(_READ_KEY, {"key": key}).one_or_none()
    if row is None:
        return None
    answer = None
    if row.status is not None:
        headers = tuple((name, value) for name, value in json.loads(row.headers or "[]"))
        answer = StoredAnswer(row.status, headers, bytes(row.body or b""))
    return KeyClaim(held=False, owner=row.owner, fingerprint=row.fingerprint, answer=answer)


def answer_key(conn: sa.Connection, key: str, owner: str, answer: StoredAnswer, until: float) -> bool:
    """Store the holder's final answer, kept until `until`; False when `owner` no longer holds the key."""
    params = {
        "held_key": key,
        "held_owner": owner,
        "answer_status": answer.status,
        "answer_headers": json.dumps([list(header) for header in answer.headers]),
        "answer_body": answer.body,
        "until": until,
    }
    return conn.execute(_ANSWER, params).rowcount == 1


def release_key(conn: sa.Connection, key: str, owner: str) -> None:
    """Free a key its holder answered without a final answer, so that a retry with it runs again."""
    conn.execute(_RELEASE, {"held_key": key, "held_owner": owner})


def purge_keys(conn: sa.Connection, now: float, limit: int) -> int:
    """Delete up to `limit` expired keys (a bounded transaction however many expired at once)."""
    keys = idempotency_keys.c
    expired = sa.select(keys.key).where(keys.expires_at <= now).limit(limit)
    result = conn.execute(idempotency_keys.delete().where(keys.key.in_(expired)))
    return int(result.rowcount)


def _insert_of(dialect: str) -> Any:
    """The INSERT construct with ON CONFLICT of a dialect (by its name)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert
