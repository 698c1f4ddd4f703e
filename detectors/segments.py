"""Segment analysis: drift per slice of the traffic (``region:eu``), each slice compared
with its own slice of the reference, beside the whole population.

A shift confined to one region is diluted in the whole population and stays under the
threshold there; segments differ from each other by nature (a kiosk is not a phone), so
each slice is compared with the reference rows of the same tag value, not the whole
reference.

* **Reference slices** (:func:`build_slices`): per tag key, the values with at least
  ``min_reference_rows`` reference rows (the busiest ``max_values`` of them) get a profile
  of their own rows, kept in :attr:`ReferenceProfile.slices` by slice name. Any other value
  is compared with the whole reference; each result says which (``reference_slice``:
  ``"region:eu"`` or ``"whole"``).
* **Which values get detectors** (:class:`SegmentDetectors`): at most ``max_values`` per
  key. Values with a reference slice take their slots first (busiest first). A value seen
  only in traffic takes a free slot once it has ``admit_rows`` rows, counted in a
  Misra-Gries summary of ``4 * max_values`` counters per key: Misra-Gries never
  over-counts, so a flood of one-off values (an id sent as a tag) takes no slot, and
  any value with more than 1/(4 * max_values + 1) of the key's unadmitted rows is
  tracked. Slots are never taken back (a slice's windows and alerts stay stable).
  Rows of values without a slot are pooled into the slice ``key:__other__`` (its own
  detector, on the whole reference) and counted exactly (:attr:`SegmentDetectors.pooled`).
  Rows without the key are in the whole population only.
* **Multiple testing**: the more slices, the more chances of a false alarm. Each slice's
  tests run at ``alpha / m`` (Bonferroni), ``m`` being the number of slices of its key in
  use when the window is evaluated (at most ``max_values + 1``); the within-window
  correction across features (BH by default) then applies as for the whole population.
  The family-wise false-alarm rate over a key's slices stays at most ``alpha`` per round of
  windows; the minimum effect size still applies per slice.
* **Performance** (:meth:`SegmentDetectors.observe_labels`): a labelled prediction counts
  in the performance windows of the slices its prediction's tags name (a value without a
  slot: the key's ``__other__``; labels never take a slot). Each slice's metrics are
  compared with its own reference slice's (the reference rows of that tag value, when the
  reference has labels: the ``performance`` argument), so a window reports a drop as the
  whole population's do; a slice without reference metrics of its own (no reference
  slice, the ``__other__`` pool, or too few labelled reference rows) is compared with the
  whole reference's, and its results say which (``reference_slice``, as for drift).
* **Memory**: per model at most ``keys * (max_values + 1)`` slice detectors, each one
  open window (``WindowState.nbytes`` times the panes; a performance window is counts
  only, inside ``DETECTOR_OVERHEAD_BYTES`` but for many classes: ``(classes + 1)**2 * 8``), plus one window layout per
  reference slice and the Misra-Gries counters (:func:`memory_bound`).

Pure computation like the rest of :mod:`detectors`: no I/O, no clock.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from detectors.columns import Batch
from detectors.evaluation import Evaluation, EvaluationSettings, evaluate_window
from detectors.misra_gries import MisraGries
from detectors.model import DetectorSettings, ModelDetector, NumberFloors
from detectors.performance import PerformanceResult, reference_metrics
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.sketches import pack, unpack
from detectors.windows.state import WindowLayout, WindowState

OTHER = "__other__"
WHOLE = "whole"
FORMAT_VERSION = 1
# Misra-Gries counters per key, as a multiple of max_values.
COUNTERS_PER_SLOT = 4
# Python bytes of one tracked candidate besides its text: the dict slot, the str header, the int.
COUNTER_ENTRY_BYTES = 200
# Python bytes of one slice detector besides its arrays (objects, dicts, the RNG).
DETECTOR_OVERHEAD_BYTES = 16_384
# A slice's rows wait until it has this many (or until drain()): counting a batch into a
# window has a fixed cost (~0.1 ms) that 100 slices of a few rows each would pay per batch.
SLICE_BATCH = 256
WAITING_PARTS = 16  # waiting batches of a slice merged into one past this many


@dataclass(frozen=True)
class SegmentSpec:
    """Which tag keys to analyse and the bounds of it (see the module docstring)."""

    keys: tuple[str, ...]
    max_values: int = 20
    min_reference_rows: int = 500
    admit_rows: int = 100

    def __post_init__(self) -> None:
        if not self.keys or not all(isinstance(k, str) and k and ":" not in k for k in self.keys):
            raise ValueError(f"segments.keys must be non-empty tag names without ':', got {list(self.keys)!r}")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"segments.keys names a key twice: {list(self.keys)!r}")
        for name in ("max_values", "min_reference_rows", "admit_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"segments.{name} must be an integer >= 1, got {value!r}")

    @property
    def max_slices(self) -> int:
        """Slice detectors per model at most: every key's values plus its pool."""
        return len(self.keys) * (self.max_values + 1)


