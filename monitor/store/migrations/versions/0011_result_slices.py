"""Result slices: which slice of the traffic a result row is of.

Revision ID: 0011_result_slices
Revises: 0010_reference_estimators (see ``down_revision``)
Create Date: 2026-12-06

``results.segment``: the segment a row was computed on ("region:eu", ``key:value``; ''
for the whole population, which every existing row is). ``results.model_version``: the
model version a row is of ('' for all versions; for the per-version windows that follow).
Both are added with a server default, so rows written by an older process, and the
existing rows, are whole-population rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_result_slices"
down_revision: str | Sequence[str] | None = "0010_reference_estimators"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("results", sa.Column("segment", sa.Text(), nullable=False, server_default=""))
    op.add_column("results", sa.Column("model_version", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("model_version")
        batch.drop_column("segment")
