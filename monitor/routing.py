"""Routing one call's records through the join and label buffers.

A complete record goes to its model at once (and is remembered in the label buffer, so a
late label meets its prediction); a partial record waits in the join buffer for its other
part; a repeated part is a duplicate; a label joins the prediction it names. What a call
routes is gathered per model in a :class:`Routed`, which the pipeline then delivers to
model state in one go.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import itemgetter
from typing import Any, cast

from detectors.columns import Batch
from detectors.schema import Schema
from monitor.joins import TTL, JoinBuffer, Key
from monitor.label_buffer import Keep, LabelBuffer, Lost, Tags
from monitor.metrics import Metrics
from monitor.records import Record, RecordColumns, ValidatedItems

# A labelled prediction for the performance windows: (prediction, label, prediction
# timestamp, segment tags or None), the tags for the slices' windows (monitor/segment_state.py).
LabelledPair = tuple[Any, Any, float, Tags]

# Shadow traffic (monitor/version_state.py): for a model with a champion and a challenger,
# one request scored by both versions comes as two records of one id; each is keyed by its id
# and version (id + this + version), so the second is not a duplicate of the first.
VERSION_SEPARATOR = "\x1f"

# Join-level counts are kept per model under this source name: a joined record can mix
# sources (a KServe request event and a label posted later), so it belongs to none of them.
PIPELINE_SOURCE = "pipeline"


@dataclass
class Routed:
    """Records of one ingest call, grouped by model before they reach model state."""

    # In arrival order: Records, and (columns, rows or None for all) runs of records
    # validated column-wise.
    complete: dict[str, list[Record | tuple[RecordColumns, Sequence[int] | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Predictions that left the label buffer unlabelled (or were not taken), per (model,
    # cause) (counted once per call).
    labels_lost: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    duplicates: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    incomplete: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    # (prediction, label, prediction timestamp, the prediction's segment tags) per model.
    labels: dict[str, list[LabelledPair]] = field(default_factory=lambda: defaultdict(list))


def label_predictions(schema_of: Callable[[str], Schema | None]) -> Keep:
    """What the label buffer keeps of predictions (its ``keep``): a class -> probability
    mapping becomes what the model's performance windows read of it, the positive class's
    score (binary) or the arg-max class (multiclass), encoded by the detectors' own code
    (``Batch.from_columns`` on the model's prediction channel alone), so that encoding it
    again when the label comes gives the same value (a float, a class name or None) and
    the same performance results; other predictions are kept as they are. One mapping of
    500 class names of 200 characters is ~155 KB (estimated); what a label needs of it,
    one name of ~250 bytes. Cost: ~1 µs per mapping in a batch, ~8 µs for a single one."""
    channels: dict[str, Schema] = {}  # model -> its schema without features: the prediction's part only

    def keep(keys: Sequence[Key], predictions: Sequence[Any]) -> Sequence[Any]:
        if not any(issubclass(kind, Mapping) for kind in set(map(type, predictions))):
            return predictions  # the common case: one C-level pass
        rows: dict[str, list[int]] = defaultdict(list)
        for i, prediction in enumerate(predictions):
            if isinstance(prediction, Mapping):
                rows[keys[i][0]].append(i)
        kept = list(predictions)
        for model, positions in rows.items():
            channel = channels.get(model)
            if channel is None:
                schema = schema_of(model)
                if schema is None or schema.prediction_type is None:
                    continue  # no prediction channel: nothing reads it, and it stays as it came
                channel = channels[model] = replace(schema, features={}, latency_column=None)
            mappings = [predictions[i] for i in positions]
            batch = Batch.from_columns(channel, [0.0] * len(mappings), {}, prediction=mappings)
            assert batch.prediction is not None  # the schema has a prediction channel
            for i, value in zip(positions, batch.prediction.tolist(), strict=True):
                # NaN (no score) as None: the same to the windows, and what a checkpoint's
                # JSON would make of it anyway.
                kept[i] = None if value != value else value
        return kept

    return keep


def shadow_keyed(configs: Mapping[str, Any]) -> Callable[[str], bool]:
    """Whether a model's records are keyed by id and version (a champion and a challenger)."""

    def keyed(model: str) -> bool:
        config = configs.get(model)
        versions = None if config is None else config.versions
        return versions is not None and versions.challenger is not None

    return keyed


def plain_id(key_id: str) -> str:
    """A record id without the version a shadow-keyed model's key carries."""
    return key_id.rpartition(VERSION_SEPARATOR)[0] if VERSION_SEPARATOR in key_id else key_id


class Router:
    """Joins and dedupes records with the pipeline's buffers; ``count(model, source, name, n)``
    adds to the pipeline's persisted counts; ``keyed_by_version(model)``: whether its records'
    key is their id and version (:func:`shadow_keyed`). Not thread-safe: the pipeline's lock guards it."""

    def __init__(
        self, joins: JoinBuffer, labels: LabelBuffer, metrics: Metrics, count: Callable[[str, str, str, int], None],
        keyed_by_version: Callable[[str], bool] = lambda model: False,
    ):  # fmt: skip
        self.joins = joins
        self.labels = labels
        self.metrics = metrics
        self._count = count
        self._keyed_by_version = keyed_by_version

    def route_valid(self, valid: ValidatedItems, now: float, routed: Routed) -> int:
        """Route a call's records and record columns in item order; returns the duplicates."""
        for columns in valid.columns:
            versions = columns.versions
            if versions is not None and self._keyed_by_version(columns.model):
                columns.ids = [
                    i if i is None or v is None else f"{i}{VERSION_SEPARATOR}{v}"
                    for i, v in zip(columns.ids, versions, strict=True)
                ]
        streams: list[tuple[list[int], RecordColumns | None]] = [(c.positions, c) for c in valid.columns]
        if valid.records:
            streams.append((valid.record_positions, None))
        heads = [0] * len(streams)
        duplicates = 0
        while True:
            # The stream whose next item comes first runs up to the next item of another.
            best, first, second = -1, -1, -1
            for s, (positions, _) in enumerate(streams):
                if heads[s] < len(positions):
                    p = positions[heads[s]]
                    if best < 0 or p < first:
                        second = first
                        best, first = s, p
                    elif second < 0 or p < second:
                        second = p
            if best < 0:
                return duplicates
            positions, chunk = streams[best]
            start = heads[best]
            stop = len(positions) if second < 0 else bisect_left(positions, second, start)
            heads[best] = stop
            if chunk is None:
                for record in valid.records[start:stop]:
                    duplicates += self.route(record, now, routed)
            else:
                duplicates += self._route_columns(chunk, start, stop, now, routed)

    def _route_columns(self, chunk: RecordColumns, start: int, stop: int, now: float, routed: Routed) -> int:
        """What :meth:`route` does to each of rows ``start:stop`` of ``chunk`` (complete
        records), for all of them at once when their ids are new; returns the duplicates."""
        model = chunk.model
        whole = start == 0 and stop == len(chunk)
        ids = chunk.ids if whole else chunk.ids[start:stop]
        segments = routed.complete[model]
        if None not in ids:
            # cast: None is not in ids (checked just above), which mypy cannot narrow.
            keys = list(zip(repeat(model), cast(list[str], ids)))
            if self.labels.all_new(keys) and not self.joins.holds_any(keys):
                labels = None if chunk.labels is None else chunk.labels[start:stop]
                lost = self.labels.remember_all(
                    keys,
                    chunk.predictions[start:stop],
                    chunk.timestamps[start:stop],
                    None if labels is None else [label is not None for label in labels],
                    now,
                    model,
                    None if chunk.segments is None else chunk.segments[start:stop],
                )
                if lost:
                    _count_lost(lost, routed)
                rows = None if whole else range(start, stop)
                segments.append((chunk, rows))
                self._column_labels(chunk, range(start, stop), routed)
                return 0
        # One row at a time: an id seen before (a duplicate, or the other part of a
        # buffered partial record) goes the record way, in its place.
        duplicates = 0
        run: list[int] = []
        for j in range(start, stop):
            record_id = chunk.ids[j]
            if record_id is not None:
                key = (model, record_id)
                if key in self.labels or key in self.joins:
                    if run:
                        segments.append((chunk, run))
                        self._column_labels(chunk, run, routed)
                        run = []
                    duplicates += self.route(chunk.record(j), now, routed)
                    continue
                labelled = chunk.labels is not None and chunk.labels[j] is not None
                tags = None if chunk.segments is None else chunk.segments[j]
                lost = self.labels.remember_values(key, chunk.predictions[j], chunk.timestamps[j], labelled, now, tags)
                if lost:
                    _count_lost(lost, routed)
            run.append(j)
        if run:
            segments.append((chunk, run))
            self._column_labels(chunk, run, routed)
        return duplicates

    @staticmethod
    def _column_labels(chunk: RecordColumns, rows: Sequence[int], routed: Routed) -> None:
        """Labels that came with complete records, for the performance windows."""
        if chunk.labels is None:
            return
        pairs = routed.labels[chunk.model]
        segments = chunk.segments
        for j in rows:
            label = chunk.labels[j]
            if label is not None:
                tags = None if segments is None else segments[j]
                pairs.append((chunk.predictions[j], label, chunk.timestamps[j], tags))

    def route(self, record: Record, now: float, routed: Routed) -> int:
        """Join or forward one record; returns 1 if it was a duplicate."""
        model = record.model
        if record.id is not None and record.version is not None and self._keyed_by_version(model):
            keyed = f"{VERSION_SEPARATOR}{record.version}"
            if not record.id.endswith(keyed):  # not keyed already (a row of rewritten columns)
                record.id += keyed
        if record.id is None:  # complete by validation: nothing to join, nothing to dedupe
            self._complete(record, now, routed, None)
            return 0
        key = (model, record.id)
        awaiting = self.labels.get(key)
        if awaiting is not None:  # this id was completed before
            if record.has_label and not awaiting.labelled and record.inputs is None and not record.has_prediction:
                self.labels.mark_labelled(key)
                # The prediction's tags (a label posted alone rarely repeats them); the label's own otherwise.
                tags = awaiting.segment or record.segment
                routed.labels[model].append((awaiting.prediction, record.label, awaiting.timestamp, tags))
                return 0
            routed.duplicates[model] += 1
            return 1
        if record.inputs is not None and record.has_prediction and key not in self.joins:
            self._complete(record, now, routed, key)
            return 0
        completed, repeated, evicted = self.joins.offer(record, now)
        if evicted:
            self.evicted(evicted, routed)
        if completed is not None:
            self._complete(completed, now, routed, key)
        if repeated:
            routed.duplicates[model] += 1
            return 1
        return 0

    def _complete(self, record: Record, now: float, routed: Routed, key: tuple[str, str] | None) -> None:
        routed.complete[record.model].append(record)
        if record.has_label:
            routed.labels[record.model].append((record.prediction, record.label, record.timestamp, record.segment))
        if key is not None:
            lost = self.labels.remember(key, record, now)
            if lost:
                _count_lost(lost, routed)

    def evicted(self, evicted: Sequence[tuple[str, Record]], routed: Routed) -> None:
        """Partial records pushed out of the join buffer early (or not taken), by cause."""
        for cause, old in evicted:
            self.metrics.join_evicted.labels(old.model, cause).inc()
            self._count(old.model, PIPELINE_SOURCE, "evicted", 1)
            self.release(old, routed)

    def lost(self, lost: Lost, routed: Routed) -> None:
        """Predictions that left the label buffer unlabelled (or were not taken), by cause."""
        _count_lost(lost, routed)

    def release(self, record: Record, routed: Routed) -> None:
        """A partial record leaves the join buffer without its counterpart."""
        if record.inputs is None and not record.has_prediction:
            self.metrics.labels_unmatched.labels(record.model).inc()
            self._count(record.model, PIPELINE_SOURCE, "labels_unmatched", 1)
            return
        missing = "prediction" if record.inputs is not None else "inputs"
        self.metrics.join_incomplete.labels(record.model, missing).inc()
        self._count(record.model, PIPELINE_SOURCE, "incomplete", 1)
        routed.incomplete[record.model].append(record)

    def expire(self, now: float, routed: Routed) -> None:
        for record in self.joins.expire(now):
            self.release(record, routed)
        expired = self.labels.expire(now)
        if expired:
            _count_lost({TTL: expired}, routed)


def _count_lost(lost: Lost, routed: Routed) -> None:
    counts = routed.labels_lost
    for cause, keys in lost.items():
        if len(keys) < 8:  # one record's eviction: a Counter would cost more than the loop
            for key in keys:
                counts[key[0], cause] += 1
        else:
            for model, n in Counter(map(itemgetter(0), keys)).items():
                counts[model, cause] += n