def slice_name(key: str, value: str) -> str:
    return f"{key}:{value}"


def parse_slice(text: str) -> tuple[str, str]:
    """``"region:eu"`` -> ``("region", "eu")`` (the value may hold ':'); ValueError otherwise."""
    key, sep, value = text.partition(":")
    if not sep or not key or not value:
        raise ValueError(f"a segment is 'key:value' (e.g. 'region:eu'), got {text!r}")
    return key, value


def tag_columns(tags: Sequence[Mapping[str, str] | None], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Per key, each row's value (object array, None where the row lacks the key)."""
    out = {}
    for key in keys:
        column = np.empty(len(tags), dtype=object)
        column[:] = [None if t is None else t.get(key) for t in tags]
        out[key] = column
    return out


def _groups(column: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(value, row indices) for every value present in ``column`` (None: absent), in order
    of first appearance. Hashing (pandas.factorize) rather than sorting the strings."""
    codes, values = pd.factorize(column, use_na_sentinel=True)
    present = np.flatnonzero(codes >= 0)
    if present.size == 0:
        return []
    order = present[np.argsort(codes[present], kind="stable")]
    bounds = np.cumsum(np.bincount(codes[present], minlength=len(values)))[:-1]
    return [(str(v), rows) for v, rows in zip(values, np.split(order, bounds), strict=True)]


def build_slices(
    batch: Batch, tags: Mapping[str, np.ndarray], schema: Schema, spec: SegmentSpec, **options: Any
) -> dict[str, ReferenceProfile]:
    """The reference slices of ``batch`` (reference rows; ``tags`` from :func:`tag_columns`):
    per key, the busiest ``max_values`` values with at least ``min_reference_rows`` rows,
    each profiled from its own rows with ``options`` (:meth:`ReferenceProfile.from_batch`)."""
    out: dict[str, ReferenceProfile] = {}
    for key in spec.keys:
        groups = [(v, rows) for v, rows in _groups(tags[key]) if rows.size >= spec.min_reference_rows]
        groups.sort(key=lambda g: (-g[1].size, g[0]))
        for value, rows in groups[: spec.max_values]:
            name = slice_name(key, value)
            out[name] = ReferenceProfile.from_batch(batch.select(rows), schema, version=name, **options)
    return out


@dataclass(frozen=True)
class SegmentWindow:
    """A closed window of one slice, to evaluate with :meth:`SegmentDetectors.evaluate`."""

    segment: str
    reference_slice: str
    window: WindowState
    settings: EvaluationSettings


class SegmentDetectors:
    """One :class:`ModelDetector` per slice (tag key and value) of one model; see the module docstring."""

    def __init__(
        self,
        reference: ReferenceProfile,
        settings: DetectorSettings,
        spec: SegmentSpec,
        performance: Mapping[str, Mapping[str, float | None]] | None = None,
        numbering: NumberFloors | None = None,
    ) -> None:
        """``performance``: reference metrics per slice name (its own reference rows'); a
        slice not in it is compared with ``settings.reference_performance`` (the whole's).
        ``numbering``: where each slice's window numbers continue (a slice's new detector starts there)."""
        self.reference = reference
        self.numbering = NumberFloors() if numbering is None else numbering
        self.spec = spec
        # Slices run drift, quality, latency and performance; estimators stay whole-population.
        self.settings = replace(settings, estimators=None)
        self.performance = {name: dict(metrics) for name, metrics in (performance or {}).items()}
        self.whole_layout = WindowLayout(
            reference, sample_size=settings.sample_size, bounds=settings.bounds, range_margin=settings.range_margin
        )
        self._layouts: dict[str, WindowLayout] = {}
        self.detectors: dict[str, dict[str, ModelDetector]] = {key: {} for key in spec.keys}
        self.admitted: dict[str, list[str]] = {key: [] for key in spec.keys}
        self.pooled: dict[str, int] = dict.fromkeys(spec.keys, 0)
        self.candidates = {key: MisraGries(COUNTERS_PER_SLOT * spec.max_values) for key in spec.keys}
        # Rows of each slice not yet counted into its windows (fewer than SLICE_BATCH).
        self._waiting: dict[tuple[str, str], list[Batch]] = {}
        self._waiting_rows: dict[tuple[str, str], int] = {}
        for name in reference.slices:  # busiest first (build_slices' order)
            key, value = parse_slice(name)
            if key in self.admitted and len(self.admitted[key]) < spec.max_values:
                self.admitted[key].append(value)

    # -- traffic -------------------------------------------------------------------------
    def update(self, batch: Batch, tags: Mapping[str, np.ndarray]) -> list[SegmentWindow]:
        """Count each row into its slices (one per key it carries); the windows that closed."""
        closed: list[SegmentWindow] = []
        for key in self.spec.keys:
            pooled: list[np.ndarray] = []
            for value, rows in _groups(tags[key]):
                if value != OTHER and self._slot(key, value, rows.size):
                    closed.extend(self._count(key, value, batch.select(rows)))
                else:
                    pooled.append(rows)
            if pooled:
                rows = np.sort(np.concatenate(pooled))  # arrival order within the pool
                self.pooled[key] += int(rows.size)
                closed.extend(self._count(key, OTHER, batch.select(rows)))
        return closed

    def _slot(self, key: str, value: str, rows: int) -> bool:
        """Whether ``value`` has (or now takes) a slot of ``key``."""
        admitted = self.admitted[key]
        if value in admitted:
            return True
        seen = self.candidates[key].add(value, rows)
        if seen >= self.spec.admit_rows and len(admitted) < self.spec.max_values:
            admitted.append(value)
            self.candidates[key].pop(value)
            return True
        return False

    def _count(self, key: str, value: str, rows: Batch) -> list[SegmentWindow]:
        slot = (key, value)
        parts = self._waiting.setdefault(slot, [])
        parts.append(rows)
        if len(parts) >= WAITING_PARTS:  # few rows a batch: one batch object, not hundreds
            parts[:] = [Batch.concat(parts)]
        self._waiting_rows[slot] = self._waiting_rows.get(slot, 0) + len(rows)
        return self._close(slot) if self._waiting_rows[slot] >= SLICE_BATCH else []

    def _close(self, slot: tuple[str, str]) -> list[SegmentWindow]:
        parts = self._waiting.pop(slot)
        del self._waiting_rows[slot]
        key, value = slot
        detector = self._detector(key, value)
        name = slice_name(key, value)
        return [
            SegmentWindow(name, self.reference_slice(name), w, self.evaluation_settings(key))
            for w in detector.close(parts[0] if len(parts) == 1 else Batch.concat(parts))
        ]

    def drain(self) -> list[SegmentWindow]:
        """Count every slice's waiting rows into its windows; the windows that closed (call it
        before a checkpoint, and now and then so that rows do not wait long)."""
        return [closed for slot in list(self._waiting) for closed in self._close(slot)]

    @property
    def waiting_rows(self) -> int:
        return sum(self._waiting_rows.values())

    def _detector(self, key: str, value: str) -> ModelDetector:
        detector = self.detectors[key].get(value)
        if detector is None:
            detector = self._new_detector(slice_name(key, value))
            detector.continue_numbering(self.numbering.get(slice_name(key, value)))
            self.detectors[key][value] = detector
        return detector

    def _new_detector(self, name: str) -> ModelDetector:
        own = self.reference.slices.get(name)
        if own is None:
            return ModelDetector(self.reference, self.slice_settings(name), self.whole_layout)
        return ModelDetector(own, self.slice_settings(name))

    def slice_settings(self, name: str) -> DetectorSettings:
        """A slice's detector settings: its own seed and reference metrics (or the whole's)."""
        return replace(
            self.settings, seed=self.settings.seed ^ zlib.crc32(name.encode()),
            reference_performance=self.performance.get(name, self.settings.reference_performance),
        )  # fmt: skip

    def reference_slice(self, name: str) -> str:
        return name if name in self.reference.slices else WHOLE

    def performance_slice(self, name: str) -> str:
        """Which reference's metrics a slice's performance is compared with."""
        return name if name in self.performance else WHOLE

    # -- labels --------------------------------------------------------------------------
    def observe_labels(
        self, predictions: np.ndarray, labels: np.ndarray, timestamps: np.ndarray, tags: Mapping[str, np.ndarray]
    ) -> list[PerformanceResult]:
        """Count labelled predictions (``tags``: their predictions' tag columns, as
        :meth:`update` takes them) into their slices' performance windows; the results of
        the windows that closed, labelled with their slice."""
        if self.settings.performance is None:
            return []
        out: list[PerformanceResult] = []
        for key in self.spec.keys:
            admitted = self.admitted[key]
            pooled: list[np.ndarray] = []
            for value, rows in _groups(tags[key]):
                if value != OTHER and value in admitted:
                    out += self._performance(key, value, predictions[rows], labels[rows], timestamps[rows])
                else:
                    pooled.append(rows)
            if pooled:
                rows = np.sort(np.concatenate(pooled))
                out += self._performance(key, OTHER, predictions[rows], labels[rows], timestamps[rows])
        return out

    def _performance(
        self, key: str, value: str, predictions: np.ndarray, labels: np.ndarray, timestamps: np.ndarray
    ) -> list[PerformanceResult]:
        name = slice_name(key, value)
        closed = self._detector(key, value).observe_labels(predictions, labels, timestamps)
        return [self._slice_result(result, name) for result in closed]

    def _slice_result(self, result: PerformanceResult, name: str) -> PerformanceResult:
        return replace(result, segment=name, reference_slice=self.performance_slice(name))

    def flush_performance(self) -> list[PerformanceResult]:
        """Close every slice's open performance window whatever its size (end of a replay)."""
        out = []
        for key, detectors in self.detectors.items():
            for value, detector in detectors.items():
                result = detector.flush_performance()
                if result is not None:
                    out.append(self._slice_result(result, slice_name(key, value)))
        return out

    # -- evaluation ----------------------------------------------------------------------
    def evaluation_settings(self, key: str) -> EvaluationSettings:
        """The model's settings at ``alpha / m`` (Bonferroni over the key's ``m`` slices in use)."""
        return bonferroni(self.settings.evaluation, max(1, len(self.detectors[key])))

    def evaluate(self, closed: SegmentWindow) -> Evaluation:
        return self.label(evaluate_window(closed.window, closed.settings), closed)

    def label(self, evaluation: Evaluation, closed: SegmentWindow) -> Evaluation:
        """An evaluation of a slice's window as a result of that slice (its histograms are
        stored with the slice: the store's ``histograms(segment=...)``)."""
        return replace(
            evaluation, segment=closed.segment, reference_slice=closed.reference_slice,
            reference_version=str(self.reference.version),
        )  # fmt: skip

    def flush(self) -> list[SegmentWindow]:
        """Close every slice's open window whatever its size (end of a replay), after the
        windows its waiting rows close."""
        out = self.drain()
        for key, detectors in self.detectors.items():
            for value, detector in detectors.items():
                window = detector.windower.flush()
                if window is not None and window.n:
                    name = slice_name(key, value)
                    out.append(SegmentWindow(name, self.reference_slice(name), window, self.evaluation_settings(key)))
        return out

    def overview(self) -> list[dict[str, Any]]:
        """Each slice with windows: its name, the reference it is compared with and the
        records of its open window (counted or waiting to be), by key then first traffic.
        C-level copies of the dicts: safe to call from another thread than the updates'."""
        out = []
        waiting = dict(self._waiting_rows)
        for key, detectors in list(self.detectors.items()):
            for value, detector in list(detectors.items()):
                name = slice_name(key, value)
                records = detector.open_records + waiting.get((key, value), 0)
                out.append({"segment": name, "reference": self.reference_slice(name), "open_window_records": records})
        return out

    @property
    def slices(self) -> list[str]:
        """Every slice with a detector, by key then first traffic."""
        return [slice_name(key, value) for key, detectors in self.detectors.items() for value in detectors]

    @property
    def nbytes(self) -> int:
        """Bytes of the open windows' arrays (the bound's main term, see :func:`memory_bound`)."""
        total = 0
        for detectors in self.detectors.values():
            for detector in detectors.values():
                window = detector.windower.open_window
                total += 0 if window is None else window.nbytes
        return total

    # -- checkpoints ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A checkpoint of the slices' windows; rows still waiting are not in it: :meth:`drain` first."""
        if self._waiting:
            raise ValueError(f"{self.waiting_rows} slice rows still wait: drain() before a checkpoint")
        header = {
            "kind": "segment_detectors",
            "format_version": FORMAT_VERSION,
            "reference": self.reference.content_hash,
            "spec": [list(self.spec.keys), self.spec.max_values, self.spec.min_reference_rows, self.spec.admit_rows],
            "admitted": self.admitted,
            "pooled": self.pooled,
            "candidates": {key: mg.counts for key, mg in self.candidates.items()},
            "detectors": [[key, value] for key, d in self.detectors.items() for value in d],
            "numbering": self.numbering.to_json(),  # of slices without a detector now (older references')
        }
        arrays = {
            f"d{i}": np.frombuffer(detector.to_bytes(), np.uint8)
            for i, detector in enumerate(d for ds in self.detectors.values() for d in ds.values())
        }
        return pack(header, arrays)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        reference: ReferenceProfile,
        settings: DetectorSettings,
        spec: SegmentSpec,
        performance: Mapping[str, Mapping[str, float | None]] | None = None,
    ) -> SegmentDetectors:
        """Restore a checkpoint taken with the same reference and segment settings; the
        slices' performance windows compare with ``performance`` (as :meth:`__init__`)."""
        header, arrays = unpack(data)
        if header.get("kind") != "segment_detectors" or header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a segment detectors checkpoint of format {FORMAT_VERSION}")
        if header.get("reference") != reference.content_hash:
            raise ValueError("the segment checkpoint was taken with another reference profile")
        given = [list(spec.keys), spec.max_values, spec.min_reference_rows, spec.admit_rows]
        if header.get("spec") != given:
            raise ValueError(f"the segment checkpoint was taken with other segment settings {header.get('spec')}")
        out = cls(reference, settings, spec, performance, NumberFloors.from_json(header.get("numbering")))
        out.admitted = {key: list(values) for key, values in header["admitted"].items()}
        out.pooled = {key: int(n) for key, n in header["pooled"].items()}
        for key, counts in header["candidates"].items():
            out.candidates[key] = MisraGries(COUNTERS_PER_SLOT * spec.max_values, counts)
        for i, (key, value) in enumerate(header["detectors"]):
            name = slice_name(key, value)
            own = reference.slices.get(name)
            seeded = out.slice_settings(name)
            blob = arrays[f"d{i}"].tobytes()
            if own is None:
                detector = ModelDetector.from_bytes(blob, reference, seeded, out.whole_layout)
            else:
                detector = ModelDetector.from_bytes(blob, own, seeded)
            if detector.performance is not None:
                # The metrics of the reference now given, not the checkpoint's: a checkpoint
                # from before slices had reference metrics would otherwise keep none for good.
                detector.performance.reference = reference_metrics(seeded.reference_performance)
            out.detectors[key][value] = detector
        return out


