"""Model performance from delayed labels: what is measured, with which settings, and the
result of one window. The accumulators are in :mod:`detectors.windows.performance`.

Labels arrive joined with their prediction, possibly hours later, as three
aligned arrays: ``predictions``, ``labels`` and ``timestamps`` (prediction time,
epoch s; only reported as the window's ``start``/``end``). A
:class:`~detectors.windows.performance.PerformanceWindow` counts them into fixed-size arrays:

* ``binary`` -- confusion counts ``[tp, fp, fn, tn]`` and, for score outputs,
  per-class score histograms. A score (a probability in [0, 1]) predicts the
  positive class when ``score >= threshold`` (default 0.5). Label predictions
  (``binary_output="label"``) are normalised like the labels. Metrics: accuracy,
  precision, recall, F1 (None when undefined: no predicted / no actual
  positives) and ROC AUC (score outputs with both classes present).
* ``multiclass`` -- a (K+1) x (K+1) confusion matrix over the configured
  ``classes`` plus "other" (rows: label, columns: prediction), and the number of
  exactly correct pairs (two different unknown classes are both "other" but not
  a hit). Macro precision / recall / F1 average the configured classes present
  in the window (in its labels or predictions); a present class with no
  predictions has precision 0 and one with no labels has recall 0 (scikit-learn's
  ``zero_division=0``). F1 per class is ``2 tp / (2 tp + fp + fn)``.
* ``regression`` -- count, sum e, sum |e|, sum e^2 with ``e = prediction - label``:
  MAE, RMSE and ``mean_error`` (bias, in the label's unit).

Label normalisation. Values become category strings as in
:mod:`detectors.columns` (``True`` -> ``'true'``, ``1`` and ``1.0`` -> ``'1'``).
For binary models they are then stripped and lower-cased and the aliases
``1/true/yes/y/t`` read as ``'1'`` and ``0/false/no/n/f`` as ``'0'``; a label is
positive iff it equals the (equally normalised) ``positive_class``, default
``'1'``, so 1, "1", True, "yes" and "Yes" are all positive and anything else is
negative. Multiclass labels and classes are compared as category strings (case
matters). Pairs with a null label or prediction, a non-numeric or non-finite
score or regression value, or a score outside [0, 1] are *skipped* (counted).

ROC AUC uses ``auc_bins + 1`` histogram bins centred on the grid ``k / auc_bins``
(bin ``round(score * auc_bins)``), i.e. 1,001 bins of 0.001 by default: 16 KB per
window whatever the traffic. A positive/negative pair in the same bin counts
half, as a tie. The result therefore equals the exact Mann-Whitney AUC when
every score is a multiple of ``1 / auc_bins`` (scores with <= 3 decimals by
default, like the car-loan model's 0.01-step probabilities), and in general
differs from it by at most ``roc_auc_error = 0.5 * sum_k pos_k neg_k / (n_pos
n_neg)``: only same-bin pairs with different scores can be miscounted, each by
0.5. It is reported with every result: about 0.5 / auc_bins times the overlap
integral of the two score densities, of order 1e-4 to 1e-3 for smooth scores
(the actual error is far smaller: misorderings within a bin mostly cancel).

Performance degradation. Given reference metrics (e.g. from
:func:`~detectors.windows.performance.performance_from_arrays` on the reference data, same code path),
``drop[m]`` says how much worse the window is: ``reference - current`` for
accuracy, precision, recall, F1 and AUC (absolute, same unit), and ``(current -
reference) / reference`` for MAE and RMSE (relative: regression errors have the
label's unit, so no absolute default could fit every model; ``inf`` when the
reference error is 0, shown as None in ``to_dict``). Bias has no drop. The
window is ``degraded`` when a drop exceeds its ``max_drop``. Defaults: accuracy
and ROC AUC (binary), accuracy and macro F1 (multiclass) dropping by more than
0.05; MAE and RMSE rising by more than 10 %. At ``min_labels=100`` the standard
error of an accuracy near 0.85 is 0.036, so a 0.05 drop is ~1.4 SE: raise
``min_labels`` (or the window size) where false alarms cost more than late ones.

Windows (:class:`~detectors.windows.performance.PerformanceWindows`) tumble by count of *used* (not skipped)
pairs: every closed window holds exactly ``size`` of them; a batch straddling a
boundary is split exactly, skipped pairs stay with their neighbours. Storage uses
:func:`detectors.sketches.pack` (JSON header + raw arrays, no pickle).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from detectors.columns import category_string
from detectors.sketches import check_positive_int

Kind = Literal["binary", "multiclass", "regression"]
FORMAT_VERSION = 1
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "multiclass": ("accuracy", "precision_macro", "recall_macro", "f1_macro"),
    "regression": ("mae", "rmse", "mean_error"),
}
DEFAULT_MAX_DROP: dict[str, dict[str, float]] = {
    "binary": {"accuracy": 0.05, "roc_auc": 0.05},
    "multiclass": {"accuracy": 0.05, "f1_macro": 0.05},
    "regression": {"mae": 0.1, "rmse": 0.1},
}
RELATIVE_METRICS = frozenset({"mae", "rmse"})  # lower is better; drop is the relative increase
NO_DROP_METRICS = frozenset({"mean_error"})
_TRUE, _FALSE = frozenset({"1", "true", "yes", "y", "t"}), frozenset({"0", "false", "no", "n", "f"})


def binary_label(value: Any) -> str | None:
    """Normalised binary label: None for null; raises TypeError for a wrong type (module docstring)."""
    s = category_string(value)
    if s is None:
        return None
    s = s.strip().lower()
    return "1" if s in _TRUE else "0" if s in _FALSE else s


def _num(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PerformanceSettings:
    """What and how a performance window counts (defaults and reasons in the module docstring).

    ``classes`` is required for (and only allowed with) ``kind="multiclass"``; at
    most 1,000 so the confusion matrix stays small. ``max_drop`` None means the
    kind's :data:`DEFAULT_MAX_DROP`; an empty mapping never flags degradation.
    """

    kind: Kind
    binary_output: Literal["score", "label"] = "score"
    threshold: float = 0.5
    positive_class: str | int | bool = "1"
    classes: Sequence[str] | None = None
    auc_bins: int = 1000
    min_labels: int = 100
    max_drop: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(Kind):
            raise ValueError(f"kind must be one of {get_args(Kind)}, got {self.kind!r}")
        if self.binary_output not in ("score", "label"):
            raise ValueError(f"binary_output must be 'score' or 'label', got {self.binary_output!r}")
        _num(self.threshold, "threshold", 0.0, 1.0)
        try:
            positive = binary_label(self.positive_class)
        except TypeError:
            positive = None
        if positive is None:
            raise ValueError(f"positive_class must be a non-null str, int or bool, got {self.positive_class!r}")
        object.__setattr__(self, "positive_class", positive)
        if self.kind == "multiclass":
            if self.classes is None or isinstance(self.classes, str) or not 1 <= len(self.classes) <= 1000:
                raise ValueError(
                    f"classes must be a list of 1 to 1000 class names for multiclass, got {self.classes!r}"
                )
            canon = tuple(category_string(c) for c in self.classes)
            if None in canon or len(set(canon)) != len(canon):
                raise ValueError(f"classes must be distinct and non-null, got {list(self.classes)!r}")
            object.__setattr__(self, "classes", canon)
        elif self.classes is not None:
            raise ValueError(f"classes is only for kind='multiclass', got {self.classes!r} with kind={self.kind!r}")
        check_positive_int("auc_bins", self.auc_bins)
        check_positive_int("min_labels", self.min_labels)
        drops = DEFAULT_MAX_DROP[self.kind] if self.max_drop is None else dict(self.max_drop)
        allowed = [m for m in METRICS[self.kind] if m not in NO_DROP_METRICS]
        for m, limit in drops.items():
            if m not in allowed:
                raise ValueError(f"max_drop names {m!r}, not a metric with a drop for {self.kind}: {allowed}")
            _num(limit, f"max_drop[{m!r}]", 0.0, math.inf)
        object.__setattr__(self, "max_drop", MappingProxyType({m: float(v) for m, v in drops.items()}))

    def __hash__(self) -> int:  # max_drop is a read-only mapping, which has no hash of its own
        fixed = (self.kind, self.binary_output, self.threshold, self.positive_class, self.classes)
        return hash((*fixed, self.auc_bins, self.min_labels, frozenset((self.max_drop or {}).items())))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["classes"] = None if self.classes is None else list(self.classes)
        out["max_drop"] = dict(self.max_drop or {})
        return out


def as_settings(settings: PerformanceSettings | str) -> PerformanceSettings:
    # A kind given as text (e.g. from config): cast, since __post_init__ rejects any other string.
    return PerformanceSettings(cast(Kind, settings)) if isinstance(settings, str) else settings


def reference_metrics(reference: Mapping[str, Any] | PerformanceResult | None) -> dict[str, float | None] | None:
    """Reference metrics as a plain dict of floats / None (a result's ``metrics`` or a mapping)."""
    if reference is None:
        return None
    items = reference.metrics if isinstance(reference, PerformanceResult) else reference
    if not isinstance(items, Mapping):
        raise ValueError(f"reference must be a mapping of metric -> number or a PerformanceResult, got {reference!r}")
    out: dict[str, float | None] = {}
    for m, v in items.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise ValueError(f"reference[{m!r}] must be a number or None, got {v!r}")
        out[str(m)] = None if v is None else float(v)
    return out


def _clean(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class PerformanceResult:
    """Metrics of one window (None = undefined), optionally compared with reference metrics.

    ``confusion``: binary ``{tp, fp, fn, tn}``; multiclass ``{classes: [..., "other"],
    matrix}`` (rows = labels); regression ``{}``. ``start``/``end``: min/max prediction time.
    """

    kind: str
    n: int
    skipped: int
    metrics: Mapping[str, float | None]
    confusion: Mapping[str, Any]
    roc_auc_error: float | None
    reference: Mapping[str, float | None] | None
    drop: Mapping[str, float | None] | None
    max_drop: Mapping[str, float]
    degraded: bool
    degraded_metrics: tuple[str, ...]
    window_seq: int
    start: float | None
    end: float | None
    # Segment analysis (detectors.segments): the slice whose labelled predictions these are
    # ("region:eu"; '' for the whole population).
    segment: str = ""
    # A slice's: whose reference metrics ``reference`` are (its own slice's, or "whole").
    reference_slice: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if not out["segment"]:  # as before slices had performance windows
            del out["segment"], out["reference_slice"]
        for key in ("metrics", "reference", "drop"):
            out[key] = None if out[key] is None else {k: _clean(v) for k, v in out[key].items()}
        out["confusion"], out["max_drop"] = dict(self.confusion), dict(self.max_drop)
        out["degraded_metrics"] = list(self.degraded_metrics)
        return out
