"""Per-model state behind the pipeline: counts, the model's detector (windows over its
traffic against its reference), and the warm-up that builds a reference from the first
records when the config asks for it.

Evaluations and performance results go to the sinks (store, metrics, alert engine) in
the order windows close; each closed window is evaluated exactly once.

A model's windows are numbered on across its detectors (a new reference, a restart without
a checkpoint: :meth:`ModelState.continue_numbering`), so ``(model, window_seq)`` names one
window and the store's newest window is the latest one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from detectors.columns import Batch
from detectors.estimation.window import Estimators
from detectors.evaluation import Evaluation
from detectors.model import ModelDetector, WindowNumbers
from detectors.profiles import ReferenceProfile
from detectors.results import Estimate, Result, ResultSink
from monitor.detection import (
    batch_from_columns,
    batch_from_records,
    concat_batches,
    detector_settings,
    prediction_column,
    probability_classes,
    schema_for,
    with_version,
)
from monitor.evaluator import Evaluator
from monitor.records import Record, RecordColumns
from monitor.routing import LabelledPair
from monitor.segment_state import ModelSegments, Tags
from monitor.settings import ModelConfig
from monitor.version_state import ModelVersions, VersionRows

log = logging.getLogger(__name__)


# Records are handed to the detector in batches of at least this many (or at the next
# housekeeping tick): a detector update has a fixed numpy cost of ~0.5 ms whatever the
# batch size, which single-record requests would otherwise pay each time.
DETECTOR_BATCH = 256

# Called with (model, profile bytes, content hash, summary) when the warm-up built a
# reference; returns the version the store assigned.
ReferenceSaver = Callable[[str, bytes, str, dict[str, Any]], str]


class ModelState:
    """Everything the pipeline keeps for one model."""

    def __init__(
        self,
        name: str,
        config: ModelConfig,
        sinks: Sequence[ResultSink] = (),
        save_reference: ReferenceSaver | None = None,
        evaluator: Evaluator | None = None,
    ):
        self.name = name
        self.config = config
        self.schema = schema_for(config)
        self.classes = probability_classes(config)  # a multiclass model's batches carry its probabilities
        self.sinks = list(sinks)
        self.save_reference = save_reference
        self.evaluator = evaluator
        self.records = 0
        self.incomplete = 0
        self.labelled = 0
        self.windows_evaluated = 0
        self.detector: ModelDetector | None = None
        self.reference_version: str | None = None
        # Where the whole population's numbering continues when a new detector is made.
        self._numbers = WindowNumbers()
        # Drift per slice of the traffic (config ``segments:``), beside the whole population.
        self.segments = ModelSegments.for_config(config)
        # Windows per model version (config ``versions:``), beside the whole population.
        self.versions = ModelVersions.for_config(config)
        if self.versions is not None and config.reference.mlflow is not None and config.reference.mlflow.per_version:
            # No reference of the model's own (a registry template): each version gets its own.
            self.versions.prepare(detector_settings(config, None))
        # What /v1/models says of the estimates before labels come: the active methods and,
        # when fitting them on the reference failed, why (the reference summary's "estimation").
        self.estimation: dict[str, Any] = {"methods": [], "error": None}
        self._warmup: list[Any] = []
        self._warmup_rows = 0
        # Records waiting for the detector, in arrival order: batches already in columns,
        # then the Records that came after the last of them (``_pending_rows`` in all).
        self._pending_batches: list[Batch] = []
        self._pending: list[Record] = []
        self._pending_rows = 0
        self._pending_labels: list[LabelledPair] = []

    # -- reference --------------------------------------------------------------------------
    def set_reference(
        self, profile: ReferenceProfile, summary: dict[str, Any] | None = None, estimators: Estimators | None = None
    ) -> None:
        """Start new windows against ``profile`` (the open window of the old one is dropped:
        its counts were against other bins), estimated with ``estimators`` (fitted on it)."""
        performance = (summary or {}).get("performance")
        settings = replace(detector_settings(self.config, performance), estimators=estimators)
        numbers = self.next_numbers()
        self.detector = ModelDetector(profile, settings)
        self.detector.continue_numbering(numbers)  # the old detector's windows keep their numbers
        fitted = (summary or {}).get("estimation") or {}
        self.estimation = {"methods": [] if estimators is None else estimators.methods, "error": fitted.get("error")}
        self.reference_version = str(profile.version)
        if self.segments is not None:  # each slice compared with its own reference rows' metrics
            self.segments.start(profile, settings, (summary or {}).get("segment_performance"))
        if self.versions is not None:
            self.versions.start(profile, settings)
        self._warmup.clear()
        self._warmup_rows = 0
        if self.evaluator is not None:
            self.evaluator.prepare(self.detector.layout)
        log.info("model %s: reference version %s active", self.name, self.reference_version)

    def next_numbers(self) -> WindowNumbers:
        """The numbers the whole population's next drift and performance windows get at least."""
        if self.detector is not None:
            self._numbers = self._numbers | self.detector.next_numbers()
        return self._numbers

    def continue_numbering(
        self,
        numbers: WindowNumbers,
        slices: Mapping[str, WindowNumbers] | None = None,
        versions: Mapping[str, WindowNumbers] | None = None,
    ) -> None:
        """Number the model's windows from ``numbers`` on at least, each slice's and version's
        from its entry in ``slices`` / ``versions`` (the store's highest numbers plus one, at
        start-up before traffic); open windows below them are renumbered."""
        self._numbers = self._numbers | numbers
        if self.detector is not None:
            self.detector.continue_numbering(self._numbers)
        if self.segments is not None:
            self.segments.continue_numbering(slices or {})
        if self.versions is not None:
            self.versions.continue_numbering(versions or {})

    @property
    def warming_up(self) -> bool:
        return self.detector is None and self.config.reference.from_first_records > 0

    @property
    def counting(self) -> bool:
        """Whether records go on to windows: a reference, a warm-up, or per-version windows."""
        return self.detector is not None or self.warming_up or (self.versions is not None and self.versions.ready)

    # -- traffic ----------------------------------------------------------------------------
    def observe(self, records: Sequence[Record], complete: bool) -> None:
        """Count records (complete, or released incomplete from the join buffer) and feed
        them to the detector."""
        if complete:
            self.records += len(records)
        else:
            self.incomplete += len(records)
        if not self.counting:
            return
        self._pending.extend(records)
        self._pending_rows += len(records)
        if self.segments is not None:
            self.segments.add_records(records)
        if self.versions is not None:
            self.versions.add_records(records)
        if self._pending_rows >= DETECTOR_BATCH:
            self.feed(drain=False)

    def observe_columns(self, columns: RecordColumns, rows: Sequence[int] | None = None) -> None:
        """Count complete records validated column-wise (``rows`` of ``columns``, or all)
        and feed them to the detector, after the records observed before them."""
        n = len(columns) if rows is None else len(rows)
        self.records += n
        if n == 0 or not self.counting:
            return
        if self._pending:  # keep the arrival order
            records, self._pending = self._pending, []
            self._pending_batches.append(batch_from_records(records, self.schema, self.classes))
        self._pending_batches.append(batch_from_columns(columns, self.schema, rows, self.classes))
        self._pending_rows += n
        if self.segments is not None:
            self.segments.add_columns(columns, rows)
        if self.versions is not None:
            self.versions.add_columns(columns, rows)
        if self._pending_rows >= DETECTOR_BATCH:
            self.feed(drain=False)

    def feed(self, drain: bool = True) -> None:
        """Hand the pending records and labels to the detector (called per batch and on
        every housekeeping tick, and before a replay or checkpoint ends). ``drain``: the
        slices' waiting rows too (not per batch: they wait to be counted in bulk)."""
        if self._pending_rows:
            batches, records = self._pending_batches, self._pending
            self._pending_batches, self._pending, self._pending_rows = [], [], 0
            if records:
                batches.append(batch_from_records(records, self.schema, self.classes))
            batch = Batch.concat(batches)
            tags = None if self.segments is None else self.segments.take()
            versions = None if self.versions is None else self.versions.take()
            if self.detector is None and not self.warming_up:  # per-version windows only
                assert self.versions is not None and versions is not None
                self.versions.update(batch, versions, self.evaluator, self._publish)
            elif self.detector is None:
                self._warm_up(batch, tags, versions)
            else:
                self._update(batch, tags, versions)
        if drain and self.segments is not None:
            self.segments.drain(self.evaluator, self._publish)
        if self._pending_labels:
            pairs, self._pending_labels = self._pending_labels, []
            self._labels(pairs)

    def observe_labels(self, pairs: Sequence[LabelledPair]) -> None:
        """``(prediction, label, prediction timestamp, segment tags)`` for performance windows
        (the whole population's and the tagged slices')."""
        self.labelled += len(pairs)
        if self.detector is None or self.detector.performance is None:
            return
        self._pending_labels.extend(pairs)
        if len(self._pending_labels) >= DETECTOR_BATCH:
            self.feed(drain=False)

    def _labels(self, pairs: Sequence[LabelledPair]) -> None:
        assert self.detector is not None and self.detector.performance is not None
        predictions = prediction_column([pair[0] for pair in pairs], self.schema)
        labels = np.array([pair[1] for pair in pairs], dtype=object)
        timestamps = np.array([pair[2] for pair in pairs], dtype=np.float64)
        for result in self.detector.observe_labels(predictions, labels, timestamps):
            self._publish(result)
        if self.segments is not None:
            tags = [pair[3] for pair in pairs]
            self.segments.observe_labels(predictions, labels, timestamps, tags, self._publish)

    def flush(self) -> None:
        """Evaluate the open drift and performance windows whatever their size (end of a replay)."""
        self.feed()
        if self.evaluator is not None:
            self.evaluator.settle()  # windows closed earlier are published first
        if self.detector is not None:
            window = self.detector.windower.flush()
            if window is not None and window.n:  # as ModelDetector.flush, keeping the window for its estimates
                self._evaluated(self.detector.evaluate(window))
                self._estimated(self.detector.estimate(window))
                if self.versions is not None:
                    self.versions.window_closed(window, self.reference_version or "", None, self._publish)
            if self.segments is not None:
                self.segments.flush(self.evaluator, self._publish)
            if self.versions is not None:
                self.versions.flush(self.evaluator, self._publish)
            performance = self.detector.flush_performance()  # the last labels' partial window too
            if performance is not None:
                self._publish(performance)

    # -- internals --------------------------------------------------------------------------
    def _update(self, batch: Any, tags: Tags | None = None, versions: VersionRows | None = None) -> None:
        detector = self.detector
        assert detector is not None
        if tags is not None and self.segments is not None:
            self.segments.update(batch, tags, self.evaluator, self._publish)
        if versions is not None and self.versions is not None:
            self.versions.update(batch, versions, self.evaluator, self._publish)
        for window in detector.close(batch):
            if self.evaluator is None:
                self._evaluated(detector.evaluate(window))
                self._estimated(detector.estimate(window))
            else:
                self.evaluator.submit_window(window, detector.settings.evaluation, self._evaluated)
                if detector.settings.estimators is not None:  # queued after the evaluation: published after it
                    self.evaluator.submit_estimates(window, detector.estimate, self._estimated)
            if self.versions is not None:  # champion vs challenger over the same window
                self.versions.window_closed(window, self.reference_version or "", self.evaluator, self._publish)

    def _evaluated(self, evaluation: Evaluation) -> None:
        self._publish(evaluation)
        self.windows_evaluated += 1  # counted once published: readers then find the results

    def _estimated(self, estimates: Sequence[Estimate]) -> None:
        for estimate in estimates:
            self._publish(estimate)

    def _publish(self, result: Result | Estimate) -> None:
        for sink in self.sinks:
            try:
                sink.publish(self.name, self.reference_version or "", result)
            except Exception:  # one failing sink must not stop the others or the traffic
                log.exception("model %s: %s could not publish a result", self.name, type(sink).__name__)

    def _warm_up(self, batch: Any, tags: Tags | None = None, versions: VersionRows | None = None) -> None:
        wanted = self.config.reference.from_first_records
        take = min(len(batch), wanted - self._warmup_rows)
        self._warmup.append(batch.select(slice(0, take)))
        self._warmup_rows += take
        if self._warmup_rows < wanted:
            return
        ref = self.config.reference
        version = "warmup"
        profile = ReferenceProfile.from_batch(
            concat_batches(self._warmup), self.schema, version=version,
            bins=ref.bins, sample_size=ref.sample_size, top_k=ref.top_k,
        )  # fmt: skip
        summary = {"rows": self._warmup_rows, "channels": dict(self.schema.channels()), "source": "first_records"}
        if self.save_reference is not None:
            version = self.save_reference(self.name, profile.to_bytes(), profile.content_hash, summary)
            profile = with_version(profile, version)
        self.set_reference(profile, summary)
        rest = batch.select(slice(take, None))
        if len(rest):  # the records beyond the reference open the first window
            rest_tags = None if tags is None else {key: values[take:] for key, values in tags.items()}
            self._update(rest, rest_tags, None if versions is None else (versions[0][take:], versions[1][take:]))