def bonferroni(settings: EvaluationSettings, m: int) -> EvaluationSettings:
    """``settings`` with every significance level divided by ``m``."""
    if m == 1:
        return settings
    drift = replace(settings.drift, alpha=settings.drift.alpha / m)
    prediction = settings.prediction_drift
    quality = settings.quality

    def null_alpha(q: Any) -> Any:
        return q if q.null_alpha is None else replace(q, null_alpha=q.null_alpha / m)

    return replace(
        settings,
        drift=drift,
        drift_overrides={k: replace(v, alpha=v.alpha / m) for k, v in settings.drift_overrides.items()},
        prediction_drift=None if prediction is None else replace(prediction, alpha=prediction.alpha / m),
        quality=null_alpha(quality),
        quality_overrides={k: null_alpha(v) for k, v in settings.quality_overrides.items()},
    )


def memory_bound(
    spec: SegmentSpec, window_bytes: int, panes: int, layout_bytes: int, max_value_chars: int, row_bytes: int
) -> int:
    """Bytes a model's segment analysis may hold at most, besides the whole population:

    ``keys * (max_values + 1) * (panes * window_bytes + DETECTOR_OVERHEAD_BYTES)``
    (slice detectors with their open windows; ``panes`` is 1 for tumbling windows)
    ``+ keys * (max_values + 1) * (SLICE_BATCH - 1) * row_bytes`` (rows waiting per slice)
    ``+ (keys * max_values + 1) * layout_bytes`` (a layout per reference slice, and one of the
    whole reference shared by the other slices: their sorted samples)
    ``+ keys * 4 * max_values * (COUNTER_ENTRY_BYTES + max_value_chars)`` (Misra-Gries counters).
    """
    detectors = spec.max_slices * (panes * window_bytes + DETECTOR_OVERHEAD_BYTES)
    waiting = spec.max_slices * (SLICE_BATCH - 1) * row_bytes
    layouts = (len(spec.keys) * spec.max_values + 1) * layout_bytes
    counters = len(spec.keys) * COUNTERS_PER_SLOT * spec.max_values * (COUNTER_ENTRY_BYTES + max_value_chars)
    return detectors + waiting + layouts + counters
