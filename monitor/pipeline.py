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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.metrics import UNKNOWN_MODEL, Metrics
from detectors.reference import ReferenceProfile
from monitor.evaluator import Evaluator
from monitor.joins import JoinBuffer, LabelBuffer
from monitor.model_state import ModelState, ReferenceSaver, ResultSink
from monitor.records import Record, Rejection
from monitor.settings import ModelConfig, Settings

log = logging.getLogger(__name__)

# Join-level counts are kept per model under this source name: a joined record can mix
# sources (a KServe request event and a label posted later), so it belongs to none of them.
PIPELINE_SOURCE = "pipeline"
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


class DeadLetterSink(Protocol):
    def __call__(self, items: Sequence[DeadLetterItem]) -> None: ...


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


@dataclass
class _Routed:
    """Records of one ingest call, grouped by model before they reach model state."""

    complete: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    # Predictions pushed out of the label buffer unlabelled, per model (counted once per call).
    labels_lost: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    incomplete: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    labels: dict[str, list[tuple[Any, Any, float]]] = field(default_factory=lambda: defaultdict(list))


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
    ):
        self.settings = settings
        self.metrics = metrics
        self._dead_letters = dead_letters
        self._clock = clock
        self._sinks = list(sinks)
        self._save_reference = save_reference
        self.evaluator = Evaluator()
        self._lock = threading.Lock()
        self._joins = JoinBuffer(settings.limits.join_buffer_size, settings.limits.join_ttl_seconds)
        self._labels = LabelBuffer(settings.limits.label_buffer_size, settings.limits.label_ttl_seconds)
        self.models: dict[str, ModelState] = {
            name: ModelState(name, config, self._sinks, save_reference, self.evaluator)
            for name, config in settings.models.items()
        }
        # Model name -> config, including models registered from traffic; collectors and
        # the validator read it to know which models exist.
        self.configs: dict[str, ModelConfig] = dict(settings.models)
        self._deltas: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_FIELDS, 0))

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
            routed = _Routed()
            duplicates = 0
            models = self.models
            for record in records:
                if record.model not in models:
                    self._register(record.model)
                duplicates += self._route(record, now, routed)
            self._count_accepted(records, source)
            self._expire(now, routed)
            self._deliver(routed)
        return IngestResult(len(records), list(rejections), duplicates)

    # -- housekeeping -------------------------------------------------------------------
    def expire(self) -> None:
        """Release partial records past their time-to-live and hand every model's pending
        records to its detector (called periodically)."""
        with self._lock:
            routed = _Routed()
            self._expire(self._clock(), routed)
            self._deliver(routed)
            for state in self.models.values():
                state.feed()

    def drain(self) -> None:
        """Shutdown: hand every buffered partial record on as incomplete, so no accepted
        record is lost."""
        with self._lock:
            routed = _Routed()
            for record in self._joins.drain():
                self._release(record, routed)
            self._deliver(routed)
            for state in self.models.values():
                state.feed()

    def take_count_deltas(self) -> dict[tuple[str, str], dict[str, int]]:
        """Counts added since the last call, keyed ``(model, source)``, for the store."""
        with self._lock:
            deltas = {key: dict(value) for key, value in self._deltas.items()}
            self._deltas.clear()
        return deltas

    def restore_count_deltas(self, deltas: dict[tuple[str, str], dict[str, int]]) -> None:
        """Put back deltas the store failed to write, so they go with the next flush."""
        with self._lock:
            for key, values in deltas.items():
                target = self._deltas[key]
                for name, value in values.items():
                    target[name] += value

    def set_reference(self, model: str, profile: ReferenceProfile, summary: dict[str, Any] | None = None) -> None:
        """A new reference for ``model``: its windows start over against it."""
        with self._lock:
            self.models[model].set_reference(profile, summary)

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

    # -- internals ------------------------------------------------------------------------
    def _register(self, model: str) -> None:
        if model not in self.models:
            # Only reachable with unknown_models: register (the validator refuses otherwise).
            log.info("registering model %r seen in traffic", model)
            config = ModelConfig()
            self.configs[model] = config
            self.models[model] = ModelState(model, config, self._sinks, self._save_reference, self.evaluator)

    def _route(self, record: Record, now: float, routed: _Routed) -> int:
        """Join or forward one record; returns 1 if it was a duplicate."""
        model = record.model
        if record.id is None:  # complete by validation: nothing to join, nothing to dedupe
            self._complete(record, now, routed, None)
            return 0
        key = (model, record.id)
        awaiting = self._labels.get(key)
        if awaiting is not None:  # this id was completed before
            if record.has_label and not awaiting.labelled and record.inputs is None and not record.has_prediction:
                self._labels.mark_labelled(key)
                routed.labels[model].append((awaiting.prediction, record.label, awaiting.timestamp))
                return 0
            routed.duplicates[model] += 1
            return 1
        if record.inputs is not None and record.has_prediction and key not in self._joins:
            self._complete(record, now, routed, key)
            return 0
        completed, repeated, evicted = self._joins.offer(record, now)
        for old in evicted:
            self.metrics.join_evicted.labels(old.model).inc()
            self._delta(old.model, PIPELINE_SOURCE, "evicted")
            self._release(old, routed)
        if completed is not None:
            self._complete(completed, now, routed, key)
        if repeated:
            routed.duplicates[model] += 1
            return 1
        return 0

    def _complete(self, record: Record, now: float, routed: _Routed, key: tuple[str, str] | None) -> None:
        routed.complete[record.model].append(record)
        if record.has_label:
            routed.labels[record.model].append((record.prediction, record.label, record.timestamp))
        if key is not None:
            for lost in self._labels.remember(key, record, now):
                routed.labels_lost[lost[0]] += 1

    def _release(self, record: Record, routed: _Routed) -> None:
        """A partial record leaves the join buffer without its counterpart."""
        if record.inputs is None and not record.has_prediction:
            self.metrics.labels_unmatched.labels(record.model).inc()
            self._delta(record.model, PIPELINE_SOURCE, "labels_unmatched")
            return
        missing = "prediction" if record.inputs is not None else "inputs"
        self.metrics.join_incomplete.labels(record.model, missing).inc()
        self._delta(record.model, PIPELINE_SOURCE, "incomplete")
        routed.incomplete[record.model].append(record)

    def _expire(self, now: float, routed: _Routed) -> None:
        for record in self._joins.expire(now):
            self._release(record, routed)
        for key in self._labels.expire(now):
            routed.labels_lost[key[0]] += 1

    def _deliver(self, routed: _Routed) -> None:
        m = self.metrics
        for model, records in routed.complete.items():
            self.models[model].observe(records, complete=True)
            m.records_joined.labels(model).inc(len(records))
            self._delta(model, PIPELINE_SOURCE, "joined", len(records))
        for model, records in routed.incomplete.items():
            self.models[model].observe(records, complete=False)
        for model, pairs in routed.labels.items():
            self.models[model].observe_labels(pairs)
            m.labels_joined.labels(model).inc(len(pairs))
            self._delta(model, PIPELINE_SOURCE, "labels_joined", len(pairs))
        for model, lost in routed.labels_lost.items():
            m.label_buffer_evicted.labels(model).inc(lost)
        for model, repeated in routed.duplicates.items():
            m.records_duplicate.labels(model).inc(repeated)
            self._delta(model, PIPELINE_SOURCE, "duplicates", repeated)
        m.join_buffer_records.set(len(self._joins))
        m.label_buffer_records.set(len(self._labels))

    def _count_accepted(self, records: Sequence[Record], source: str) -> None:
        per_model: dict[str, int] = defaultdict(int)
        for record in records:
            per_model[record.model] += 1
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
            self._dead_letters([DeadLetterItem(now, source, r, raw_bytes, headers) for r in rejections])

    def _delta(self, model: str, source: str, name: str, n: int = 1) -> None:
        self._deltas[(model, source)][name] += n
