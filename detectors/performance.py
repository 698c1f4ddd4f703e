"""Model performance from delayed labels: bounded, mergeable, serialisable accumulators per window.

Labels arrive joined with their prediction, possibly hours later, as three
aligned arrays: ``predictions``, ``labels`` and ``timestamps`` (prediction time,
epoch s; only reported as the window's ``start``/``end``). A
:class:`PerformanceWindow` counts them into fixed-size arrays:

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
:func:`performance_from_arrays` on the reference data, same code path),
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

Windows (:class:`PerformanceWindows`) tumble by count of *used* (not skipped)
pairs: every closed window holds exactly ``size`` of them; a batch straddling a
boundary is split exactly, skipped pairs stay with their neighbours. Storage uses
:func:`detectors.sketches.pack` (JSON header + raw arrays, no pickle).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Literal, get_args

import numpy as np

from detectors.columns import category_string, coerce_numeric
from detectors.sketches import check_positive_int, pack, unpack

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
_RELATIVE = frozenset({"mae", "rmse"})  # lower is better; drop is the relative increase
_NO_DROP = frozenset({"mean_error"})
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
        allowed = [m for m in METRICS[self.kind] if m not in _NO_DROP]
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


def _as_settings(settings: PerformanceSettings | str) -> PerformanceSettings:
    return PerformanceSettings(settings) if isinstance(settings, str) else settings


def _reference_metrics(reference: Mapping[str, Any] | PerformanceResult | None) -> dict[str, float | None] | None:
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

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("metrics", "reference", "drop"):
            out[key] = None if out[key] is None else {k: _clean(v) for k, v in out[key].items()}
        out["confusion"], out["max_drop"] = dict(self.confusion), dict(self.max_drop)
        out["degraded_metrics"] = list(self.degraded_metrics)
        return out


def _codes(values: Any, fn: Callable[[Any], int]) -> np.ndarray:
    """Code of each value (``fn`` on distinct values only); -1 where ``fn`` raises TypeError."""

    def safe(v: Any) -> int:
        try:
            return fn(v)
        except TypeError:
            return -1

    arr = values if isinstance(values, np.ndarray) else np.array(list(values), dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"predictions and labels must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "fiub":
        uniq, inv = np.unique(arr, return_inverse=True)
        return np.array([safe(v) for v in uniq.tolist()], dtype=np.int64)[inv.reshape(-1)]
    cache: dict[Any, int] = {}
    out = np.empty(arr.size, dtype=np.int64)
    for i, v in enumerate(arr.tolist()):
        try:
            key = (type(v), v)
            code = cache.get(key)
            if code is None:
                code = cache[key] = safe(v)
        except TypeError:  # unhashable (a dict or list): a wrong type
            code = -1
        out[i] = code
    return out


def _encode(s: PerformanceSettings, predictions: Any, labels: Any, timestamps: Any) -> dict[str, np.ndarray]:
    """Per-pair codes of a batch; ``valid`` marks the pairs that are counted (others are skipped)."""
    n = len(labels)
    if len(predictions) != n:
        raise ValueError(f"predictions and labels must have the same length, got {len(predictions)} and {n}")
    ts = np.full(n, np.nan) if timestamps is None else np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if ts.size != n:
        raise ValueError(f"timestamps must have {n} entries, got {ts.size}")
    enc: dict[str, np.ndarray] = {"ts": ts}
    if s.kind == "regression":
        e = coerce_numeric(predictions)[0] - coerce_numeric(labels)[0]
        enc.update(valid=np.isfinite(e), e=e)
    elif s.kind == "binary":
        pos = s.positive_class

        def is_pos(v: Any) -> int:
            c = binary_label(v)
            return -1 if c is None else int(c == pos)

        y = _codes(labels, is_pos)
        if s.binary_output == "score":
            x = coerce_numeric(predictions)[0]
            ok = (x >= 0.0) & (x <= 1.0)  # False for NaN
            enc["bin"] = np.rint(np.where(ok, x, 0.0) * s.auc_bins).astype(np.intp)
            enc["pp"] = x >= s.threshold
        else:
            p = _codes(predictions, is_pos)
            ok, enc["pp"] = p >= 0, p == 1
        enc.update(valid=(y >= 0) & ok, y=y == 1)
    else:
        table: dict[str, int] = {c: i for i, c in enumerate(s.classes or ())}

        def code(v: Any) -> int:
            c = category_string(v)
            return -1 if c is None else table.setdefault(c, len(table))  # new unknown classes get new codes

        y, p = _codes(labels, code), _codes(predictions, code)
        enc.update(valid=(y >= 0) & (p >= 0), y=y, p=p)
    return enc


class PerformanceWindow:
    """Counts of the labelled pairs of one window (see the module docstring)."""

    def __init__(self, settings: PerformanceSettings | str, *, seq: int = 0) -> None:
        self.settings = s = _as_settings(settings)
        self.seq, self.n, self.skipped = int(seq), 0, 0
        self.min_ts, self.max_ts = math.inf, -math.inf
        if s.kind == "binary":
            bins = s.auc_bins + 1 if s.binary_output == "score" else 0
            self.arrays = {"confusion": np.zeros(4, np.int64), "hist": np.zeros((2, bins), np.int64)}
        elif s.kind == "multiclass":
            k = len(s.classes or ()) + 1
            self.arrays = {"matrix": np.zeros((k, k), np.int64), "correct": np.zeros(1, np.int64)}
        else:
            self.arrays = {"sums": np.zeros(3)}  # sum e, sum |e|, sum e^2

    def update(self, predictions: Any, labels: Any, timestamps: Any = None) -> None:
        """Count a batch of (prediction, label, prediction time) pairs."""
        enc = _encode(self.settings, predictions, labels, timestamps)
        self._add(enc, 0, enc["valid"].size)

    def _add(self, enc: dict[str, np.ndarray], i: int, j: int) -> None:
        s, a = self.settings, self.arrays
        v = enc["valid"][i:j]
        used = int(np.count_nonzero(v))
        self.n, self.skipped = self.n + used, self.skipped + (j - i - used)
        ts = enc["ts"][i:j]
        ts = ts[np.isfinite(ts)]
        if ts.size:
            self.min_ts, self.max_ts = min(self.min_ts, float(ts.min())), max(self.max_ts, float(ts.max()))
        if s.kind == "binary":
            y, pp = enc["y"][i:j][v], enc["pp"][i:j][v]
            tp, fp, fn = np.count_nonzero(y & pp), np.count_nonzero(~y & pp), np.count_nonzero(y & ~pp)
            a["confusion"] += [tp, fp, fn, used - tp - fp - fn]
            if a["hist"].shape[1]:
                b, size = enc["bin"][i:j][v], a["hist"].shape[1]
                a["hist"] += [np.bincount(b[y], minlength=size), np.bincount(b[~y], minlength=size)]
        elif s.kind == "multiclass":
            y, p = enc["y"][i:j][v], enc["p"][i:j][v]
            k = a["matrix"].shape[0]
            cell = np.minimum(y, k - 1) * k + np.minimum(p, k - 1)  # every unknown class is "other"
            a["matrix"] += np.bincount(cell, minlength=k * k).reshape(k, k)
            a["correct"] += np.count_nonzero(y == p)
        else:
            e = enc["e"][i:j][v]
            a["sums"] += [e.sum(), np.abs(e).sum(), np.dot(e, e)]

    def merge(self, other: PerformanceWindow) -> PerformanceWindow:
        """A new window over both windows' pairs (counts and sums add)."""
        if other.settings != self.settings:
            raise ValueError("cannot merge performance windows with different settings")
        out = PerformanceWindow(self.settings, seq=self.seq)
        out.n, out.skipped = self.n + other.n, self.skipped + other.skipped
        out.min_ts, out.max_ts = min(self.min_ts, other.min_ts), max(self.max_ts, other.max_ts)
        out.arrays = {k: self.arrays[k] + other.arrays[k] for k in self.arrays}
        return out

    def metrics(self) -> dict[str, float | None]:
        """The kind's metrics; None where undefined (e.g. no pairs)."""
        s, a, n = self.settings, self.arrays, self.n

        def ratio(num: float, den: float) -> float | None:
            return float(num / den) if den else None

        if s.kind == "binary":
            tp, fp, fn, tn = (int(c) for c in a["confusion"])
            return {
                "accuracy": ratio(tp + tn, n),
                "precision": ratio(tp, tp + fp),
                "recall": ratio(tp, tp + fn),
                "f1": ratio(2 * tp, 2 * tp + fp + fn),
                "roc_auc": self._auc()[0],
            }
        if s.kind == "multiclass":
            m = a["matrix"][:-1].astype(np.float64)  # configured classes' rows
            tp = np.diag(m[:, :-1])
            fp, fn = a["matrix"][:, :-1].sum(axis=0) - tp, m.sum(axis=1) - tp
            present = (tp + fp + fn) > 0
            if not present.any():
                return {"accuracy": ratio(int(a["correct"][0]), n), **dict.fromkeys(METRICS["multiclass"][1:])}
            with np.errstate(divide="ignore", invalid="ignore"):
                prec = np.where(tp + fp > 0, tp / (tp + fp), 0.0)[present]
                rec = np.where(tp + fn > 0, tp / (tp + fn), 0.0)[present]
                f1 = (2 * tp / (2 * tp + fp + fn))[present]
            return {
                "accuracy": ratio(int(a["correct"][0]), n),
                "precision_macro": float(prec.mean()),
                "recall_macro": float(rec.mean()),
                "f1_macro": float(f1.mean()),
            }
        se, sa, sq = (float(x) for x in a["sums"])
        return {"mae": ratio(sa, n), "rmse": None if not n else math.sqrt(sq / n), "mean_error": ratio(se, n)}

    def _auc(self) -> tuple[float | None, float | None]:
        """(histogram AUC, its error bound) -- None without score outputs or without both classes."""
        h = self.arrays.get("hist")
        if h is None or not h.shape[1]:
            return None, None
        pos, neg = h[0].astype(np.float64), h[1].astype(np.float64)
        pairs = pos.sum() * neg.sum()
        if not pairs:
            return None, None
        below = np.cumsum(neg) - neg  # negatives in lower bins
        return float(pos @ (below + 0.5 * neg) / pairs), float(0.5 * (pos @ neg) / pairs)

    def result(
        self, reference: Mapping[str, float | None] | PerformanceResult | None = None
    ) -> PerformanceResult | None:
        """Metrics (and the comparison with ``reference`` metrics); None with fewer than ``min_labels`` pairs."""
        s, ref = self.settings, _reference_metrics(reference)  # validated even when there is no result yet
        if self.n < s.min_labels:
            return None
        metrics = self.metrics()
        a = self.arrays
        if s.kind == "binary":
            confusion: dict[str, Any] = dict(zip(("tp", "fp", "fn", "tn"), a["confusion"].tolist(), strict=True))
        elif s.kind == "multiclass":
            confusion = {"classes": [*(s.classes or ()), "other"], "matrix": a["matrix"].tolist()}
        else:
            confusion = {}
        drop = None if ref is None else _drops(metrics, ref)
        limits = (s.max_drop or {}).items() if drop is not None else ()
        degraded = tuple(m for m, lim in limits if (drop.get(m) or 0.0) > lim)  # type: ignore[union-attr]
        has_ts = math.isfinite(self.min_ts)
        return PerformanceResult(
            kind=s.kind,
            n=self.n,
            skipped=self.skipped,
            metrics=MappingProxyType(metrics),
            confusion=MappingProxyType(confusion),
            roc_auc_error=self._auc()[1],
            reference=None if ref is None else MappingProxyType(ref),
            drop=None if drop is None else MappingProxyType(drop),
            max_drop=s.max_drop or MappingProxyType({}),
            degraded=bool(degraded),
            degraded_metrics=degraded,
            window_seq=self.seq,
            start=self.min_ts if has_ts else None,
            end=self.max_ts if has_ts else None,
        )

    def to_bytes(self) -> bytes:
        ts = [self.min_ts, self.max_ts] if math.isfinite(self.min_ts) else None
        header = {"kind": "performance_window", "format_version": FORMAT_VERSION, "settings": self.settings.to_dict()}
        header.update(seq=self.seq, n=self.n, skipped=self.skipped, ts=ts)
        return pack(header, self.arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformanceWindow:
        h, arrays = unpack(data)
        if h.get("kind") != "performance_window" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a performance window of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        out = cls(PerformanceSettings(**h["settings"]), seq=h["seq"])
        for k, empty in out.arrays.items():
            if k not in arrays or arrays[k].shape != empty.shape or arrays[k].dtype != empty.dtype:
                raise ValueError(f"performance window array {k!r} is missing or malformed")
        out.arrays = {k: arrays[k] for k in out.arrays}
        out.n, out.skipped = int(h["n"]), int(h["skipped"])
        if h["ts"] is not None:
            out.min_ts, out.max_ts = (float(t) for t in h["ts"])
        return out


def _drops(metrics: Mapping[str, float | None], reference: Mapping[str, float | None]) -> dict[str, float | None]:
    """How much worse each metric is than the reference (module docstring); None when either is missing."""
    out: dict[str, float | None] = {}
    for m, cur in metrics.items():
        if m in _NO_DROP:
            continue
        ref = reference.get(m)
        if cur is None or ref is None or not math.isfinite(ref):
            out[m] = None
        elif m in _RELATIVE:
            out[m] = (cur - ref) / ref if ref > 0 else (0.0 if cur == ref else math.inf)
        else:
            out[m] = ref - cur
    return out


def performance_from_arrays(
    settings: PerformanceSettings | str,
    predictions: Any,
    labels: Any,
    timestamps: Any = None,
    *,
    reference: Mapping[str, float | None] | PerformanceResult | None = None,
) -> PerformanceResult | None:
    """Metrics of a whole data set in one window (e.g. the reference's); None under ``min_labels`` pairs."""
    window = PerformanceWindow(settings)
    window.update(predictions, labels, timestamps)
    return window.result(reference)


class PerformanceWindows:
    """Tumbling windows of exactly ``size`` used pairs; ``update`` returns the results of closed windows."""

    def __init__(
        self,
        settings: PerformanceSettings | str,
        size: int,
        *,
        reference: Mapping[str, float | None] | PerformanceResult | None = None,
    ) -> None:
        self.settings = _as_settings(settings)
        self.size = check_positive_int("size", size)
        if self.size < self.settings.min_labels:
            raise ValueError(f"size must be >= min_labels ({self.settings.min_labels}), got {size!r}")
        self.reference = _reference_metrics(reference)
        self.open_window: PerformanceWindow | None = None
        self._next_seq = 0

    def update(self, predictions: Any, labels: Any, timestamps: Any = None) -> list[PerformanceResult]:
        enc = _encode(self.settings, predictions, labels, timestamps)
        done = np.concatenate([[0], np.cumsum(enc["valid"])])  # used pairs before each position
        closed: list[PerformanceResult] = []
        i, m = 0, enc["valid"].size
        while i < m:
            if self.open_window is None:
                self.open_window = PerformanceWindow(self.settings, seq=self._next_seq)
                self._next_seq += 1
            w = self.open_window
            # the first position after which the window holds `size` used pairs (or the batch end)
            j = min(int(np.searchsorted(done, done[i] + self.size - w.n, side="left")), m)
            w._add(enc, i, j)
            i = j
            if w.n == self.size:
                closed.append(w.result(self.reference))  # type: ignore[arg-type]  # size >= min_labels
                self.open_window = None
        return closed

    def flush(self) -> PerformanceResult | None:
        """Close the open window whatever its size; its result (None under ``min_labels``)."""
        w, self.open_window = self.open_window, None
        return None if w is None else w.result(self.reference)

    def to_bytes(self) -> bytes:
        header = {"kind": "performance_windows", "format_version": FORMAT_VERSION, "settings": self.settings.to_dict()}
        header.update(size=self.size, next_seq=self._next_seq, reference=self.reference)
        arrays = {} if self.open_window is None else {"open": np.frombuffer(self.open_window.to_bytes(), np.uint8)}
        return pack(header, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformanceWindows:
        h, a = unpack(data)
        if h.get("kind") != "performance_windows" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not performance windows of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        out = cls(PerformanceSettings(**h["settings"]), h["size"], reference=h["reference"])
        out._next_seq = int(h["next_seq"])
        if "open" in a:
            out.open_window = PerformanceWindow.from_bytes(a["open"].tobytes())
        return out
