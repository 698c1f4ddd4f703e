"""Segment analysis in the service: a model's ``segments:`` config as a
:class:`~detectors.segments.SegmentSpec`, the records' ``segment`` tags kept beside the
rows waiting for the detector, and the slice detectors run and published beside the
whole population (see :mod:`detectors.segments` for the statistics and the bounds).

Slice windows are evaluated like the whole population's: on the evaluator's thread (or
its child process) when there is one, in the order they close. Labelled predictions reach
their slices' performance windows with the tags their prediction carried (the label
buffer keeps them: monitor/label_buffer.py), and each slice's performance is compared with
the metrics of its own reference rows when the reference has labels
(:func:`monitor.reference_files.build_reference`'s ``segment_performance``). Estimation
stays whole-population only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors.columns import Batch
from detectors.evaluation import Evaluation, evaluate_window
from detectors.model import DetectorSettings, NumberFloors, WindowNumbers
from detectors.performance import PerformanceResult
from detectors.profiles import ReferenceProfile
from detectors.segments import SegmentDetectors, SegmentSpec, SegmentWindow, slice_name, tag_columns
from monitor.evaluator import Evaluator
from monitor.records import Record, RecordColumns
from monitor.settings import ModelConfig

log = logging.getLogger(__name__)

Tags = dict[str, np.ndarray]


def segment_spec(config: ModelConfig) -> SegmentSpec | None:
    """The model's segment analysis, or None without ``segments:``."""
    s = config.segments
    if s is None:
        return None
    return SegmentSpec(tuple(s.keys), s.max_values, s.min_reference_rows, s.admit_rows)


def reference_tags(table: pd.DataFrame | list[dict[str, Any]], spec: SegmentSpec) -> Tags:
    """Each reference row's tag values: the key's column of a table (CSV, Parquet, flat
    JSONL; a missing column means no slices for that key), or the ``segment`` object of
    JSONL records. Values are read as text, as records carry them; nulls have no slice."""
    if isinstance(table, pd.DataFrame):
        out = {}
        for key in spec.keys:
            column = np.full(len(table), None, dtype=object)
            if key in table.columns:
                values = table[key].to_numpy(dtype=object)
                present = ~pd.isna(values)
                column[present] = [str(v) for v in values[present]]
            out[key] = column
        return out
    tags = [row.get("segment") if isinstance(row.get("segment"), dict) else None for row in table]
    return tag_columns(tags, spec.keys)


