"""Initial schema: monitored models and dead letters.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-25

``models`` holds every monitored model, whether declared in the config file or
registered on first sight. ``dead_letters`` keeps each rejected item with the reason,
so a client can see what it sent and why it was refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only autoincrements an INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),  # epoch seconds
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_models"),
        sa.CheckConstraint("source IN ('config', 'registered')", name="ck_models_source"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("received_at", sa.Double(), nullable=False),  # epoch seconds
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("item_index", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("raw_bytes", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        # AUTOINCREMENT: ids are never reused after a trim, so "newest first" by id stays true.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])
    op.create_index("ix_dead_letters_model_reason", "dead_letters", ["model", "reason"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_model_reason", table_name="dead_letters")
    op.drop_index("ix_dead_letters_received_at", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("models")
