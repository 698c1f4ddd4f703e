"""Instance label segments: the label buffer of the instance checkpoints, written as what
changed since the last checkpoint rather than whole each time.

Revision ID: 0012_instance_label_segments
Revises: 0011_result_slices (see ``down_revision``)
Create Date: 2026-12-06

``instance_label_segments`` holds, per instance id (``storage.instance_id``), the label
buffer's entries of the models no Kafka partition owns, in segments of consecutive entries
(monitor/label_checkpoints.py): a checkpoint rewrites the last segment, adds new ones and
deletes those whose entries have all left the buffer, in the same transaction as the model
states in ``instance_checkpoints``. Model states written before this revision still hold
their predictions awaiting labels themselves and are read as they are. The table stands
alone (no foreign key), so ``down_revision`` is the one line to change when another
revision is put before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_instance_label_segments"
down_revision: str | Sequence[str] | None = "0011_result_slices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_label_segments",
        sa.Column("instance_id", sa.String(256), nullable=False),
        # The segment's number: segments are read back in this order.
        sa.Column("segment", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "segment", name="pk_instance_label_segments"),
    )


def downgrade() -> None:
    op.drop_table("instance_label_segments")
