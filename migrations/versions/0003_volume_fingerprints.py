"""Volume fingerprints: a hash of each row's content, so a full sync compares one column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add volumes.fingerprint (NULL until the next sync or write rewrites the row)."""
    with op.batch_alter_table("volumes") as batch:
        batch.add_column(sa.Column("fingerprint", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop volumes.fingerprint."""
    with op.batch_alter_table("volumes") as batch:
        batch.drop_column("fingerprint")
