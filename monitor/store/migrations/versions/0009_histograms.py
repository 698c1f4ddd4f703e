"""Histograms: what each evaluated window looked like, so pages and reports can draw it.

Revision ID: 0009_histograms
Revises: 0008_instance_checkpoints (see ``down_revision``)
Create Date: 2026-12-05

One row per (model, reference version, window, channel): the reference's and the window's
counts in the reference's bins or categories, with the bin edges or category names
(``data``, JSON, a few KB at most). Pruned by ``storage.histogram_retention_days``.
The table stands alone (no foreign key, no change to another table), so this revision can
sit anywhere after 0001 in the chain: ``down_revision`` is the one line to change when
another revision is put before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_histograms"
down_revision: str | Sequence[str] | None = "0008_instance_checkpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "histograms",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("reference_version", sa.String(64), nullable=False),
        sa.Column("window_seq", sa.BigInteger(), nullable=False),
        sa.Column("feature", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("window_end", sa.Double(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_histograms"),
        sa.UniqueConstraint("model", "reference_version", "window_seq", "feature", name="uq_histograms_window_feature"),
    )
    op.create_index("ix_histograms_model_feature_seq", "histograms", ["model", "feature", "window_seq"])
    op.create_index("ix_histograms_model_created_at", "histograms", ["model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_histograms_model_created_at", table_name="histograms")
    op.drop_index("ix_histograms_model_feature_seq", table_name="histograms")
    op.drop_table("histograms")
