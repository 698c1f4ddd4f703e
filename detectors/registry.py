"""Every stateful detector the service runs, in one plain dict: :data:`DETECTORS`.

A :class:`DetectorSpec` says, for one detector, how to build it from a reference
profile and keyword parameters, what it is fed, how its results are read, how it is
checkpointed and restored, and which parameters it rejects (with the error text).
The contract suite (``tests/detectors/test_contract.py``) runs over every entry,
and ``benchmarks/detectors.py`` times them; adding a stateful detector means adding
an entry here (nothing registers itself on import).

Entries:

* ``"model"`` -- :class:`~detectors.model.ModelDetector`: windows over a model's
  traffic, each evaluated once when it closes (feature and prediction drift, data
  quality, latency). Fed a :class:`~detectors.columns.Batch`; results are
  :class:`~detectors.evaluation.Evaluation`.
* ``"performance"`` -- :class:`~detectors.performance.PerformanceWindows`: tumbling
  windows of labelled predictions. Fed ``(predictions, labels, timestamps)``;
  results are :class:`~detectors.performance.PerformanceResult`. It has no
  randomness, hence no seed.

Parameters are flat keywords. ``"model"``: the :class:`~detectors.model.WindowPolicy`
fields (``kind``, ``size``, ``seconds``, ``min_records``, ``panes``) and the other
:class:`~detectors.model.DetectorSettings` fields (``sample_size``, ``range_margin``,
``bounds``, ``evaluation``, ``performance``, ``performance_window``,
``reference_performance``, ``seed``). ``"performance"``: ``size`` (used pairs per
window), ``reference_metrics`` and the :class:`~detectors.performance.PerformanceSettings`
fields; ``kind``, ``binary_output`` and ``positive_class`` default to the reference
schema's prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from detectors.columns import Batch
from detectors.model import DetectorSettings, ModelDetector
from detectors.performance import PerformanceSettings
from detectors.profiles import CategoricalProfile, NumericProfile, ReferenceProfile
from detectors.schema import LATENCY, PREDICTION
from detectors.windows.performance import PerformanceWindows
from detectors.windows.policies import WindowPolicy


@dataclass(frozen=True)
class Invalid:
    """Parameters a detector must reject with a ValueError naming ``param`` and ``repr(value)``."""

    params: Mapping[str, Any]
    param: str
    value: Any


@dataclass(frozen=True)
class DetectorSpec:
    """How to build, feed, read, checkpoint and restore one kind of stateful detector.

    ``feed(detector, data)`` returns the results of the windows ``data`` closed
    (oldest first, empty before the first window closes); ``flush(detector)``
    closes the open window and returns its result (None when there is nothing to
    report). ``example(reference, n, seed, first)`` makes ``n`` synthetic inputs
    fitting ``reference`` (``first`` numbers the first record: timestamps are
    ``first, first + 1, ...`` seconds). ``warm_up`` is the number of records fed
    before the first result with ``example_params``. ``sample(detector)`` is the
    randomised part of the open state (None for deterministic detectors) and
    ``counts(detector)`` its exact part; ``seed_param`` names the seed keyword
    (None: no randomness).
    """

    name: str
    summary: str
    input: str
    build: Callable[..., Any]
    feed: Callable[[Any, Any], list[Any]]
    flush: Callable[[Any], Any]
    checkpoint: Callable[[Any], bytes]
    restore: Callable[..., Any]
    example: Callable[[ReferenceProfile, int, int, int], Any]
    counts: Callable[[Any], dict[str, np.ndarray]]
    sample: Callable[[Any], np.ndarray | None]
    seed_param: str | None
    example_params: Mapping[str, Any]
    warm_up: int
    invalid: tuple[Invalid, ...]


# ---- model: ModelDetector ----------------------------------------------------------------------
_POLICY_FIELDS = frozenset(f.name for f in fields(WindowPolicy))
_SETTINGS_FIELDS = frozenset(f.name for f in fields(DetectorSettings)) - {"policy"}


def model_settings(**params: Any) -> DetectorSettings:
    """DetectorSettings from flat keywords (WindowPolicy fields and DetectorSettings fields)."""
    unknown = sorted(set(params) - _POLICY_FIELDS - _SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"unknown model detector parameters: {unknown}")
    policy = WindowPolicy(**{k: v for k, v in params.items() if k in _POLICY_FIELDS})
    return DetectorSettings(policy=policy, **{k: v for k, v in params.items() if k in _SETTINGS_FIELDS})


def _build_model(reference: ReferenceProfile, **params: Any) -> ModelDetector:
    return ModelDetector(reference, model_settings(**params))


def _restore_model(data: bytes, reference: ReferenceProfile, **params: Any) -> ModelDetector:
    return ModelDetector.from_bytes(data, reference, model_settings(**params))


def example_batch(reference: ReferenceProfile, n: int, seed: int, first: int = 0) -> Batch:
    """``n`` synthetic records like the reference: numeric channels normal with its mean and
    std, categorical channels drawn with its top-K frequencies (plus 1 % of an unseen value)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for name, p in reference.channels.items():
        if isinstance(p, NumericProfile):
            mean = p.mean if np.isfinite(p.mean) else 0.0
            std = p.std if np.isfinite(p.std) and p.std > 0 else 1.0
            x = rng.normal(mean, std, n)
            if name == LATENCY:
                x = np.abs(x)
            elif name == PREDICTION and reference.schema.prediction_kind == "binary":
                x = rng.random(n)
            cols[name] = x
        else:
            cols[name] = _draw_categories(rng, p, n)
    return Batch(
        timestamps=first + np.arange(n, dtype=np.float64),
        inputs={k: cols[k] for k in reference.schema.features},
        prediction=cols.get(PREDICTION),
        latency_ms=cols.get(LATENCY),
    )


