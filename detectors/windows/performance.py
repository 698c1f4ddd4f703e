"""Performance windows: bounded, mergeable, serialisable accumulators of labelled pairs
(:class:`PerformanceWindow`), and tumbling windows of them (:class:`PerformanceWindows`).
What they measure, and how labels are normalised, is in :mod:`detectors.performance`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from detectors.columns import category_string, coerce_numeric
from detectors.performance import (
    FORMAT_VERSION,
    METRICS,
    NO_DROP_METRICS,
    RELATIVE_METRICS,
    PerformanceResult,
    PerformanceSettings,
    as_settings,
    binary_label,
    reference_metrics,
)
from detectors.sketches import check_positive_int, pack, unpack


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
        self.settings = s = as_settings(settings)
        self.seq, self.n, self.skipped = int(seq), 0, 0
        self.min_ts, self.max_ts = math.inf, -math.inf
        self.arrays: dict[str, np.ndarray]  # int64 counts, or float64 sums for regression
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
            # Per-class vectors: named apart from the binary branch's int counts.
            tps = np.diag(m[:, :-1])
            fps, fns = a["matrix"][:, :-1].sum(axis=0) - tps, m.sum(axis=1) - tps
            present = (tps + fps + fns) > 0
            if not present.any():
                return {"accuracy": ratio(int(a["correct"][0]), n), **dict.fromkeys(METRICS["multiclass"][1:])}
            with np.errstate(divide="ignore", invalid="ignore"):
                prec = np.where(tps + fps > 0, tps / (tps + fps), 0.0)[present]
                rec = np.where(tps + fns > 0, tps / (tps + fns), 0.0)[present]
                f1 = (2 * tps / (2 * tps + fps + fns))[present]
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
        s, ref = self.settings, reference_metrics(reference)  # validated even when there is no result yet
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
        limits = (s.max_drop or {}).items()
        degraded = () if drop is None else tuple(m for m, lim in limits if (drop.get(m) or 0.0) > lim)
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
        if m in NO_DROP_METRICS:
            continue
        ref = reference.get(m)
        if cur is None or ref is None or not math.isfinite(ref):
            out[m] = None
        elif m in RELATIVE_METRICS:
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
        self.settings = as_settings(settings)
        self.size = check_positive_int("size", size)
        if self.size < self.settings.min_labels:
            raise ValueError(f"size must be >= min_labels ({self.settings.min_labels}), got {size!r}")
        self.reference = reference_metrics(reference)
        self.open_window: PerformanceWindow | None = None
        self._next_seq = 0

    @property
    def next_seq(self) -> int:
        """The number the next window made will get."""
        return self._next_seq

    def continue_numbering(self, next_seq: int) -> None:
        """Number the windows from ``next_seq`` on if they would get lower numbers; the open
        window, if any, is renumbered to it (as :meth:`detectors.windows.policies.Windower.continue_numbering`)."""
        if isinstance(next_seq, bool) or not isinstance(next_seq, (int, np.integer)) or next_seq < 0:
            raise ValueError(f"next_seq must be a non-negative integer, got {next_seq!r}")
        w = self.open_window
        shift = int(next_seq) - (self._next_seq if w is None else w.seq)
        if shift > 0:
            if w is not None:
                w.seq += shift
            self._next_seq += shift

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
