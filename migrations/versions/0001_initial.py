"""Initial cache schema: volumes, snapshots, tombstones, sync_state.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the cache's tables."""
    op.create_table(
        "volumes",
        sa.Column("rd_key", sa.String(), nullable=False),
        sa.Column("rd_name", sa.String(), nullable=False),
        sa.Column("pool", sa.String(), nullable=False),
        sa.Column("pool_key", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("volume_sizes_kib", sa.String(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("rd_key"),
    )
    op.create_index("ix_volumes_identity", "volumes", ["pool_key", "project", "type", "name"], unique=False)
    op.create_table(
        "snapshots",
        sa.Column("rd_key", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("linstor_name", sa.String(), nullable=False),
        sa.Column("linstor_key", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("rd_key", "name"),
    )
    op.create_index("ix_snapshots_linstor_key", "snapshots", ["linstor_key"], unique=False)
    op.create_table(
        "tombstones",
        sa.Column("rd_key", sa.String(), nullable=False),
        sa.Column("deleted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("rd_key"),
    )
    op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_full_sync", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Drop the cache's tables."""
    op.drop_table("sync_state")
    op.drop_table("tombstones")
    op.drop_index("ix_snapshots_linstor_key", table_name="snapshots")
    op.drop_table("snapshots")
    op.drop_index("ix_volumes_identity", table_name="volumes")
    op.drop_table("volumes")
