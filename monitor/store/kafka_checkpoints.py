"""Kafka checkpoints (tables ``kafka_offsets`` and ``model_checkpoints``), mixed into
:class:`monitor.store.database.Store`.

:meth:`CheckpointStore.save_checkpoint` writes the next offset of each partition and the
state of each model those partitions fed in one transaction: after a crash the state and
the offsets agree, so reading on from the offsets counts every record exactly once.
Everything is keyed by consumer group, so two deployments sharing a database stay apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from monitor.store import tables as t
from monitor.store.counts import CountDeltas, add_count_rows, count_rows

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

TopicPartitionKey = tuple[str, int]

# Model states are bound by name and a new row is inserted empty then updated, and each
# transaction ends by running the update once more with empty values (on SQLite): a state
# given as a value stayed alive in SQLAlchemy's statement cache, and SQLite's statement
# cache keeps the last parameters of a statement, tens of MB each for a full join buffer
# (the reasoning and figures are in monitor/store/instance_checkpoints.py).
_m = t.model_checkpoints.c
_UPDATE_STATE = (
    sa.update(t.model_checkpoints)
    .where(_m.group_id == sa.bindparam("g"), _m.model == sa.bindparam("m"))
    .values(state=sa.bindparam("s"), sources=sa.bindparam("f"), updated_at=sa.bindparam("u"))
)
_INSERT_STATE = sa.insert(t.model_checkpoints).values(
    group_id=sa.bindparam("g"), model=sa.bindparam("m"), state=sa.bindparam("s"),
    sources=sa.bindparam("f"), updated_at=sa.bindparam("u"),
)  # fmt: skip


class CheckpointStore:
    """Offsets and model state of the Kafka collector (mixed into :class:`monitor.store.database.Store`)."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(self, work: Callable[[Connection], None], what: str) -> None: ...

    def save_checkpoint(
        self,
        group: str,
        offsets: Mapping[TopicPartitionKey, int],
        states: Mapping[str, bytes],
        sources: Mapping[str, Iterable[TopicPartitionKey]],
        counts: CountDeltas | None = None,
    ) -> None:
        """Store ``offsets`` (next offset to read, per ``(topic, partition)``) and ``states``
        (per model, with the partitions that fed it in ``sources``) together, replacing
        what the group had for those keys, and add ``counts`` (what was counted up to
        those offsets, as :meth:`Store.add_counts` takes them) to ``record_counts``."""
        now = time.time()
        o = t.kafka_offsets.c
        count_increments = count_rows(counts or {})

        def work(conn: Connection) -> None:
            # Sorted keys: concurrent writers lock rows in one order and cannot deadlock.
            for (topic, partition), offset in sorted(offsets.items()):
                key = sa.and_(o.group_id == group, o.topic == topic, o.partition == partition)
                if (
                    conn.execute(
                        sa.update(t.kafka_offsets).where(key).values(next_offset=offset, updated_at=now)
                    ).rowcount
                    == 0
                ):
                    conn.execute(sa.insert(t.kafka_offsets).values(
                        group_id=group, topic=topic, partition=partition, next_offset=offset, updated_at=now
                    ))  # fmt: skip
            for model, state in sorted(states.items()):
                fed_by = sorted(f"{topic}/{partition}" for topic, partition in sources.get(model, ()))
                values = {"g": group, "m": model, "s": state, "f": fed_by, "u": now}
                if conn.execute(_UPDATE_STATE, values).rowcount == 0:
                    conn.execute(_INSERT_STATE, {**values, "s": b""})
                    conn.execute(_UPDATE_STATE, values)
            add_count_rows(conn, count_increments, now)
            if states and conn.dialect.name == "sqlite":  # group "" is never configured: nothing changes
                conn.execute(_UPDATE_STATE, {"g": "", "m": "", "s": b"", "f": [], "u": 0.0})

        self._write_retrying(work, f"saving the Kafka checkpoint of group {group!r}")

    def checkpoint_offsets(self, group: str) -> dict[TopicPartitionKey, int]:
        """The group's stored next offsets, per ``(topic, partition)``."""
        o = t.kafka_offsets.c
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(o.topic, o.partition, o.next_offset).where(o.group_id == group)).all()
        return {(topic, partition): int(offset) for topic, partition, offset in rows}

    def models_fed_by(
        self, group: str, partitions: Iterable[TopicPartitionKey]
    ) -> dict[str, tuple[bytes, set[TopicPartitionKey]]]:
        """The checkpointed state of every model that one of ``partitions`` fed, with those
        of ``partitions`` that fed it."""
        wanted = {f"{topic}/{partition}": (topic, partition) for topic, partition in partitions}
        m = t.model_checkpoints.c
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(m.model, m.state, m.sources).where(m.group_id == group)).all()
        found = {}
        for model, state, sources in rows:
            fed_by = {wanted[source] for source in sources if source in wanted}
            if fed_by:
                found[model] = (bytes(state), fed_by)
        return found

    def model_checkpoint(self, group: str, model: str) -> bytes | None:
        """The model's state as of the group's stored offsets, if any."""
        m = t.model_checkpoints.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(m.state).where(m.group_id == group, m.model == model)).first()
        return None if row is None else bytes(row[0])
