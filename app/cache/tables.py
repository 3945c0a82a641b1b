"""The cache's tables: SQLModel models, the schema Alembic migrates (migrations/versions).

LINSTOR names are case-insensitive, so every LINSTOR name is stored twice: as LINSTOR displays it, and
upper-cased in a `*_key` column that lookups use. No foreign keys: the repository deletes a volume's
snapshot rows itself, and SQLite would need PRAGMA foreign_keys (off by default) to honour them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def name_key(name: str) -> str:
    """The form of a LINSTOR name (RD, resource group, snapshot) used to look it up case-insensitively."""
    return name.upper()


class Volume(SQLModel, table=True):
    """One resource definition that is a volume; several may share one identity (a conflict)."""

    __tablename__ = "volumes"
    # not unique: LINSTOR may hold two RDs with the same identity, and the service reports the conflict
    __table_args__ = (sa.Index("ix_volumes_identity", "pool_key", "project", "type", "name"),)

    rd_key: str = Field(primary_key=True, sa_type=sa.String())
    rd_name: str = Field(sa_type=sa.String())
    pool: str = Field(sa_type=sa.String())
    pool_key: str = Field(sa_type=sa.String())
    project: str = Field(sa_type=sa.String())
    type: str = Field(sa_type=sa.String())
    name: str = Field(sa_type=sa.String())
    content_type: str = Field(sa_type=sa.String())
    description: str | None = Field(default=None, sa_type=sa.String())
    # sizes by volume number, comma-separated: the same plain text on every backend and driver
    volume_sizes_kib: str = Field(default="", sa_type=sa.String())
    # epoch seconds of the write, on the database's clock (see store.py for how syncs use it)
    updated_at: float = Field(sa_type=sa.Float())
    # 64 bits of a hash of the row's content and snapshots (queries.fingerprint): a full sync compares it
    # instead of every column; NULL (a row from before migration 0003) never matches, so the row is rewritten
    fingerprint: int | None = Field(default=None, sa_type=sa.BigInteger())


class Snapshot(SQLModel, table=True):
    """One Incus snapshot of a volume and the LINSTOR snapshot that holds it."""

    __tablename__ = "snapshots"
    __table_args__ = (sa.Index("ix_snapshots_linstor_key", "linstor_key"),)

    rd_key: str = Field(primary_key=True, sa_type=sa.String())
    name: str = Field(primary_key=True, sa_type=sa.String())
    linstor_name: str = Field(sa_type=sa.String())
    linstor_key: str = Field(sa_type=sa.String())


class Tombstone(SQLModel, table=True):
    """A resource definition known to be gone at `deleted_at`: no older sync may bring it back."""

    __tablename__ = "tombstones"

    rd_key: str = Field(primary_key=True, sa_type=sa.String())
    deleted_at: float = Field(sa_type=sa.Float())


class SyncState(SQLModel, table=True):
    """The cache's single bookkeeping row."""

    __tablename__ = "sync_state"

    id: int = Field(primary_key=True, sa_type=sa.Integer(), sa_column_kwargs={"autoincrement": False})
    last_full_sync: float | None = Field(default=None, sa_type=sa.Float())


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key: its first request's fingerprint, and that request's answer once it is final."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.Index("ix_idempotency_keys_expires_at", "expires_at"),)

    # the primary key is the claim: of two requests inserting one key (any replicas), the second fails
    key: str = Field(primary_key=True, sa_type=sa.String())
    fingerprint: str = Field(sa_type=sa.String())
    # a random token of the request holding the key: a request that outlived its lease cannot overwrite
    # or release the row of the request that took the key over
    owner: str = Field(sa_type=sa.String())
    created_at: float = Field(sa_type=sa.Float())
    # while the first request runs: the end of its lease; once answered: the end of the replay window
    expires_at: float = Field(sa_type=sa.Float())
    status: int | None = Field(default=None, sa_type=sa.Integer())  # NULL while the first request runs
    headers: str | None = Field(default=None, sa_type=sa.String())  # JSON [[name, value], ...]
    body: bytes | None = Field(default=None, sa_type=sa.LargeBinary())


volumes = Volume.__table__  # type: ignore[attr-defined]
snapshots = Snapshot.__table__  # type: ignore[attr-defined]
tombstones = Tombstone.__table__  # type: ignore[attr-defined]
sync_state = SyncState.__table__  # type: ignore[attr-defined]
idempotency_keys = IdempotencyKey.__table__  # type: ignore[attr-defined]
metadata = SQLModel.metadata
