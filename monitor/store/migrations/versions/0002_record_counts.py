"""Record counts per (model, source), persisted so totals survive restarts.

Revision ID: 0002_record_counts
Revises: 0001_initial
Create Date: 2025-11-25

The pipeline keeps counters in memory and adds them here periodically; ``joined``,
``incomplete`` and ``evicted`` describe the join of partial records, ``labels_*`` the
late join of ground-truth labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_record_counts"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNT_COLUMNS = (
    "received",
    "accepted",
    "rejected",
    "duplicates",
    "joined",
    "incomplete",
    "evicted",
    "labels_joined",
    "labels_unmatched",
)


def upgrade() -> None:
    op.create_table(
        "record_counts",
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0")) for name in COUNT_COLUMNS),
        sa.Column("updated_at", sa.Double(), nullable=False),  # epoch seconds
        sa.PrimaryKeyConstraint("model", "source", name="pk_record_counts"),
    )


def downgrade() -> None:
    op.drop_table("record_counts")
