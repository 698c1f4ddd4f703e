"""Windows of live traffic, counted into a reference's bins and categories, and the policies that cut them.

:class:`WindowLayout` fixes, for one reference profile, what a window counts:
the reference's numeric bin edges, its top-K categories, the out-of-range bounds
(given per channel, or the reference min/max widened by ``range_margin`` times
the reference range; latency bounds never go below 0; a binary score's are
[0, 1]), the reservoir size and the latency sketch accuracy.

:class:`WindowState` holds fixed-size arrays only, so its memory does not grow with traffic:

* numeric channels: int64 counts per reference bin (finite values only), null,
  non-finite, wrong-type, below-range and above-range counts, min/max/sum of
  finite values, and one row reservoir shared by all numeric channels (one RNG
  draw per row, not per channel); when the layout asks, the reservoir's rows also
  carry extra numeric inputs and categorical slot codes (``WindowLayout.sampled``).
* categorical channels: counts per top-K category, ``other`` and ``unseen``.
  *Unseen is a subset of other*: ``other`` counts every non-null value outside
  the reference top-K (so ``counts()`` aligns with the reference's
  ``[top-K..., other]``), and ``unseen`` counts those of them the reference never
  saw at all (not in its top-K nor in its remembered tail; if the reference's
  tail was truncated, rare known values may count as unseen).
* latency: a :class:`~detectors.sketches.QuantileSketch` of every batch's
  ``latency_ms``, whether or not the reference has a latency channel (users send
  latency without profiling it); bins and range counts only when it has one. The
  sketch has a fixed number of buckets, so this does not break the memory bound.
* record count, min/max event timestamp (epoch s), ``late`` records (time windows).

The policies that cut traffic into windows are in :mod:`detectors.windows.policies`.

Every window's RNG seed derives from the windower's ``seed`` and the window's
sequence number, so runs are reproducible, and ``to_bytes``/``from_bytes`` keep
RNG states: continuing after a restore gives byte-identical windows. State is
stored with :func:`detectors.sketches.pack` (JSON header + raw arrays, no pickle)
and can only be restored against the same layout (checked by fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from detectors.columns import NULL, WRONG_TYPE, Batch
from detectors.profiles import CategoricalProfile, NumericProfile, ReferenceProfile
from detectors.schema import LATENCY, PREDICTION
from detectors.sketches import QuantileSketch, Reservoir, check_positive_int, pack, unpack

FORMAT_VERSION = 1
_NULL, _NONFINITE, _WRONG, _BELOW, _ABOVE = range(5)  # rows of WindowState.num_counters


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from non-negative integers (e.g. base seed and window sequence number)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class WindowLayout:
    """What windows built on ``reference`` count; shared by all windows of one reference."""

    def __init__(
        self,
        reference: ReferenceProfile,
        *,
        sample_size: int = 10_000,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        range_margin: float = 0.1,
        latency_accuracy: float = 0.01,
        extra_numeric: Sequence[str] = (),
        coded_categorical: Sequence[str] = (),
    ) -> None:
        if not isinstance(reference, ReferenceProfile):
            raise TypeError(f"reference must be a ReferenceProfile, got {type(reference).__name__}")
        self.sample_size = check_positive_int("sample_size", sample_size)
        if not (isinstance(range_margin, (int, float)) and 0 <= range_margin < math.inf):
            raise ValueError(f"range_margin must be a finite number >= 0, got {range_margin!r}")
        self.reference = reference
        self.latency_accuracy = float(latency_accuracy)
        QuantileSketch(self.latency_accuracy)  # validates the accuracy now, not at the first window
        chans = reference.channels
        # Split by type once, so that each side's profiles are typed as such below.
        num_profiles = {k: p for k, p in chans.items() if isinstance(p, NumericProfile)}
        cat_profiles = {k: p for k, p in chans.items() if isinstance(p, CategoricalProfile)}
        self.numeric = list(num_profiles)
        self.categorical = list(cat_profiles)
        self.num_index = {k: j for j, k in enumerate(self.numeric)}
        self.cat_index = {k: j for j, k in enumerate(self.categorical)}
        self.edges = [num_profiles[k].edges for k in self.numeric]
        self.bin_offsets = np.concatenate([[0], np.cumsum([e.size + 1 for e in self.edges])]).astype(np.int64)
        # All channels' edges padded with +inf to one (d, B) matrix, so that a batch's bins come
        # from B vectorised comparisons and one bincount instead of a searchsorted per channel.
        width = max((e.size for e in self.edges), default=0)
        self.padded_edges = np.full((len(self.edges), width), np.inf)
        for j, e in enumerate(self.edges):
            self.padded_edges[j, : e.size] = e
        # Typed wide: the fallback for no numeric channel is a float array (cast to intp anyway).
        runs: list[np.ndarray] = [j * (width + 1) + np.arange(e.size + 1) for j, e in enumerate(self.edges)]
        self.flat_to_padded = np.concatenate(runs or [np.empty(0)]).astype(np.intp)
        # A value's slot in that padded matrix is its channel's first slot plus the number of
        # edges below it, the last slot (d * (width + 1)) taking the non-finite values. Slots
        # are counted in the narrowest unsigned type that holds them: adding the B comparisons
        # of a batch then moves 1 or 2 bytes per value instead of 8.
        slots = len(self.edges) * (width + 1) + 1
        slot_type = np.uint8 if slots <= 2**8 else np.uint16 if slots <= 2**16 else np.intp
        self.first_slots = (np.arange(len(self.edges)) * (width + 1)).astype(slot_type)[:, None]
        given = dict(bounds or {})
        unknown = sorted(set(given) - set(self.numeric))
        if unknown:
            raise ValueError(f"bounds given for unknown or non-numeric channels: {unknown}")
        lo, hi = [], []
        for k in self.numeric:
            a, b = given[k] if k in given else self._infer_bounds(k, num_profiles[k], float(range_margin))
            if not a <= b:
                raise ValueError(f"bounds[{k!r}] must have low <= high, got ({a!r}, {b!r})")
            lo.append(a)
            hi.append(b)
        self.lo, self.hi = np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
        # category code per value: top-K -> 0..K-1, tail -> K (other), unknown -> K+1 (unseen), None -> K+2
        self.cat_sizes = [len(cat_profiles[k].categories) for k in self.categorical]
        self.cat_offsets = np.concatenate([[0], np.cumsum([s + 3 for s in self.cat_sizes])]).astype(np.int64)
        self.cat_maps: list[dict[str | None, int]] = []
        for k, size in zip(self.categorical, self.cat_sizes, strict=True):
            p = cat_profiles[k]
            m: dict[str | None, int] = {t: size for t in p.tail}
            m.update({c: i for i, c in enumerate(p.categories)})
            m[None] = size + 2
            self.cat_maps.append(m)
        # Every evaluation compares with the same reference samples: sort their finite part once.
        self.reference_sorted = {k: np.sort(p.sample[np.isfinite(p.sample)]) for k, p in num_profiles.items()}
        self.has_latency = LATENCY in chans  # a profiled latency channel (bins, range counts)
        self._sample_columns(extra_numeric, coded_categorical)
        ident = [reference.content_hash, self.sample_size, self.lo.tolist(), self.hi.tolist(), self.latency_accuracy]
        if self.extra_numeric or self.coded_categorical:  # kept out otherwise: older checkpoints still match
            ident.append([self.extra_numeric, self.coded_categorical])
        self.fingerprint = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]

    def _sample_columns(self, extra_numeric: Sequence[str], coded_categorical: Sequence[str]) -> None:
        """Reservoir-only columns after the numeric channels, for detectors.estimation.window:
        extra numeric inputs (class probabilities) and categorical slot codes (``cat_maps``)."""
        self.extra_numeric, self.coded_categorical = [str(k) for k in extra_numeric], list(coded_categorical)
        if not set(self.coded_categorical) <= set(self.categorical):
            raise ValueError(f"coded_categorical names non-categorical channels: {self.coded_categorical}")
        self.sampled = [*self.numeric, *self.extra_numeric, *self.coded_categorical]  # reservoir columns
        self.sample_index = {k: j for j, k in enumerate(self.sampled)}

    def _infer_bounds(self, name: str, p: NumericProfile, margin: float) -> tuple[float, float]:
        schema = self.reference.schema
        if name == PREDICTION and schema.prediction_kind == "binary":
            return 0.0, 1.0
        if not (math.isfinite(p.min) and math.isfinite(p.max)):
            return -math.inf, math.inf
        span = p.max - p.min
        pad = margin * (span if span > 0 else max(abs(p.max), 1.0))
        lo = p.min - pad
        return (max(lo, 0.0) if name == LATENCY else lo), p.max + pad


_FACTORISE_FROM = 1024  # rows: below, a dict look-up per value costs less than factorising
_BIN_BY_CHANNEL_FROM = 4096  # rows: below, binning all channels together makes fewer numpy calls


def _category_slots(col: np.ndarray, slots: Mapping[str | None, int], size: int) -> np.ndarray:
    """Each value's slot (see ``WindowLayout.cat_maps``; unknown values -> ``size + 1``).

    A large batch is factorised first (one hash per value, in C), so that the dict is
    looked up once per distinct value rather than once per row."""
    n, unseen = col.shape[0], size + 1
    if n < _FACTORISE_FROM:
        # map() calls dict.get in C: a third of the cost of a generator expression.
        return np.fromiter(map(slots.get, col, repeat(unseen, n)), dtype=np.intp, count=n)
    found, distinct = pd.factorize(col, use_na_sentinel=True)  # None -> -1
    lookup = np.fromiter(map(slots.get, distinct, repeat(unseen)), dtype=np.intp, count=len(distinct))
    return np.append(lookup, slots[None])[found]  # -1 takes the last entry: the null slot


class WindowState:
    """Counts, samples and sketches of the records of one window (see the module docstring)."""

    def __init__(
        self, layout: WindowLayout, *, seq: int = 0, seed: int = 0, start: float = math.nan, end: float = math.nan
    ) -> None:
        self.layout = layout
        self.seq, self.seed = int(seq), int(seed)
        self.start, self.end = float(start), float(end)
        self.n = 0
        self.late = 0
        self.min_ts, self.max_ts = math.inf, -math.inf
        d = len(layout.numeric)
        self.bin_counts = np.zeros(int(layout.bin_offsets[-1]), dtype=np.int64)
        self.num_counters = np.zeros((5, d), dtype=np.int64)
        self.num_min = np.full(d, np.inf)
        self.num_max = np.full(d, -np.inf)
        self.num_sum = np.zeros(d)
        self.cat_counts = np.zeros(int(layout.cat_offsets[-1]), dtype=np.int64)
        self.cat_wrong = np.zeros(len(layout.categorical), dtype=np.int64)
        self.reservoir = Reservoir(layout.sample_size, len(layout.sampled), self.seed)
        self.latency = QuantileSketch(layout.latency_accuracy)  # always: latency needs no reference

    # ---- updating -------------------------------------------------------------------------------
    def update(self, batch: Batch) -> None:
        """Count a batch (columns encoded as in :mod:`detectors.columns`) into this window."""
        n = len(batch)
        if n == 0:
            return
        lay = self.layout
        ts = batch.timestamps[np.isfinite(batch.timestamps)]
        if ts.size:
            self.min_ts, self.max_ts = min(self.min_ts, float(ts.min())), max(self.max_ts, float(ts.max()))
        x = self._update_numeric(batch, n) if lay.numeric else np.empty((0, n))
        sampled: dict[str, np.ndarray] = {}  # per-row slots of the categorical channels sampled
        for c, ch in enumerate(lay.categorical):
            o, size = int(lay.cat_offsets[c]), lay.cat_sizes[c]
            col = batch.column(ch)
            if col is None:  # channel absent from the batch: every record is null
                self.cat_counts[o + size + 2] += n
                sampled[ch] = np.full(n, size + 2)
                continue
            if col.dtype.kind not in "OUT":
                raise TypeError(f"column {ch!r} must hold str/None (object dtype), got dtype {col.dtype}")
            coded = batch.codes.get(ch)
            if coded is not None:  # read from a table: count the codes, look up each distinct name once
                per_name = np.bincount(coded[0], minlength=coded[1].size)
                slots = _category_slots(coded[1], lay.cat_maps[c], size)
                np.add.at(self.cat_counts, o + slots, per_name)
                if ch in lay.sample_index:
                    sampled[ch] = slots[coded[0]]
            else:
                sampled[ch] = slots = _category_slots(col, lay.cat_maps[c], size)
                self.cat_counts[o : o + size + 3] += np.bincount(slots, minlength=size + 3)
            st = batch.status.get(ch)
            if st is not None:
                self.cat_wrong[c] += np.count_nonzero(st == WRONG_TYPE)
        if batch.latency_ms is not None:
            self.latency.update(batch.latency_ms)
        if lay.sampled:
            self._sample(batch, x, sampled)
        self.n += n

    def _sample(self, batch: Batch, x: np.ndarray, slots: Mapping[str, np.ndarray]) -> None:
        """Offer the batch's rows to the reservoir: numeric channels (``x``, d x n), then the
        layout's extra numeric inputs (NaN when absent) and categorical slot codes."""
        lay = self.layout
        if not (lay.extra_numeric or lay.coded_categorical):
            self.reservoir.add(x.T)
            return
        extras = [batch.inputs.get(k, np.full(x.shape[1], np.nan)) for k in lay.extra_numeric]
        self.reservoir.add(np.vstack([x, *extras, *(slots[k] for k in lay.coded_categorical)]).T)

    def _update_numeric(self, batch: Batch, n: int) -> np.ndarray:
        lay = self.layout
        d = len(lay.numeric)
        x = np.empty((d, n))
        null = np.zeros(d, dtype=np.int64)
        wrong = np.zeros(d, dtype=np.int64)
        nan_is_null = np.ones(d, dtype=bool)  # channels without a status array: NaN means null
        for j, ch in enumerate(lay.numeric):
            col = batch.column(ch)
            if col is None:
                x[j] = np.nan
                continue
            if col.dtype.kind not in "fiub":
                raise TypeError(f"column {ch!r} must be numeric, got dtype {col.dtype}")
            x[j] = col
            st = batch.status.get(ch)
            if st is not None:
                nan_is_null[j] = False
                null[j] = np.count_nonzero(st == NULL)
                wrong[j] = np.count_nonzero(st == WRONG_TYPE)
        finite = np.isfinite(x)
        # The usual batch holds no null, NaN or infinity: then the masks below are not needed
        # (every value is finite, and NaN-as-null counts nothing). The reductions keep their
        # ``initial`` so that they compare in the same order, down to the sign of a zero min.
        all_finite = bool(finite.all())
        if all_finite:
            nonfinite = np.zeros(d, dtype=np.int64)
        else:
            nonfinite = n - np.count_nonzero(finite, axis=1)
            if nan_is_null.any():
                null[nan_is_null] = np.count_nonzero(np.isnan(x[nan_is_null]), axis=1)
        c = self.num_counters
        c[_NULL] += null
        c[_WRONG] += wrong
        c[_NONFINITE] += nonfinite - null - wrong  # null / wrong-type rows hold NaN, so are not finite
        where = True if all_finite else finite
        lowest = np.min(x, axis=1, where=where, initial=np.inf)
        highest = np.max(x, axis=1, where=where, initial=-np.inf)
        # Out-of-range values are rare: the batch's finite min and max tell whether to count them.
        if (lowest < lay.lo).any():
            c[_BELOW] += np.count_nonzero((x < lay.lo[:, None]) & finite, axis=1)
        if (highest > lay.hi).any():
            c[_ABOVE] += np.count_nonzero((x > lay.hi[:, None]) & finite, axis=1)
        self.num_min = np.minimum(self.num_min, lowest)
        self.num_max = np.maximum(self.num_max, highest)
        self.num_sum += np.sum(x, axis=1, where=where)
        # bin of a value = number of edges strictly below it (right-closed bins, as searchsorted 'left')
        if n >= _BIN_BY_CHANNEL_FROM:
            self._bin_by_channel(x, nonfinite)
        else:
            self._bin_together(x, None if all_finite else finite)
        return x

    def _bin_by_channel(self, x: np.ndarray, nonfinite: np.ndarray) -> None:
        """Bin counts of a large batch: per channel, the number of values at or below each
        edge. One channel's row stays in the CPU cache across its edges, where the matrix of
        :meth:`_bin_together` is read from memory once per edge. ``nonfinite``: per channel,
        the values that are no number (NaN: never at or below an edge) or infinite (-inf
        always is: taken off again)."""
        lay, n = self.layout, x.shape[1]
        for j, edges in enumerate(lay.edges):
            row = x[j]
            finite, minus_inf = n, 0
            if nonfinite[j]:
                finite, minus_inf = n - int(nonfinite[j]), int(np.count_nonzero(row == -np.inf))
            at_or_below = [np.count_nonzero(row <= edge) - minus_inf for edge in edges.tolist()]
            o = int(lay.bin_offsets[j])
            cumulative = np.array([0, *at_or_below, finite], dtype=np.int64)
            self.bin_counts[o : o + edges.size + 1] += cumulative[1:] - cumulative[:-1]

    def _bin_together(self, x: np.ndarray, finite: np.ndarray | None) -> None:
        """Bin counts of all channels at once (small batches; ``finite``: None when every
        value is finite)."""
        lay = self.layout
        d, n = x.shape
        edges = lay.padded_edges
        width = edges.shape[1]
        slot = np.empty((d, n), dtype=lay.first_slots.dtype)
        slot[:] = lay.first_slots
        above_edge = np.empty((d, n), dtype=bool)
        for k in range(width):
            np.greater(x, edges[:, k : k + 1], out=above_edge)
            slot += above_edge.view(np.uint8)
        if finite is not None:
            slot[~finite] = d * (width + 1)  # one discard slot for non-finite values
        counts = np.bincount(slot.ravel(), minlength=d * (width + 1) + 1)
        self.bin_counts += counts[lay.flat_to_padded]

    # ---- reading --------------------------------------------------------------------------------
    def counts(self, channel: str) -> np.ndarray:
        """Current counts aligned with :meth:`reference_counts`: bins, or ``[top-K..., other]``."""
        lay = self.layout
        if channel in lay.num_index:
            j = lay.num_index[channel]
            return self.bin_counts[lay.bin_offsets[j] : lay.bin_offsets[j + 1]].copy()
        o, size = self._cat(channel)
        slots = self.cat_counts[o : o + size + 3]
        return np.append(slots[:size], slots[size] + slots[size + 1])

    def reference_counts(self, channel: str) -> np.ndarray:
        p = self.layout.reference.channels[channel]
        return p.counts.copy() if isinstance(p, NumericProfile) else p.aligned_counts()

    def sample(self, channel: str) -> np.ndarray:
        """The window's uniform sample of a numeric channel's finite values."""
        col = self.reservoir.sample[:, self.layout.num_index[channel]]
        return col[np.isfinite(col)].copy()

    def quality(self, channel: str) -> dict[str, int]:
        """Data-quality counts of a channel (numbers of records)."""
        lay = self.layout
        if channel in lay.num_index:
            c = self.num_counters[:, lay.num_index[channel]]
            return {
                "count": self.n,
                "null": int(c[_NULL]),
                "nonfinite": int(c[_NONFINITE]),
                "wrong_type": int(c[_WRONG]),
                "below_range": int(c[_BELOW]),
                "above_range": int(c[_ABOVE]),
                "out_of_range": int(c[_BELOW] + c[_ABOVE]),
            }
        o, size = self._cat(channel)
        wrong = int(self.cat_wrong[lay.cat_index[channel]])
        return {
            "count": self.n,
            "null": int(self.cat_counts[o + size + 2]) - wrong,
            "wrong_type": wrong,
            "other": int(self.cat_counts[o + size] + self.cat_counts[o + size + 1]),
            "unseen": int(self.cat_counts[o + size + 1]),
        }

    def value_range(self, channel: str) -> tuple[float, float]:
        """(min, max) of the finite values seen; (nan, nan) when none."""
        j = self.layout.num_index[channel]
        if not math.isfinite(self.num_min[j]):
            return math.nan, math.nan
        return float(self.num_min[j]), float(self.num_max[j])

    def latency_quantiles(self, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> np.ndarray:
        """Sketch estimates of the latency quantiles (ms); NaN when the window saw no latency."""
        return self.latency.quantiles(qs)

    def _cat(self, channel: str) -> tuple[int, int]:
        if channel not in self.layout.cat_index:
            raise KeyError(f"unknown channel {channel!r}")
        c = self.layout.cat_index[channel]
        return int(self.layout.cat_offsets[c]), self.layout.cat_sizes[c]

    @property
    def nbytes(self) -> int:
        """Bytes held by the window's arrays (excluding the shared layout)."""
        arrays = (self.bin_counts, self.num_counters, self.num_min, self.num_max, self.num_sum, self.cat_counts,
                  self.cat_wrong)  # fmt: skip
        return sum(a.nbytes for a in arrays) + self.reservoir.nbytes + self.latency.counts.nbytes

    # ---- merging and storage --------------------------------------------------------------------
    def merge(self, other: WindowState) -> WindowState:
        """A new window over both windows' records (counts add; sample uniform over the union)."""
        if other.layout.fingerprint != self.layout.fingerprint:
            raise ValueError("cannot merge windows of different layouts (reference or parameters differ)")
        out = WindowState(
            self.layout,
            seq=self.seq,
            seed=derive_seed(self.seed, other.seed),
            start=float(np.fmin(self.start, other.start)),
            end=float(np.fmax(self.end, other.end)),
        )
        out.n, out.late = self.n + other.n, self.late + other.late
        out.min_ts, out.max_ts = min(self.min_ts, other.min_ts), max(self.max_ts, other.max_ts)
        for name in ("bin_counts", "num_counters", "num_sum", "cat_counts", "cat_wrong"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.num_min, out.num_max = np.fmin(self.num_min, other.num_min), np.fmax(self.num_max, other.num_max)
        out.reservoir = self.reservoir.merge(other.reservoir, seed=out.seed)
        out.latency = self.latency.merge(other.latency)
        return out

    def copy(self) -> WindowState:
        """An independent copy (same counts, sample and RNG state)."""
        return WindowState.from_bytes(self.to_bytes(), self.layout)

    def to_bytes(self) -> bytes:
        return pack(*self.state())

    @classmethod
    def from_bytes(cls, data: bytes, layout: WindowLayout) -> WindowState:
        return cls.from_state(*unpack(data), layout)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The window as a JSON-able header and arrays (shared, not copied): what
        :meth:`to_bytes` packs, and what the evaluation child is sent without packing."""
        rh, ra = self.reservoir.state()
        header: dict[str, Any] = {
            "kind": "window",
            "format_version": FORMAT_VERSION,
            "layout": self.layout.fingerprint,
            "seq": self.seq,
            "seed": self.seed,
            "start": self.start,
            "end": self.end,
            "n": self.n,
            "late": self.late,
            "min_ts": self.min_ts,
            "max_ts": self.max_ts,
            "reservoir": rh,
        }
        arrays = {
            "bins": self.bin_counts,
            "num_counters": self.num_counters,
            "num_min": self.num_min,
            "num_max": self.num_max,
            "num_sum": self.num_sum,
            "cat_counts": self.cat_counts,
            "cat_wrong": self.cat_wrong,
            "res.rows": ra["rows"],
        }
        # Only the sketch's non-empty buckets are stored, so an unused sketch costs a few bytes.
        lh, la = self.latency.state()
        header["latency"] = lh
        arrays.update({"lat.slots": la["slots"], "lat.counts": la["counts"]})
        return header, arrays

    @classmethod
    def from_state(cls, h: Mapping[str, Any], a: Mapping[str, np.ndarray], layout: WindowLayout) -> WindowState:
        """Inverse of :meth:`state`; the arrays become the window's own (pass copies to share nothing)."""
        if h.get("kind") != "window" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"not a window of format {FORMAT_VERSION}: kind={h.get('kind')!r}, "
                f"format_version={h.get('format_version')!r}"
            )
        if h["layout"] != layout.fingerprint:
            raise ValueError(f"window was saved with layout {h['layout']}, not {layout.fingerprint}")
        out = cls(layout, seq=h["seq"], seed=h["seed"], start=h["start"], end=h["end"])
        out.n, out.late, out.min_ts, out.max_ts = h["n"], h["late"], h["min_ts"], h["max_ts"]
        for attr, key in (("bin_counts", "bins"), ("num_counters", "num_counters"), ("num_min", "num_min"),
                          ("num_max", "num_max"), ("num_sum", "num_sum"), ("cat_counts", "cat_counts"),
                          ("cat_wrong", "cat_wrong")):  # fmt: skip
            if a[key].shape != getattr(out, attr).shape:
                raise ValueError(f"window array {key!r} has shape {a[key].shape}, expected {getattr(out, attr).shape}")
            setattr(out, attr, a[key])
        out.reservoir = Reservoir.from_state(h["reservoir"], {"rows": a["res.rows"]})
        # Checkpoints from before latency was always sketched lack it when the reference had
        # no latency channel: they restore with the empty sketch the constructor made.
        if "latency" in h:
            out.latency = QuantileSketch.from_state(h["latency"], {"slots": a["lat.slots"], "counts": a["lat.counts"]})
        return out
