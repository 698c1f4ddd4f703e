"""Histogram slices: which slice of the traffic a histogram row is of.

Revision ID: 0014_histogram_slices
Revises: 0013_reference_model_versions (see ``down_revision``)
Create Date: 2026-12-06

``histograms.segment``: the segment a row was drawn from ("region:eu"; '' for the whole
population, which every existing row is), as ``results.segment`` (0011). The unique key of
a window's channel gains it: a slice's window and the whole population's may have the same
number. Only this table changes, so ``down_revision`` is the one line to change when another
revision is put before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_histogram_slices"
down_revision: str | Sequence[str] | None = "0013_reference_model_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ["model", "reference_version", "window_seq", "feature"]


def upgrade() -> None:
    with op.batch_alter_table("histograms") as batch:  # SQLite changes constraints by copying the table
        batch.add_column(sa.Column("segment", sa.Text(), nullable=False, server_default=""))
        batch.drop_constraint("uq_histograms_window_feature", type_="unique")
        batch.create_unique_constraint("uq_histograms_window_feature_segment", [*_KEY, "segment"])


def downgrade() -> None:
    op.execute("DELETE FROM histograms WHERE segment <> ''")  # the old key cannot hold slices' rows
    with op.batch_alter_table("histograms") as batch:
        batch.drop_constraint("uq_histograms_window_feature_segment", type_="unique")
        batch.create_unique_constraint("uq_histograms_window_feature", _KEY)
        batch.drop_column("segment")
