"""Reference model versions: a reference may belong to one version of a model.

Revision ID: 0013_reference_model_versions
Revises: 0012_instance_label_segments (see ``down_revision``)
Create Date: 2026-12-06

``references.model_version``: the model version a reference is attached to
(``PUT /v1/models/{m}/versions/{v}/reference``, monitor/version_state.py), NULL for the
model's own reference, which every existing row is. The active reference is then one per
(model, model_version). Reference numbers ("1", "2", ...) stay one sequence per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_reference_model_versions"
down_revision: str | Sequence[str] | None = "0012_instance_label_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("references", sa.Column("model_version", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("references") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("model_version")
