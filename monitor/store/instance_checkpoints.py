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


class InstanceCheckpointStore:
    """Model state per instance (mixed into :class:`monitor.store.database.Store`)."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(self, work: Callable[[Connection], None], what: str) -> None: ...

    def save_instance_checkpoint(
        self,
        instance: str,
        states: Mapping[str, bytes],
        taken_at: float,
        counts: CountDeltas | None = None,
        drop: Iterable[str] = (),
    ) -> None:
        """Replace ``instance``'s state of each model in ``states`` (taken at ``taken_at``,
        epoch s), delete its rows of the ``drop`` models (now owned elsewhere) and add
        ``counts`` (what those states counted since the last checkpoint, as
        :meth:`Store.add_counts` takes them), all in one transaction."""
        c = t.instance_checkpoints.c
        count_increments = count_rows(counts or {})
        dropped = sorted(set(drop) - set(states))

        def work(conn: Connection) -> None:
            # Sorted keys: concurrent writers lock rows in one order and cannot deadlock.
            for model, state in sorted(states.items()):
                key = sa.and_(c.instance_id == instance, c.model == model)
                values = {"state": state, "taken_at": taken_at}
                if conn.execute(sa.update(t.instance_checkpoints).where(key).values(**values)).rowcount == 0:
                    conn.execute(sa.insert(t.instance_checkpoints).values(instance_id=instance, model=model, **values))
            if dropped:
                conn.execute(sa.delete(t.instance_checkpoints).where(c.instance_id == instance, c.model.in_(dropped)))
            add_count_rows(conn, count_increments, taken_at)

        self._write_retrying(work, f"saving the checkpoint of instance {instance!r}")

    def instance_checkpoint(self, instance: str) -> dict[str, tuple[bytes, float]]:
        """``instance``'s stored state per model, with when it was taken."""
        c = t.instance_checkpoints.c
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(c.model, c.state, c.taken_at).where(c.instance_id == instance)).all()
        return {model: (bytes(state), float(taken_at)) for model, state, taken_at in rows}

    def take_instance_checkpoint(self, instance: str) -> dict[str, tuple[bytes, float]]:
        """:meth:`instance_checkpoint`, deleted as it is read (one statement, one
        transaction): of several processes starting with one instance id (``server.workers``
        > 1), one gets the state and the others nothing, so no state is restored twice. The
        taker writes it back with its next checkpoint (at once, at start-up)."""
        c = t.instance_checkpoints.c
        taken: dict[str, tuple[bytes, float]] = {}

        def work(conn: Connection) -> None:
            taken.clear()  # a rerun starts over
            rows = conn.execute(
                sa.delete(t.instance_checkpoints)
                .where(c.instance_id == instance)
                .returning(c.model, c.state, c.taken_at)
            ).all()
            taken.update((model, (bytes(state), float(taken_at))) for model, state, taken_at in rows)

        self._write_retrying(work, f"taking the checkpoint of instance {instance!r}")
        return taken
