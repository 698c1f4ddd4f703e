"""Checkpoints of the models no Kafka partition owns (fed over HTTP, CloudEvents, files):
what makes an HTTP 200 survive a restart or a crash.

Every ``storage.checkpoint_seconds``, and at shutdown, :meth:`Checkpointer.checkpoint`
takes the state of each local model that changed (open windows, partial records awaiting
their join, counts, alert-engine states), what changed in the label buffer (predictions
awaiting labels: :mod:`monitor.label_checkpoints`, a few thousand entries rather than all
of them) and the record counts accepted up to that instant, and stores them in one
transaction (:mod:`monitor.store.instance_checkpoints`). The encoding runs off the event
loop and the pipeline's lock, a slice at a time (:mod:`monitor.checkpoint_bytes`). At
start-up :meth:`Checkpointer.restore` puts the stored state back: a window resumes where it
was, and a retried id is still a duplicate.

So after SIGTERM nothing accepted is lost; after ``kill -9`` what was accepted since the
state of the last checkpoint was taken is lost (at most ``checkpoint_seconds`` of traffic,
plus the time the write took), and the store's counts agree with the state restored.
With ``storage.ack_after_checkpoint`` a request is answered only once a checkpoint holds
its records (:meth:`Checkpointer.durable`): one checkpoint serves every request waiting.

Kafka-fed models are not here: their state is checkpointed with their offsets
(collectors/kafka.py); a model the Kafka collector takes over loses its local row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from monitor.allocator import TRIM_AFTER_BYTES, trim_heap
from monitor.label_checkpoints import LabelJournal, restore_entries
from monitor.metrics import Metrics
from monitor.model_snapshots import encode_model
from monitor.pipeline import Pipeline
from monitor.store.database import Store

log = logging.getLogger(__name__)


class CheckpointFailed(RuntimeError):
    """The checkpoint a request waited for could not be written."""


class Checkpointer:
    """Writes and restores this instance's local model state (one per process)."""

    def __init__(self, pipeline: Pipeline, store: Store, metrics: Metrics, instance: str):
        self.pipeline = pipeline
        self.store = store
        self.metrics = metrics
        self.instance = instance
        self._lock = threading.Lock()  # one checkpoint at a time: periodic, strict or final
        self._stored: set[str] = set()  # models this process wrote a row for
        self._labels = LabelJournal()  # what is stored of the label buffer
        self._waiters: list[asyncio.Future[None]] = []
        self._wake: asyncio.Event | None = None

    def restore(self) -> list[str]:
        """Take back the state this instance id stored (before the Kafka collector starts:
        a model it owns is restored from its own checkpoint after this one, replacing it)
        and store it again at once. Returns the models restored.

        The rows are deleted as they are read, so that of several worker processes
        sharing the id one restores them; that one writes them back straight away, and a
        kill -9 between the two loses them (the store's counts keep them)."""
        restored = []
        states, segments = self.store.take_instance_state(self.instance)
        for model, (data, taken_at) in sorted(states.items()):
            try:
                if self.pipeline.restore_local(model, data):
                    restored.append(model)
            except (ValueError, KeyError) as exc:  # another format, or a model no longer configured
                log.warning("model %s: checkpoint of instance %r not restored (%s)", model, self.instance, exc)
                continue
            state = self.pipeline.models[model]
            open_records = state.detector.open_records if state.detector is not None else 0
            log.info(
                "model %s: state restored from the checkpoint of instance %r taken at %.3f (%d records, %d in the "
                "open window)", model, self.instance, taken_at, state.records, open_records,
            )  # fmt: skip
        try:  # the predictions awaiting labels of the models restored, in their order
            keys, entries = restore_entries(segments, set(restored))
        except ValueError as exc:
            log.warning("label buffer of instance %r not restored (%s)", self.instance, exc)
            keys, entries = [], []
        if keys:
            self.pipeline.restore_labels(keys, entries)
            log.info(
                "label buffer: %d predictions restored from the checkpoint of instance %r", len(keys), self.instance
            )
        if restored or segments:
            try:
                self.checkpoint()
            except Exception as exc:  # the periodic checkpoints try again
                log.warning("writing back the restored state of instance %r failed: %s", self.instance, exc)
        return restored

    def checkpoint(self) -> bool:
        """Store the local models' state and counts in one transaction (blocking: call it
        off the event loop). Returns whether anything was written; raises if the store
        failed (the snapshot then goes with the next checkpoint)."""
        with self._lock:
            snapshot = self.pipeline.snapshot_local(self._labels)
            drop = snapshot.external & self._stored  # rows of models now Kafka's
            if not snapshot.states and not snapshot.counts and not drop and snapshot.labels is None:
                self.metrics.state_checkpoint_timestamp.set(snapshot.taken_at)  # nothing new since: all in
                return False
            try:
                labels = None if snapshot.labels is None else self._labels.plan(snapshot.labels)
                states = {model: encode_model(captured) for model, captured in snapshot.states.items()}
                self.store.save_instance_checkpoint(
                    self.instance, states, snapshot.taken_at, snapshot.counts, drop, labels
                )
            except Exception:
                self.pipeline.unsnapshot(snapshot)
                self._labels.reset()  # stored or not: the next checkpoint writes the label buffer whole
                self.metrics.state_checkpoints.labels("failed").inc()
                raise
            if labels is not None:
                self._labels.commit(labels)
            self._stored = (self._stored | set(states)) - drop
            self.metrics.state_checkpoints.labels("written").inc()
            self.metrics.state_checkpoint_timestamp.set(snapshot.taken_at)
            written = sum(map(len, states.values())) + (0 if labels is None else sum(map(len, labels.rows.values())))
            self.metrics.state_checkpoint_bytes.set(written)
            del states, snapshot, labels
            if written >= TRIM_AFTER_BYTES:
                trim_heap()  # the encoded state was a large temporary: see monitor/allocator.py
            return True

    # -- on the event loop ------------------------------------------------------------------
    async def run(self, interval: float) -> None:
        """Checkpoint every ``interval`` seconds, and at once when a request waits for one
        (:meth:`durable`); until cancelled."""
        self._wake = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            # Requests waiting now ingested before the snapshot below: it holds their records.
            waiters, self._waiters = self._waiters, []
            try:
                await asyncio.to_thread(self.checkpoint)
            except Exception as exc:  # keep the loop alive; the snapshot goes with the next one
                log.warning("checkpoint of instance %r failed; will retry: %s", self.instance, exc)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(CheckpointFailed(f"the checkpoint could not be written: {exc}"))
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def durable(self) -> None:
        """Return once a checkpoint taken after this call is stored (what the caller has
        ingested survives a crash); raise :class:`CheckpointFailed` if it could not be."""
        if self._wake is None:  # not running (checkpoints off): nothing to wait for
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter
