"""Kafka checkpoints: consumed offsets and the model state they produced, written in one
transaction so a restarted or rebalanced consumer resumes exactly where the state stands.

Revision ID: 0006_kafka_checkpoints
Revises: 0005_webhook_outbox
Create Date: 2026-11-25

``kafka_offsets`` holds, per consumer group and partition, the next offset to read;
``model_checkpoints`` holds, per consumer group and model, the serialised model state
(windows, counts, partial records awaiting their join) as of those offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_kafka_checkpoints"
down_revision: str | Sequence[str] | None = "0005_webhook_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kafka_offsets",
        sa.Column("group_id", sa.String(256), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "topic", "partition", name="pk_kafka_offsets"),
    )
    op.create_table(
        "model_checkpoints",
        sa.Column("group_id", sa.String(256), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        # The partitions ("topic/partition") that fed the model: their next owner restores it.
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "model", name="pk_model_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("model_checkpoints")
    op.drop_table("kafka_offsets")