def _draw_categories(rng: np.random.Generator, p: CategoricalProfile, n: int) -> np.ndarray:
    values = np.array([*p.categories, "__unseen__"], dtype=object)
    weights = np.append(p.counts.astype(np.float64), 0.01 * max(float(p.counts.sum()), 1.0))
    return values[rng.choice(values.size, size=n, p=weights / weights.sum())]


def _window_counts(det: ModelDetector) -> dict[str, np.ndarray]:
    w = det.windower.open_window
    if w is None:
        return {"n": np.zeros(1, np.int64)}
    return {
        "n": np.array([w.n]),
        "bins": w.bin_counts,
        "num_counters": w.num_counters,
        "cat_counts": w.cat_counts,
        "latency": np.empty(0) if w.latency is None else w.latency.counts,
    }


def _window_sample(det: ModelDetector) -> np.ndarray | None:
    w = det.windower.open_window
    return None if w is None else w.reservoir.sample.copy()


# ---- performance: PerformanceWindows ------------------------------------------------------------
_PERFORMANCE_FIELDS = frozenset(f.name for f in fields(PerformanceSettings))


def performance_settings(reference: ReferenceProfile, **params: Any) -> PerformanceSettings:
    """PerformanceSettings from keywords; kind, binary output and positive class default to the schema's."""
    unknown = sorted(set(params) - _PERFORMANCE_FIELDS)
    if unknown:
        raise TypeError(f"unknown performance parameters: {unknown}")
    schema = reference.schema
    given = dict(params)
    given.setdefault("kind", schema.prediction_kind)
    given.setdefault("binary_output", schema.binary_output)
    if schema.positive_class is not None:
        given.setdefault("positive_class", schema.positive_class)
    return PerformanceSettings(**given)


def _build_performance(
    reference: ReferenceProfile, *, size: int = 5_000, reference_metrics: Mapping[str, Any] | None = None, **params: Any
) -> PerformanceWindows:
    return PerformanceWindows(performance_settings(reference, **params), size, reference=reference_metrics)


