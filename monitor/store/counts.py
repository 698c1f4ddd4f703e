"""Adding to the ``record_counts`` table, in a transaction of the caller's: the periodic
flush of the pipeline's count deltas (:meth:`monitor.store.database.Store.add_counts`), and the
Kafka checkpoint, which writes the counts of what it covers with its offsets so that
records read again after a crash are not counted twice
(:meth:`monitor.store.kafka_checkpoints.CheckpointStore.save_checkpoint`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.store import tables as t

CountDeltas = Mapping[tuple[str, str], Mapping[str, int]]


def count_rows(deltas: CountDeltas) -> list[dict[str, Any]]:
    """The rows to add, checked: one per ``(model, source)`` with an increment."""
    rows: list[dict[str, Any]] = []
    # Sorted: concurrent PostgreSQL writers then lock rows in the same order and cannot deadlock.
    for model, source in sorted(deltas):
        increments = dict.fromkeys(t.COUNT_COLUMNS, 0)
        for name, value in deltas[model, source].items():
            if name not in increments:
                raise ValueError(
                    f"add_counts {(model, source)}: unknown counter {name!r}; counters are {', '.join(t.COUNT_COLUMNS)}"
                )
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"add_counts {(model, source)}: {name} must be a non-negative integer, got {value!r}")
            increments[name] = value
        if any(increments.values()):
            rows.append({"model": model, "source": source, **increments})
    return rows


def add_count_rows(conn: Connection, rows: list[dict[str, Any]], now: float) -> None:
    for row in rows:
        if t.upsert(conn, t.record_counts, {**row, "updated_at": now}, ("model", "source"), t.add_to_counts):
            continue
        params = {f"add_{name}": row[name] for name in t.COUNT_COLUMNS}
        updated = conn.execute(
            t.ADD_COUNTS, {**params, "key_model": row["model"], "key_source": row["source"], "now": now}
        )
        if updated.rowcount == 0:
            conn.execute(sa.insert(t.record_counts), {**row, "updated_at": now})