class ModelSegments:
    """The segment side of one model's state: pending tags and the slice detectors."""

    def __init__(self, spec: SegmentSpec) -> None:
        self.spec = spec
        self.detectors: SegmentDetectors | None = None
        self.windows_evaluated = 0
        self._tags: list[Mapping[str, str] | None] = []
        # Where each slice's window numbers continue: kept across references and restarts, so
        # (model, slice, window_seq) names one window (shared with self.detectors).
        self.numbering = NumberFloors()

    @classmethod
    def for_config(cls, config: ModelConfig) -> ModelSegments | None:
        spec = segment_spec(config)
        return None if spec is None else cls(spec)

    def start(
        self,
        reference: ReferenceProfile,
        settings: DetectorSettings,
        performance: Mapping[str, Mapping[str, float | None]] | None = None,
    ) -> None:
        """New slice detectors against ``reference`` (and its slices); ``performance``: the
        reference metrics of each slice's own rows (the summary's ``segment_performance``).
        Each slice's numbering continues from its previous detector's."""
        self.detectors = SegmentDetectors(reference, settings, self.spec, performance, self.next_numbers())

    def next_numbers(self) -> NumberFloors:
        """Where each slice's window numbering continues (its detector's next numbers at least)."""
        if self.detectors is not None:
            for key, detectors in self.detectors.detectors.items():
                for value, detector in detectors.items():
                    self.numbering.raise_to(slice_name(key, value), detector.next_numbers())
        return self.numbering

    def continue_numbering(self, floors: Mapping[str, WindowNumbers]) -> None:
        """Number each slice's windows from ``floors`` on at least (the store's, at start-up);
        open windows below are renumbered."""
        self.numbering.update(floors)
        if self.detectors is not None:
            for key, detectors in self.detectors.detectors.items():
                for value, detector in detectors.items():
                    detector.continue_numbering(self.numbering.get(slice_name(key, value)))

    # -- tags of the rows waiting for the detector, in the same order -----------------------
    def add_records(self, records: Sequence[Record]) -> None:
        self._tags.extend(r.segment for r in records)

    def add_columns(self, columns: RecordColumns, rows: Sequence[int] | None) -> None:
        segments = columns.segments
        if segments is None:
            self._tags.extend([None] * (len(columns) if rows is None else len(rows)))
        else:
            self._tags.extend(segments if rows is None else [segments[j] for j in rows])

    def take(self) -> Tags:
        tags, self._tags = self._tags, []
        return tag_columns(tags, self.spec.keys)

    # -- windows ----------------------------------------------------------------------------
    def update(
        self, batch: Batch, tags: Tags, evaluator: Evaluator | None, publish: Callable[[Evaluation], None]
    ) -> None:
        """Count ``batch`` into the slices; evaluate and publish the windows that closed."""
        if self.detectors is None:
            return
        for closed in self.detectors.update(batch, tags):
            self._evaluate(closed, evaluator, publish)

    def observe_labels(
        self,
        predictions: np.ndarray,
        labels: np.ndarray,
        timestamps: np.ndarray,
        tags: Sequence[Mapping[str, str] | None],
        publish: Callable[[PerformanceResult], None],
    ) -> None:
        """Count labelled predictions into their slices' performance windows (``tags``: each
        prediction's); publish the results of the windows that closed."""
        if self.detectors is None or not any(tags):
            return
        for result in self.detectors.observe_labels(predictions, labels, timestamps, tag_columns(tags, self.spec.keys)):
            publish(result)

    def drain(self, evaluator: Evaluator | None, publish: Callable[[Evaluation], None]) -> None:
        """Count the slices' waiting rows (every housekeeping tick, before a checkpoint)."""
        if self.detectors is not None:
            for closed in self.detectors.drain():
                self._evaluate(closed, evaluator, publish)

    def flush(self, evaluator: Evaluator | None, publish: Callable[[Evaluation | PerformanceResult], None]) -> None:
        if self.detectors is not None:
            for closed in self.detectors.flush():
                self._evaluate(closed, evaluator, publish)
            if evaluator is not None:
                evaluator.settle()
            for result in self.detectors.flush_performance():
                publish(result)

    def _evaluate(
        self, closed: SegmentWindow, evaluator: Evaluator | None, publish: Callable[[Evaluation], None]
    ) -> None:
        detectors = self.detectors
        assert detectors is not None

        def done(evaluation: Evaluation) -> None:
            publish(detectors.label(evaluation, closed))
            self.windows_evaluated += 1

        if evaluator is None:
            done(evaluate_window(closed.window, closed.settings))
        else:
            evaluator.submit_window(closed.window, closed.settings, done)

    def public(self) -> dict[str, Any]:
        """What /v1/models says of the slices: the keys and bound, each slice with windows
        (:meth:`SegmentDetectors.overview`), the rows pooled per key as ``__other__``."""
        detectors = self.detectors
        return {
            "keys": list(self.spec.keys),
            "max_values": self.spec.max_values,
            "slices": [] if detectors is None else detectors.overview(),
            "pooled": dict.fromkeys(self.spec.keys, 0) if detectors is None else dict(detectors.pooled),
            "windows_evaluated": self.windows_evaluated,
        }

    # -- checkpoints ------------------------------------------------------------------------
    def to_bytes(self) -> bytes | None:
        return None if self.detectors is None else self.detectors.to_bytes()

    def restore(self, data: bytes) -> None:
        """Put checkpointed slice detectors back (same reference and segment settings);
        otherwise new slice windows start, and the log says why."""
        current = self.detectors
        if current is None:
            return
        try:
            self.detectors = SegmentDetectors.from_bytes(
                data, current.reference, current.settings, self.spec, current.performance
            )
            self.numbering = self.detectors.numbering  # the checkpoint's: records read again get the same numbers
        except (ValueError, KeyError) as exc:
            log.warning("segment windows of the checkpoint not restored (%s): new windows start", exc)
