"""Instance checkpoints: the state of the models no Kafka partition owns (fed over HTTP,
CloudEvents or files), per service instance, so open windows survive a restart.

Revision ID: 0008_instance_checkpoints
Revises: 0007_dead_letter_sizes
Create Date: 2026-12-05

``instance_checkpoints`` holds, per instance id (``storage.instance_id``) and model, the
serialised model state (windows, counts, partial records, predictions awaiting labels,
alert-engine states) and when it was taken. The record counts it covers are added to
``record_counts`` in the same transaction as the state.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_instance_checkpoints"
down_revision: str | Sequence[str] | None = "0007_dead_letter_sizes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_checkpoints",
        sa.Column("instance_id", sa.String(256), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        # When the state was taken (epoch s): what was accepted before it is in it.
        sa.Column("taken_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "model", name="pk_instance_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("instance_checkpoints")
