"""The store's tables, as SQLAlchemy Core ``Table`` objects.

These describe the schema at the *head* migration; :mod:`monitor.store.database` and its mixins query through
them. The migrations in ``monitor/store/migrations/versions`` keep their own frozen copies of
each step (a migration must not change when this file does), and a test checks that
upgrading to head yields exactly these tables.

Portability rules (the same migrations run on SQLite and PostgreSQL): timestamps are
epoch seconds in a double column, counters are 64-bit, JSON goes in ``sa.JSON``, and
every constraint and index has an explicit name so later migrations can drop it.

How a dead letter becomes a row is in :mod:`monitor.store.dead_letters`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

MODEL_SOURCES = ("config", "registered")
# The counters kept per (model, source), in the order the columns are declared.
COUNT_COLUMNS = (
    "received",
    "accepted",
    "rejected",
    "duplicates",
    "joined",
    "incomplete",
    "evicted",
    "labels_joined",
    "labels_unmatched",
)
# Column widths; the store truncates to them because SQLite would not enforce them
# while PostgreSQL would refuse the whole batch.
SOURCE_LENGTH = 32
REASON_LENGTH = 64
MODEL_NAME_LENGTH = 256
MAX_TEXT = 4_096  # path and message are ours and short; a bound keeps a bug from bloating rows
VERSION_LENGTH = 64
RESULT_KIND_LENGTH = 32
METHOD_LENGTH = 64
REFERENCE_SOURCES = ("upload", "file", "first_records", "cli", "mlflow")

# SQLite only autoincrements an INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.PrimaryKeyConstraint("name", name="pk_models"),
    sa.CheckConstraint("source IN ('config', 'registered')", name="ck_models_source"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", BigId, nullable=False, autoincrement=True),
    sa.Column("received_at", sa.Double(), nullable=False),
    sa.Column("source", sa.String(SOURCE_LENGTH), nullable=False),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=True),
    sa.Column("item_index", sa.BigInteger(), nullable=False),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("reason", sa.String(REASON_LENGTH), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    # Always JSON text (decoded bytes become a JSON string), so reading it back is one json.loads;
    # cut to storage.dead_letter_max_item_bytes (then no longer valid JSON: raw_truncated says so).
    sa.Column("raw", sa.Text(), nullable=False),
    sa.Column("raw_bytes", sa.LargeBinary(), nullable=True),  # cut likewise
    sa.Column("headers", sa.JSON(none_as_null=True), nullable=True),
    # Migration 0007: the sizes before truncation (raw: its JSON text in UTF-8), whether each
    # was cut, and what the row stores in all, which the byte limit of the table counts.
    sa.Column("raw_size", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    sa.Column("raw_truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("raw_bytes_size", sa.BigInteger(), nullable=True),
    sa.Column("raw_bytes_truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    sa.Index("ix_dead_letters_received_at", "received_at"),
    sa.Index("ix_dead_letters_model_reason", "model", "reason"),
    # AUTOINCREMENT: ids are never reused after a trim, so "newest first" by id stays true.
    sqlite_autoincrement=True,
)

record_counts = sa.Table(
    "record_counts",
    metadata,
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("source", sa.String(SOURCE_LENGTH), nullable=False),
    *(sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0")) for name in COUNT_COLUMNS),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint("model", "source", name="pk_record_counts"),
)

# Reference profiles per model: versions "1", "2", ... (assigned by the store), one active.
references = sa.Table(
    "references",
    metadata,
    sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("version", sa.String(VERSION_LENGTH), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("source", sa.String(SOURCE_LENGTH), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("profile", sa.LargeBinary(), nullable=False),  # ReferenceProfile.to_bytes()
    sa.Column("summary", sa.JSON(), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    # detectors.estimation.window.Estimators.to_bytes(): fitted on the reference file (0010)
    sa.Column("estimators", sa.LargeBinary(), nullable=True),
    # The model version it is attached to (0013); NULL: the model's own. One active per (model, model_version).
    sa.Column("model_version", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_references"),
    sa.UniqueConstraint("model", "version", name="uq_references_model_version"),
    sa.Index("ix_references_model_active", "model", "active"),
)

# One row per detector outcome: per window, kind, feature and method.
results = sa.Table(
    "results",
    metadata,
    sa.Column("id", BigId, nullable=False, autoincrement=True),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("window_seq", sa.BigInteger(), nullable=False),
    sa.Column("window_start", sa.Double(), nullable=True),
    sa.Column("window_end", sa.Double(), nullable=True),
    sa.Column("reference_version", sa.String(VERSION_LENGTH), nullable=True),
    sa.Column("kind", sa.String(RESULT_KIND_LENGTH), nullable=False),
    sa.Column("feature", sa.String(MODEL_NAME_LENGTH), nullable=False),  # '' when not per feature
    sa.Column("method", sa.String(METHOD_LENGTH), nullable=False),
    sa.Column("statistic", sa.Double(), nullable=True),
    sa.Column("pvalue", sa.Double(), nullable=True),
    sa.Column("threshold", sa.Double(), nullable=True),
    sa.Column("drift", sa.Boolean(), nullable=False),  # drifted / breached / degraded
    sa.Column("n_reference", sa.BigInteger(), nullable=True),
    sa.Column("n_current", sa.BigInteger(), nullable=True),
    sa.Column("detail", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    # The slice a row is of (migration 0011): "region:eu", '' for the whole population;
    # the model version, '' for all versions.
    sa.Column("segment", sa.Text(), nullable=False, server_default=""),
    sa.Column("model_version", sa.Text(), nullable=False, server_default=""),
    sa.PrimaryKeyConstraint("id", name="pk_results"),
    sa.Index("ix_results_model_kind_feature_seq", "model", "kind", "feature", "window_seq"),
    sa.Index("ix_results_model_created_at", "model", "created_at"),
)

# Alerts (migration 0004): one row per episode with its current state, every transition,
# and the alert engine's saved state.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.String(512), nullable=False),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("feature", sa.String(MODEL_NAME_LENGTH), nullable=False),
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
    sa.Index("ix_alerts_state_model", "state", "model"),
)
alert_transitions = sa.Table(
    "alert_transitions",
    metadata,
    sa.Column("id", BigId, nullable=False, autoincrement=True),
    sa.Column("alert_id", sa.String(512), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("at", sa.Double(), nullable=False),
    sa.Column("window_seq", sa.BigInteger(), nullable=True),
    sa.Column("value", sa.Double(), nullable=True),
    sa.Column("detail", sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_alert_transitions"),
    sa.Index("ix_alert_transitions_alert", "alert_id", "id"),
)
engine_state = sa.Table(
    "engine_state",
    metadata,
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint("name", name="pk_engine_state"),
)

# Retraining-webhook outbox (migration 0005): one row per (alert transition, webhook),
# written in the transition's transaction and sent by alerts.dispatcher.
DELIVERY_STATES = ("pending", "delivered", "dead", "suppressed")
IDEMPOTENCY_KEY_LENGTH = 768  # alert id (512) + state + webhook name (100)
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, nullable=False, autoincrement=True),
    sa.Column("webhook", sa.String(100), nullable=False),
    sa.Column("alert_id", sa.String(512), nullable=False),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(IDEMPOTENCY_KEY_LENGTH), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),  # exactly the bytes sent (and signed)
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("next_attempt_at", sa.Double(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("delivered_at", sa.Double(), nullable=True),
    sa.Column("retried_at", sa.Double(), nullable=True),  # a manual retry restarts max_age from here
    sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    sa.UniqueConstraint("idempotency_key", name="uq_webhook_deliveries_idempotency_key"),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'dead', 'suppressed')", name="ck_webhook_deliveries_state"),
    sa.Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_webhook_model_created", "webhook", "model", "created_at"),
)


# Kafka checkpoints (collectors/kafka.py): the next offset per partition and the model
# state as of those offsets, always written together in one transaction.
kafka_offsets = sa.Table(
    "kafka_offsets",
    metadata,
    sa.Column("group_id", sa.String(256), nullable=False),
    sa.Column("topic", sa.String(256), nullable=False),
    sa.Column("partition", sa.Integer(), nullable=False),
    sa.Column("next_offset", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint("group_id", "topic", "partition", name="pk_kafka_offsets"),
)

model_checkpoints = sa.Table(
    "model_checkpoints",
    metadata,
    sa.Column("group_id", sa.String(256), nullable=False),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("state", sa.LargeBinary(), nullable=False),
    # The partitions ("topic/partition") that fed the model: their next owner restores it.
    sa.Column("sources", sa.JSON(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint("group_id", "model", name="pk_model_checkpoints"),
)

# The state of each model no Kafka partition owns, per service instance (migration 0008):
# monitor/store/instance_checkpoints.py.
instance_checkpoints = sa.Table(
    "instance_checkpoints",
    metadata,
    sa.Column("instance_id", sa.String(256), nullable=False),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("state", sa.LargeBinary(), nullable=False),
    sa.Column("taken_at", sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint("instance_id", "model", name="pk_instance_checkpoints"),
)

# Migration 0012: the label buffer of the instance checkpoints, one row per segment of it
# (monitor/label_checkpoints.py), written in the same transaction as the model states.
instance_label_segments = sa.Table(
    "instance_label_segments",
    metadata,
    sa.Column("instance_id", sa.String(256), nullable=False),
    sa.Column("segment", sa.BigInteger(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint("instance_id", "segment", name="pk_instance_label_segments"),
)


# Drawing data (migration 0009): per evaluated window and channel, its counts in the reference's
# bins or categories and what the slots are (``data``: see detectors.histograms), a few KB.
histograms = sa.Table(
    "histograms",
    metadata,
    sa.Column("id", BigId, nullable=False, autoincrement=True),
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("reference_version", sa.String(VERSION_LENGTH), nullable=False),
    sa.Column("window_seq", sa.BigInteger(), nullable=False),
    sa.Column("feature", sa.String(MODEL_NAME_LENGTH), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("window_end", sa.Double(), nullable=True),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    # The slice drawn ("region:eu"; '' the whole population), as results.segment (0014).
    sa.Column("segment", sa.Text(), nullable=False, server_default=""),
    sa.PrimaryKeyConstraint("id", name="pk_histograms"),
    sa.UniqueConstraint(
        "model", "reference_version", "window_seq", "feature", "segment", name="uq_histograms_window_feature_segment"
    ),
    sa.Index("ix_histograms_model_feature_seq", "model", "feature", "window_seq"),
    sa.Index("ix_histograms_model_created_at", "model", "created_at"),
)

# One statement for any deltas (zeros add nothing), built once: SQLAlchemy caches its SQL.
ADD_COUNTS = (
    sa.update(record_counts)
    .where(record_counts.c.model == sa.bindparam("key_model"), record_counts.c.source == sa.bindparam("key_source"))
    .values(
        {name: record_counts.c[name] + sa.bindparam(f"add_{name}", type_=sa.BigInteger()) for name in COUNT_COLUMNS}
        | {"updated_at": sa.bindparam("now", type_=sa.Double())}
    )
)


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    values: dict[str, Any],
    key: tuple[str, ...],
    update: Callable[[Any], dict[str, Any]],
) -> bool:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` on PostgreSQL and SQLite: one statement,
    so concurrent writers of a new key neither fail nor rerun their transaction. ``update``
    (a module-level function, so the statement is built once) maps the statement's
    ``excluded`` columns (the row that was to be inserted) to the SET clause. False, doing
    nothing, on other databases: the caller then updates, and inserts if no row was there."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return False
    conn.execute(_upsert_statement(dialect, table, key, update), values)
    return True


@functools.cache
def _upsert_statement(
    dialect: str, table: sa.Table, key: tuple[str, ...], update: Callable[[Any], dict[str, Any]]
) -> sa.Executable:
    # The two dialects' Insert types differ (with the same upsert API), hence two branches.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg_statement = postgresql.insert(table)
        return pg_statement.on_conflict_do_update(index_elements=list(key), set_=update(pg_statement.excluded))
    from sqlalchemy.dialects import sqlite

    statement = sqlite.insert(table)
    return statement.on_conflict_do_update(index_elements=list(key), set_=update(statement.excluded))


def replace_model(excluded: Any) -> dict[str, Any]:
    """Upsert of ``models``: the new config and source; ``created_at`` stays."""
    return {"config": excluded.config, "source": excluded.source}


def add_to_counts(excluded: Any) -> dict[str, Any]:
    """Upsert of ``record_counts``: each counter plus the increment."""
    return {name: record_counts.c[name] + excluded[name] for name in COUNT_COLUMNS} | {
        "updated_at": excluded.updated_at
    }
