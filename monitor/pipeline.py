"""The pipeline: every collector hands its validated records (and its rejections) to
:meth:`Pipeline.ingest`, which counts them, keeps dead letters, joins partial records by
``(model, id)`` and routes complete records to per-model state.

One-way flow: collectors -> pipeline -> per-model state (detectors plug in there) ->
alerts. The pipeline is synchronous and guarded by one lock, so the HTTP event loop and
Kafka consumer threads can share it; each call does a bounded amount of work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from detectors.estimation.window import Estimators
from detectors.profiles import ReferenceProfile
from detectors.results import ResultSink
from monitor.evaluator import Evaluator
from monitor.joins import JoinBuffer
from monitor.label_buffer import LabelBuffer
from monitor.label_checkpoints import Entry, LabelJournal, entries_by_model
from monitor.metrics import UNKNOWN_MODEL, Metrics
from monitor.model_snapshots import LocalSnapshot, capture_model, dump_model, load_model, reset_model, scoped_sinks
from monitor.model_state import ModelState, ReferenceSaver
from monitor.records import Record, Rejection
from monitor.routing import PIPELINE_SOURCE, Routed, Router, label_predictions, shadow_keyed
from monitor.settings import ModelConfig, Settings
from monitor.validation import Validator

log = logging.getLogger(__name__)

COUNT_FIELDS = (
    "received", "accepted", "rejected", "duplicates", "joined",
    "incomplete", "evicted", "labels_joined", "labels_unmatched",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeadLetterItem:
    """A rejected item as the pipeline hands it to the dead-letter sink."""

    received_at: float
    source: str
    rejection: Rejection
    raw_bytes: bytes | None = None
    headers: dict[str, str] | None = None


# A rejected item's own (raw bytes, headers), when one call carries items of several messages.
Origin = Callable[[Rejection], tuple[bytes | None, dict[str, str] | None]]


class DeadLetterSink(Protocol):
    # Positional-only, so any one-argument callable fits whatever its parameter is named.
    def __call__(self, items: Sequence[DeadLetterItem], /) -> None: ...


@dataclass
class IngestResult:
    """What became of one collector call's items."""

    accepted: int
    rejected: list[Rejection]
    duplicates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "duplicates": self.duplicates,
            "errors": [r.to_dict() for r in self.rejected],
        }


