"""Reference profiles and detector results.

Revision ID: 0003_references_results
Revises: 0002_record_counts
Create Date: 2025-11-26

``references`` keeps every reference profile of a model (``ReferenceProfile.to_bytes()``)
with a display summary; versions are "1", "2", ... per model and exactly one is active.
``results`` is the time series of detector outcomes: one row per window, kind (feature
drift, quality, latency, ...), feature and method. Both tables are new, so earlier data
is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_references_results"
down_revision: str | Sequence[str] | None = "0002_record_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only autoincrements an INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "references",  # a reserved word in SQL: SQLAlchemy quotes it on every backend
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),  # epoch seconds
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("profile", sa.LargeBinary(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_references"),
        sa.UniqueConstraint("model", "version", name="uq_references_model_version"),
    )
    op.create_index("ix_references_model_active", "references", ["model", "active"])
    op.create_table(
        "results",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("window_seq", sa.BigInteger(), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=True),
        sa.Column("window_end", sa.Double(), nullable=True),
        sa.Column("reference_version", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("feature", sa.String(256), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("statistic", sa.Double(), nullable=True),
        sa.Column("pvalue", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("drift", sa.Boolean(), nullable=False),
        sa.Column("n_reference", sa.BigInteger(), nullable=True),
        sa.Column("n_current", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),  # epoch seconds
        sa.PrimaryKeyConstraint("id", name="pk_results"),
    )
    op.create_index("ix_results_model_kind_feature_seq", "results", ["model", "kind", "feature", "window_seq"])
    op.create_index("ix_results_model_created_at", "results", ["model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_results_model_created_at", table_name="results")
    op.drop_index("ix_results_model_kind_feature_seq", table_name="results")
    op.drop_table("results")
    op.drop_index("ix_references_model_active", table_name="references")
    op.drop_table("references")
