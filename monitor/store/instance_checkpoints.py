"""Instance checkpoints (table ``instance_checkpoints``), mixed into
:class:`monitor.store.database.Store`: the state of the models no Kafka partition owns,
per service instance.

:meth:`InstanceCheckpointStore.save_instance_checkpoint` writes the models' states and
adds the record counts those states include to ``record_counts`` in one transaction: after
a crash the counts in the store and the state restored agree exactly, so nothing is
counted twice or dropped from one but not the other.

Rows are keyed by ``storage.instance_id``: instances sharing a database must each have
their own id, and an instance restarted with an id restores what that id wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from monitor.store import tables as t
from monitor.store.counts import CountDeltas, add_count_rows, count_rows

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from monitor.label_checkpoints import LabelWrite

# States are bound by name, not as values of the statement: SQLAlchemy caches a compiled
# statement with the parameters of the first one it compiled, so a state given as a value
# (``.values(state=...)``) stayed alive in the cache, tens of MB of it, for the process's life.
# Likewise SQLite's statement cache keeps a statement's last parameters (its own copy of
# them) until it runs again: only the UPDATE statements below bind states (a new row is
# inserted empty, then updated), and each transaction ends by running them once more with
# empty values that match no row (:func:`_release_parameters`). Together they left a full
# join buffer's checkpoint (28 MB) resident twice over, after malloc_trim.
_c = t.instance_checkpoints.c
_UPDATE_STATE = (
    sa.update(t.instance_checkpoints)
    .where(_c.instance_id == sa.bindparam("i"), _c.model == sa.bindparam("m"))
    .values(state=sa.bindparam("s"), taken_at=sa.bindparam("t"))
)
_INSERT_STATE = sa.insert(t.instance_checkpoints).values(
    instance_id=sa.bindparam("i"), model=sa.bindparam("m"), state=sa.bindparam("s"), taken_at=sa.bindparam("t")
)
_s = t.instance_label_segments.c
_UPDATE_SEGMENT = (
    sa.update(t.instance_label_segments)
    .where(_s.instance_id == sa.bindparam("i"), _s.segment == sa.bindparam("n"))
    .values(data=sa.bindparam("d"))
)
_INSERT_SEGMENT = sa.insert(t.instance_label_segments).values(
    instance_id=sa.bindparam("i"), segment=sa.bindparam("n"), data=sa.bindparam("d")
)
_DELETE_SEGMENT = sa.delete(t.instance_label_segments).where(
    _s.instance_id == sa.bindparam("i"), _s.segment == sa.bindparam("n")
)


class InstanceCheckpointStore:
    """Model state per instance (mixed into :class:`monitor.store.database.Store`)."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(self, work: Callable[[Connection], None], what: str) -> None: ...

    def save_instance_checkpoint(
        self,
        instance: str,
        states: Mapping[str, bytes | bytearray],
        taken_at: float,
        counts: CountDeltas | None = None,
        drop: Iterable[str] = (),
        labels: LabelWrite | None = None,
    ) -> None:
        """Replace ``instance``'s state of each model in ``states`` (taken at ``taken_at``,
        epoch s), delete its rows of the ``drop`` models (now owned elsewhere), add
        ``counts`` (what those states counted since the last checkpoint, as
        :meth:`Store.add_counts` takes them) and store what changed in the label buffer
        (``labels``), all in one transaction."""
        count_increments = count_rows(counts or {})
        dropped = sorted(set(drop) - set(states))

        def work(conn: Connection) -> None:
            # Sorted keys: concurrent writers lock rows in one order and cannot deadlock.
            for model, state in sorted(states.items()):
                values = {"i": instance, "m": model, "s": state, "t": taken_at}
                if conn.execute(_UPDATE_STATE, values).rowcount == 0:
                    conn.execute(_INSERT_STATE, {**values, "s": b""})
                    conn.execute(_UPDATE_STATE, values)
            if dropped:
                conn.execute(sa.delete(t.instance_checkpoints).where(_c.instance_id == instance, _c.model.in_(dropped)))
            if labels is not None:
                _write_labels(conn, instance, labels)
            add_count_rows(conn, count_increments, taken_at)
            _release_parameters(conn)

        self._write_retrying(work, f"saving the checkpoint of instance {instance!r}")

    def instance_checkpoint(self, instance: str) -> dict[str, tuple[bytes, float]]:
        """``instance``'s stored state per model, with when it was taken."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(_c.model, _c.state, _c.taken_at).where(_c.instance_id == instance)).all()
        return {model: (bytes(state), float(taken_at)) for model, state, taken_at in rows}

    def instance_label_segments(self, instance: str) -> list[tuple[int, bytes]]:
        """``instance``'s stored segments of the label buffer, ``(number, bytes)`` in order."""
        with self._engine.connect() as conn:
            query = sa.select(_s.segment, _s.data).where(_s.instance_id == instance).order_by(_s.segment)
            return [(int(number), bytes(data)) for number, data in conn.execute(query)]

    def take_instance_checkpoint(self, instance: str) -> dict[str, tuple[bytes, float]]:
        """:meth:`take_instance_state`'s model states."""
        return self.take_instance_state(instance)[0]

    def take_instance_state(self, instance: str) -> tuple[dict[str, tuple[bytes, float]], list[tuple[int, bytes]]]:
        """:meth:`instance_checkpoint` and :meth:`instance_label_segments`, deleted as they
        are read (one transaction): of several processes starting with one instance id
        (``server.workers`` > 1), one gets the state and the others nothing, so no state is
        restored twice. The taker writes it back with its next checkpoint (at once, at start-up)."""
        taken: dict[str, tuple[bytes, float]] = {}
        segments: list[tuple[int, bytes]] = []

        def work(conn: Connection) -> None:
            taken.clear()  # a rerun starts over
            segments.clear()
            rows = conn.execute(
                sa.delete(t.instance_checkpoints)
                .where(_c.instance_id == instance)
                .returning(_c.model, _c.state, _c.taken_at)
            ).all()
            taken.update((model, (bytes(state), float(taken_at))) for model, state, taken_at in rows)
            parts = conn.execute(
                sa.delete(t.instance_label_segments).where(_s.instance_id == instance).returning(_s.segment, _s.data)
            ).all()
            segments.extend(sorted((int(number), bytes(data)) for number, data in parts))

        self._write_retrying(work, f"taking the checkpoint of instance {instance!r}")
        return taken, segments


def _write_labels(conn: Connection, instance: str, labels: LabelWrite) -> None:
    """The label buffer's part of a checkpoint (monitor/label_checkpoints.py): every segment
    of the instance replaced, or the dead ones deleted and the changed ones rewritten."""
    if labels.replace:
        conn.execute(sa.delete(t.instance_label_segments).where(_s.instance_id == instance))
    elif labels.delete:
        conn.execute(_DELETE_SEGMENT, [{"i": instance, "n": number} for number in sorted(labels.delete)])
    for number, data in sorted(labels.rows.items()):
        values = {"i": instance, "n": number, "d": data}
        if conn.execute(_UPDATE_SEGMENT, values).rowcount == 0:
            conn.execute(_INSERT_SEGMENT, {**values, "d": b""})
            conn.execute(_UPDATE_SEGMENT, values)


def _release_parameters(conn: Connection) -> None:
    """Let SQLite's cached statements drop the states they were last run with (see the
    top of this module): instance id "" is never configured, so nothing changes."""
    if conn.dialect.name == "sqlite":
        conn.execute(_UPDATE_STATE, {"i": "", "m": "", "s": b"", "t": 0.0})
        conn.execute(_UPDATE_SEGMENT, {"i": "", "n": -1, "d": b""})