def _restore_performance(data: bytes, reference: ReferenceProfile, **params: Any) -> PerformanceWindows:
    # settings, size and reference metrics are all in the checkpoint
    return PerformanceWindows.from_bytes(data)


def example_labels(
    reference: ReferenceProfile, n: int, seed: int, first: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` synthetic (prediction, label, prediction time) triples for the reference's prediction kind:
    calibrated binary scores, multiclass labels right 80 % of the time, regression with unit-normal error."""
    rng = np.random.default_rng(seed)
    schema = reference.schema
    ts = first + np.arange(n, dtype=np.float64)
    profile = reference.channels.get(PREDICTION)
    if schema.prediction_kind == "regression":
        pred = rng.normal(0.0, 1.0, n)
        return pred, pred + rng.normal(0.0, 1.0, n), ts
    if schema.prediction_kind == "multiclass" or schema.binary_output == "label":
        classes = (
            np.array(profile.categories, dtype=object)
            if isinstance(profile, CategoricalProfile) and profile.categories
            else np.array(["0", "1"], dtype=object)
        )
        pred = classes[rng.integers(0, classes.size, n)]
        label = np.where(rng.random(n) < 0.8, pred, classes[rng.integers(0, classes.size, n)])
        return pred, label, ts
    score = rng.random(n)
    return score, (rng.random(n) < score).astype(np.int64), ts


def _performance_counts(det: PerformanceWindows) -> dict[str, np.ndarray]:
    w = det.open_window
    if w is None:
        return {"n": np.zeros(1, np.int64)}
    return {"n": np.array([w.n, w.skipped]), **w.arrays}


# ---- the registry --------------------------------------------------------------------------------
DETECTORS: dict[str, DetectorSpec] = {
    "model": DetectorSpec(
        name="model",
        summary="ModelDetector: windows of traffic; drift, data quality and latency per closed window",
        input="detectors.columns.Batch",
        build=_build_model,
        feed=lambda det, batch: det.update(batch),
        flush=lambda det: det.flush(),
        checkpoint=lambda det: det.to_bytes(),
        restore=_restore_model,
        example=example_batch,
        counts=_window_counts,
        sample=_window_sample,
        seed_param="seed",
        example_params={"kind": "count", "size": 1_000, "sample_size": 200, "seed": 7},
        warm_up=1_000,
        invalid=(
            Invalid({"size": 0}, "size", 0),
            Invalid({"sample_size": -5}, "sample_size", -5),
            Invalid({"min_records": 2.5}, "min_records", 2.5),
            Invalid({"kind": "hopping"}, "kind", "hopping"),
            Invalid({"range_margin": -0.1}, "range_margin", -0.1),
            Invalid({"seed": -1}, "seed", -1),
            Invalid({"kind": "sliding", "size": 1_000, "panes": 3}, "panes", 3),
        ),
    ),
    "performance": DetectorSpec(
        name="performance",
        summary="PerformanceWindows: tumbling windows of labelled predictions; metrics and degradation",
        input="(predictions, labels, timestamps) arrays",
        build=_build_performance,
        feed=lambda det, data: det.update(*data),
        flush=lambda det: det.flush(),
        checkpoint=lambda det: det.to_bytes(),
        restore=_restore_performance,
        example=example_labels,
        counts=_performance_counts,
        sample=lambda det: None,
        seed_param=None,
        example_params={"size": 500, "min_labels": 100, "reference_metrics": {"accuracy": 0.75, "roc_auc": 0.8}},
        warm_up=500,
        invalid=(
            Invalid({"size": 0}, "size", 0),
            Invalid({"size": 50, "min_labels": 100}, "size", 50),
            Invalid({"min_labels": -1}, "min_labels", -1),
            Invalid({"threshold": 1.5}, "threshold", 1.5),
            Invalid({"kind": "ranking"}, "kind", "ranking"),
            Invalid({"auc_bins": 0}, "auc_bins", 0),
            Invalid({"max_drop": {"accuracy": -0.1}}, "max_drop", -0.1),
        ),
    ),
}
