"""Reference estimators: what was fitted on a reference file for estimates before labels come.

Revision ID: 0010_reference_estimators
Revises: 0009_histograms (see ``down_revision``)
Create Date: 2026-12-06

A nullable ``estimators`` column on ``references``: the bytes of
``detectors.estimation.window.Estimators.to_bytes()`` (CBPE calibration, PCA, the domain
classifier's and the loss model's bounded rows; a few MB at most), so a restart restores the
estimators of the active reference identically without its file. Null: nothing fitted (a
reference built from the first records, or stored before this revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_reference_estimators"
down_revision: str | Sequence[str] | None = "0009_histograms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite adds a column in place; the batch form keeps one code path for both.
    with op.batch_alter_table("references") as batch:
        batch.add_column(sa.Column("estimators", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("references") as batch:
        batch.drop_column("estimators")