class Pipeline:
    """Counts, joins and routes records. Build one per process with the settings."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        dead_letters: DeadLetterSink | None = None,
        clock: Callable[[], float] = time.time,
        sinks: Sequence[ResultSink] = (),
        save_reference: ReferenceSaver | None = None,
        external_source: str | None = None,
    ):
        """``external_source``: the source (the Kafka collector's) whose models' state another
        component checkpoints, through :meth:`checkpoint` and :meth:`restore`; every other
        model is *local*, checkpointed through :meth:`snapshot_local`."""
        self.settings = settings
        self.metrics = metrics
        self._dead_letters = dead_letters
        self._clock = clock
        self._sinks = list(sinks)
        self._save_reference = save_reference
        self.evaluator = Evaluator(place=settings.server.evaluation)
        self._lock = threading.Lock()
        limits = settings.limits
        self._joins = JoinBuffer(limits.join_buffer_size, limits.join_ttl_seconds, limits.join_buffer_bytes)
        self._labels = LabelBuffer.for_settings(
            settings, keep=label_predictions(lambda model: state.schema if (state := self.models.get(model)) else None)
        )
        # Read when scraped: no cost per call (an int read; the buffers change under the lock).
        metrics.join_buffer_bytes.set_function(lambda: self._joins.bytes)
        metrics.label_buffer_bytes.set_function(lambda: self._labels.bytes)
        self.models: dict[str, ModelState] = {
            name: ModelState(name, config, self._sinks, save_reference, self.evaluator)
            for name, config in settings.models.items()
        }
        # Model name -> config, including models registered from traffic; collectors and
        # the validator read it to know which models exist.
        self.configs: dict[str, ModelConfig] = dict(settings.models)
        # Validation for ingest_items (it reads self.configs, so registered models count).
        self.validator = Validator(settings.limits, self.configs, accept_unknown=settings.unknown_models == "register")
        self._deltas: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_FIELDS, 0))
        self._router = Router(self._joins, self._labels, metrics, self._delta, shadow_keyed(self.configs))
        self._external_source = external_source
        # Models whose state the Kafka collector owns (fed by its source, or passed to its
        # checkpoint API), and the models changed since the last local snapshot.
        self._external: set[str] = set()
        self._changed: set[str] = set()

    # -- the one entry point for collectors -------------------------------------------
    def ingest(
        self,
        records: Sequence[Record],
        rejections: Sequence[Rejection],
        source: str,
        *,
        raw_bytes: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> IngestResult:
        """Take one collector call's validated records and rejected items.

        Rejections are counted and stored as dead letters (with ``raw_bytes`` and
        ``headers`` when the collector has them); records are counted, joined and routed.
        """
        now = self._clock()
        if rejections:
            self._reject(rejections, source, now, raw_bytes, headers)
        with self._lock:
            routed = Routed()
            duplicates = 0
            models = self.models
            for record in records:
                if record.model not in models:
                    self._register(record.model)
                duplicates += self._router.route(record, now, routed)
            self._count_accepted(records, source)
            self._router.expire(now, routed)
            self._deliver(routed)
        return IngestResult(len(records), list(rejections), duplicates)

    def ingest_items(
        self,
        items: Sequence[Any],
        source: str,
        received_at: float,
        *,
        indices: Sequence[int] | None = None,
        rejections: Sequence[Rejection] = (),
        raw_bytes: bytes | None = None,
        headers: dict[str, str] | None = None,
        origin: Origin | None = None,
    ) -> IngestResult:
        """Validate and ingest one collector call's decoded items (JSON values, usually
        dicts): the batch entry point, same outcome as :meth:`Validator.validate` on each
        item followed by :meth:`ingest`, at a fraction of the cost for batches.

        ``received_at`` (epoch s) stands in for missing timestamps. ``indices[i]`` is
        item i's index in the request (default i), as rejections report it;
        ``rejections`` are items the collector already refused (e.g. lines that were
        not JSON), counted and dead-lettered with the others. ``origin`` gives each
        rejected item's own raw bytes and headers for its dead letter, for a collector
        that gathers several messages into one call. Complete records of
        configured models are validated and routed column-wise and reach the detector
        as one columnar batch; partial records, labels and odd items take the
        record-by-record path, in their place in the order.
        """
        valid = self.validator.validate_items(items, received_at, indices=indices, features=self._feature_kinds)
        rejected = valid.rejections
        if rejections:
            rejected = sorted([*rejections, *rejected], key=lambda r: r.index)
        now = self._clock()
        if rejected:
            self._reject(rejected, source, now, raw_bytes, headers, origin)
        with self._lock:
            routed = Routed()
            models = self.models
            per_model: dict[str, int] = defaultdict(int)
            for record in valid.records:
                if record.model not in models:
                    self._register(record.model)
                per_model[record.model] += 1
            for chunk in valid.columns:
                per_model[chunk.model] += len(chunk)
            duplicates = self._router.route_valid(valid, now, routed)
            self._count(per_model, source)
            self._router.expire(now, routed)
            self._deliver(routed)
        return IngestResult(valid.accepted, rejected, duplicates)

    # -- housekeeping -------------------------------------------------------------------
    def expire(self) -> None:
        """Release partial records past their time-to-live and hand every model's pending
        records to its detector (called periodically)."""
        with self._lock:
            routed = Routed()
            self._router.expire(self._clock(), routed)
            self._deliver(routed)
            for state in self.models.values():
                state.feed()

    def drain(self) -> None:
        """Shutdown: hand every buffered partial record on as incomplete, so no accepted
        record is lost."""
        with self._lock:
            routed = Routed()
            for record in self._joins.drain():
                self._router.release(record, routed)
            self._deliver(routed)
            for state in self.models.values():
                state.feed()

    def take_count_deltas(
        self, source: str | None = None, *, besides: str | None = None, local: bool = True
    ) -> dict[tuple[str, str], dict[str, int]]:
        """Counts added since they were last taken, keyed ``(model, source)``, for the
        store: of every source, of ``source`` only, or of every source but ``besides``;
        without ``local``, not those of local models (their snapshots carry them)."""
        with self._lock:
            models = self.models
            keys = [
                key for key in self._deltas
                if (source is None or key[1] == source) and (besides is None or key[1] != besides)
                and (local or key[0] not in models or key[0] in self._external)
            ]  # fmt: skip
            return {key: self._deltas.pop(key) for key in keys}

    def drop_count_deltas(self, model: str, source: str) -> None:
        """Forget what ``model`` counted from ``source`` since the counts were last taken:
        those records will be read and counted again (Kafka, after a failed checkpoint)."""
        with self._lock:
            self._deltas.pop((model, source), None)

    def restore_count_deltas(self, deltas: dict[tuple[str, str], dict[str, int]]) -> None:
        """Put back deltas the store failed to write, so they go with the next flush."""
        with self._lock:
            for key, values in deltas.items():
                target = self._deltas[key]
                for name, value in values.items():
                    target[name] += value

    def set_reference(
        self, model: str, profile: ReferenceProfile, summary: dict[str, Any] | None = None,
        estimators: Estimators | None = None,
    ) -> None:  # fmt: skip
        """A new reference for ``model`` (and the estimators fitted on it): its windows start over against it."""
        with self._lock:
            self.models[model].set_reference(profile, summary, estimators)

    def settle(self) -> None:
        """Hand every pending record to the detectors and wait until every closed window
        has been evaluated and published."""
        with self._lock:
            for state in self.models.values():
                state.feed()
        self.evaluator.settle()

    def close(self) -> None:
        """Shutdown, after :meth:`drain`: evaluate what is queued and stop the worker."""
        self.evaluator.close()

    def flush_windows(self) -> None:
        """Evaluate every model's open window whatever its size (end of a replay)."""
        with self._lock:
            for state in self.models.values():
                state.flush()

    @property
    def buffered(self) -> int:
        return len(self._joins)

    # -- checkpoints (the Kafka collector) -------------------------------------------------
    def checkpoint(self, models: Iterable[str], *, handover: bool = False) -> dict[str, bytes]:
        """The state of ``models`` as bytes: pending records are fed to the detectors and
        the windows that closed are evaluated and published first, so a checkpoint never
        holds a window that closed but was not evaluated. A ``handover`` checkpoint holds
        the models' predictions awaiting labels too (monitor/model_snapshots.py says why only
        that one)."""
        names = [name for name in models if name in self.models]
        with self._lock:
            self._external.update(names)
            for name in names:
                self.models[name].feed()
        self.evaluator.settle()
        sinks = scoped_sinks(self._sinks)
        with self._lock:
            awaiting = entries_by_model(self._labels.copy(), names) if handover else {}
            return {
                name: dump_model(self.models[name], self._joins.of_model(name), sinks, awaiting.get(name))
                for name in names
            }

    def restore(self, model: str, data: bytes) -> None:
        """Replace ``model``'s state with a checkpoint (taken here or by another instance)."""
        self.evaluator.settle()  # see release
        with self._lock:
            self._external.add(model)
            self._restore(model, data)

    # -- checkpoints of local models (monitor/checkpointer.py) ------------------------------
    def snapshot_local(self, labels: LabelJournal | None = None) -> LocalSnapshot:
        """The state of every local model changed since the last snapshot, with the count
        deltas of every local model, taken at one instant: stored in one transaction, the
        store's counts and the state restored after a crash agree exactly. Closed windows
        are evaluated and published first (a snapshot never holds a window closed but not
        evaluated). :meth:`unsnapshot` puts it back if it could not be stored.

        Only records change a model's state (a new reference starts its windows over, and a
        stored window of another reference is not restored), so a model no local record
        reached is not written: a Kafka-only deployment writes nothing here. With ``labels`` (what
        is stored of the label buffer), it holds the buffer's changes since, if a model changed."""
        with self._lock:
            if not self._changed - self._external and not any(
                key[0] in self.models and key[0] not in self._external for key in self._deltas
            ):
                return LocalSnapshot({}, {}, set(self._external), time.time())
        self.evaluator.settle()  # most of the queue, while requests go on
        with self._lock:
            local = {name for name in self.models if name not in self._external}
            for name in local:
                self.models[name].feed()
            # The windows that feed or requests since the settle above closed: few or none,
            # evaluated under the lock so that no request changes the state meanwhile.
            self.evaluator.settle()
            changed, self._changed = self._changed & local, self._changed - local
            sinks = scoped_sinks(self._sinks)
            states = {name: capture_model(self.models[name], self._joins.of_model(name), sinks) for name in changed}
            counts = {
                key: self._deltas.pop(key)
                for key in [key for key in self._deltas if key[0] in local and key[1] != self._external_source]
            }  # fmt: skip
            captured = labels.capture(self._labels, self._external) if labels and changed else None
            return LocalSnapshot(states, counts, set(self._external), time.time(), captured)

    def unsnapshot(self, snapshot: LocalSnapshot) -> None:
        """A snapshot that could not be stored: its models and counts go with the next."""
        self.restore_count_deltas(snapshot.counts)
        with self._lock:
            self._changed.update(snapshot.states)

    def restore_labels(self, keys: Sequence[tuple[str, str]], entries: Sequence[Entry]) -> None:
        """Put back the label buffer's entries of an instance checkpoint, oldest first (start-up)."""
        with self._lock:
            routed = Routed()
            self._router.lost(self._labels.put_back_entries(keys, entries), routed)
            self._deliver(routed)

    def restore_local(self, model: str, data: bytes) -> bool:
        """Put back a local model's stored state (at start-up); False, and nothing done, if
        the Kafka collector owns the model already (its checkpoint is the one that counts)."""
        with self._lock:
            if model in self._external:
                return False
            if model not in self.models and not self.validator.accept_unknown:
                raise KeyError(f"model {model!r} is not configured")
            self._restore(model, data)
            self._changed.add(model)  # written back by the next checkpoint
            return True

    def _restore(self, model: str, data: bytes) -> None:
        """Under the lock: ``model``'s state replaced by a checkpoint's."""
        if model not in self.models:
            self._register(model)
        self._joins.remove_model(model)
        self._labels.remove_model(model)  # the checkpoint's own, if any, replace them
        routed = Routed()
        partials, awaiting = load_model(self.models[model], data, scoped_sinks(self._sinks))
        self._router.evicted(self._joins.put_back(partials), routed)
        self._router.lost(self._labels.put_back(model, awaiting), routed)
        self._deliver(routed)

    def release(self, model: str) -> None:
        """Forget ``model``'s state: another instance now owns it and restores it from the
        checkpoint just written."""
        # Windows of the state being forgotten may still be in evaluation (publishing can wait
        # out a store that does not answer): they must land before the reset, or their count
        # and alert signals go to the state a checkpoint restores next, and count twice when
        # the records are read again.
        self.evaluator.settle()
        with self._lock:
            self._external.add(model)
            if model in self.models:
                reset_model(self.models[model], scoped_sinks(self._sinks))
                self._joins.remove_model(model)
                self._labels.remove_model(model)

    # -- internals ------------------------------------------------------------------------
    def _register(self, model: str) -> None:
        if model not in self.models:
            # Only reachable with unknown_models: register (the validator refuses otherwise).
            log.info("registering model %r seen in traffic", model)
            config = ModelConfig()
            self.configs[model] = config
            self.models[model] = ModelState(model, config, self._sinks, self._save_reference, self.evaluator)

    def _feature_kinds(self, model: str) -> Mapping[str, str] | None:
        state = self.models.get(model)
        return None if state is None else state.schema.features

    def _deliver(self, routed: Routed) -> None:
        m = self.metrics
        changed = self._changed
        changed.update(routed.complete, routed.incomplete, routed.labels, routed.duplicates)
        changed.update(model for model, _ in routed.labels_lost)
        for model, segments in routed.complete.items():
            state = self.models[model]
            records: list[Record] = []
            total = 0
            for segment in segments:
                if type(segment) is tuple:
                    if records:
                        state.observe(records, complete=True)
                        total += len(records)
                        records = []
                    chunk, rows = segment
                    state.observe_columns(chunk, rows)
                    total += len(chunk) if rows is None else len(rows)
                else:
                    records.append(cast(Record, segment))  # cast: a segment not a tuple is a Record
            if records:
                state.observe(records, complete=True)
                total += len(records)
            m.records_joined.labels(model).inc(total)
            self._delta(model, PIPELINE_SOURCE, "joined", total)
        for model, records in routed.incomplete.items():
            self.models[model].observe(records, complete=False)
        for model, pairs in routed.labels.items():
            self.models[model].observe_labels(pairs)
            m.labels_joined.labels(model).inc(len(pairs))
            self._delta(model, PIPELINE_SOURCE, "labels_joined", len(pairs))
        for (model, cause), lost in routed.labels_lost.items():
            m.label_buffer_evicted.labels(model, cause).inc(lost)
        for model, repeated in routed.duplicates.items():
            m.records_duplicate.labels(model).inc(repeated)
            self._delta(model, PIPELINE_SOURCE, "duplicates", repeated)
        m.join_buffer_records.set(len(self._joins))
        m.label_buffer_records.set(len(self._labels))

    def _count_accepted(self, records: Sequence[Record], source: str) -> None:
        per_model: dict[str, int] = defaultdict(int)
        for record in records:
            per_model[record.model] += 1
        self._count(per_model, source)

    def _count(self, per_model: dict[str, int], source: str) -> None:
        self._changed.update(per_model)
        if source == self._external_source:
            self._external.update(per_model)
        for model, n in per_model.items():
            self.metrics.records_received.labels(model, source).inc(n)
            self.metrics.records_accepted.labels(model, source).inc(n)
            self._delta(model, source, "received", n)
            self._delta(model, source, "accepted", n)

    def _reject(
        self,
        rejections: Sequence[Rejection],
        source: str,
        now: float,
        raw_bytes: bytes | None,
        headers: dict[str, str] | None,
        origin: Origin | None = None,
    ) -> None:
        with self._lock:
            for rejection in rejections:
                # Only configured names label metrics: a hostile client must not mint series.
                model = rejection.model if rejection.model in self.models else UNKNOWN_MODEL
                self.metrics.records_received.labels(model, source).inc()
                self.metrics.records_rejected.labels(model, source, rejection.reason).inc()
                self._delta(model, source, "received")
                self._delta(model, source, "rejected")
        if self._dead_letters is not None:
            if origin is None:
                self._dead_letters([DeadLetterItem(now, source, r, raw_bytes, headers) for r in rejections])
            else:
                self._dead_letters([DeadLetterItem(now, source, r, *origin(r)) for r in rejections])

    def _delta(self, model: str, source: str, name: str, n: int = 1) -> None:
        self._deltas[(model, source)][name] += n
