"""Alerts: their current state, every transition, and the alert engine's saved state.

Revision ID: 0004_alerts
Revises: 0003_references_results
Create Date: 2026-11-25

``alerts`` has one row per alert episode (id ``rule:model:feature:n``) with its current
state; ``alert_transitions`` keeps every state change; ``engine_state`` holds the alert
engine's JSON state so that "for N windows" counts survive a restart.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_alerts"
down_revision: str | Sequence[str] | None = "0003_references_results"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(512), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("feature", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("fired_at", sa.Double(), nullable=True),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.Column("window_seq", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_state_model", "alerts", ["state", "model"])
    op.create_table(
        "alert_transitions",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.String(512), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("window_seq", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_transitions"),
    )
    op.create_index("ix_alert_transitions_alert", "alert_transitions", ["alert_id", "id"])
    op.create_table(
        "engine_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_engine_state"),
    )


def downgrade() -> None:
    op.drop_table("engine_state")
    op.drop_index("ix_alert_transitions_alert", table_name="alert_transitions")
    op.drop_table("alert_transitions")
    op.drop_index("ix_alerts_state_model", table_name="alerts")
    op.drop_table("alerts")
