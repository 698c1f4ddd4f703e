"""Windows of live traffic, counted into a reference's bins and categories, and the policies that cut them.

:class:`WindowLayout` (in :mod:`detectors.windows.layout`, importable from here too) fixes,
for one reference profile, what a window counts:
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

import math
from collections.abc import Callable, Mapping
from functools import partial
from itertools import repeat
from typing import Any, cast

import numpy as np
import pandas as pd

from detectors.columns import NULL, WRONG_TYPE, Batch
from detectors.profiles import NumericProfile
from detectors.sketches import QuantileSketch, Reservoir, pack, unpack
from detectors.threads import Workers, run_all
from detectors.windows.layout import WindowLayout

__all__ = ["FORMAT_VERSION", "WindowLayout", "WindowState", "derive_seed"]

FORMAT_VERSION = 1
_NULL, _NONFINITE, _WRONG, _BELOW, _ABOVE = range(5)  # rows of WindowState.num_counters


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from non-negative integers (e.g. base seed and window sequence number)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


_FACTORISE_FROM = 1024  # rows: below, a dict look-up per value costs less than factorising
_BIN_BY_CHANNEL_FROM = 4096  # rows: below, counting all channels as one matrix makes fewer numpy calls
_BIN_BLOCK = 65_536  # rows of a column compared with its bin edges at a time (512 KiB of float64)


class _ColumnRows:
    """Columns of equal length read as the rows of an (n, d) float64 matrix, built only for
    the rows asked for (what :meth:`~detectors.sketches.Reservoir.add` reads of its input)."""

    def __init__(self, columns: list[np.ndarray], n: int) -> None:
        self.columns = columns
        self.shape = (n, len(columns))
        self.ndim = 2

    def __getitem__(self, index: slice | np.ndarray) -> np.ndarray:
        first = self.columns[0][index]
        # filled column by column (contiguous writes), handed over as its (k, d) transpose
        out = np.empty((len(self.columns), first.shape[0]))
        out[0] = first
        for j, col in enumerate(self.columns[1:], start=1):
            out[j] = col[index]
        return out.T


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
    def update(self, batch: Batch, workers: Workers | None = None) -> None:
        """Count a batch (columns encoded as in :mod:`detectors.columns`) into this window.
        ``workers``: a large batch's channels are counted on its threads (each into its own
        slots; numpy releases the GIL), and offered to the reservoir beside them, with the
        same result."""
        n = len(batch)
        if n == 0:
            return
        lay = self.layout
        ts = batch.timestamps
        if not np.isfinite(ts).all():
            ts = ts[np.isfinite(ts)]
        if ts.size:
            self.min_ts, self.max_ts = min(self.min_ts, float(ts.min())), max(self.max_ts, float(ts.max()))
        d = len(lay.numeric)
        if lay.numeric and n >= _BIN_BY_CHANNEL_FROM:
            jobs: list[Callable[[], Any]] = [partial(self._count_column, j, batch, n) for j in range(d)]
            jobs += [partial(self._count_categorical, c, batch, n) for c in range(len(lay.categorical))]
            # The reservoir keeps rows by its own draws, whatever their values: it can take the
            # batch beside the counting, unless it samples categorical slots (known once counted).
            alongside = bool(lay.sampled) and not lay.coded_categorical
            if alongside:
                jobs.append(partial(self._sample, batch, n, None, None, {}))
            done = run_all(workers, jobs)
            columns, slots = done[:d], dict(zip(lay.categorical, done[d : d + len(lay.categorical)], strict=True))
            if lay.sampled and not alongside:
                self._sample(batch, n, None, columns, slots)
        else:
            rows = self._update_numeric(batch, n).T if lay.numeric else None
            slots = {ch: self._count_categorical(c, batch, n) for c, ch in enumerate(lay.categorical)}
            if lay.sampled:
                self._sample(batch, n, rows, None if rows is None else list(rows.T), slots)
        if batch.latency_ms is not None:
            self.latency.update(batch.latency_ms)
        self.n += n

    def _count_categorical(self, c: int, batch: Batch, n: int) -> np.ndarray | None:
        """Count categorical channel ``c`` of a batch; returns each row's slot when the
        reservoir samples the channel (``WindowLayout.coded_categorical``), else None."""
        lay = self.layout
        ch = lay.categorical[c]
        o, size = int(lay.cat_offsets[c]), lay.cat_sizes[c]
        coded = batch.codes.get(ch)
        col = batch.inputs.get(ch) if coded is not None else batch.column(ch)  # codes: not spelled out
        sampled = ch in lay.sample_index
        if col is None and coded is None:  # channel absent from the batch: every record is null
            self.cat_counts[o + size + 2] += n
            return np.full(n, size + 2) if sampled else None
        if col is not None and col.dtype.kind not in "OUT":
            raise TypeError(f"column {ch!r} must hold str/None (object dtype), got dtype {col.dtype}")
        if coded is not None:  # read from a table: count the codes, look up each distinct name once
            per_name = np.bincount(coded[0], minlength=coded[1].size)
            slots = _category_slots(coded[1], lay.cat_maps[c], size)
            np.add.at(self.cat_counts, o + slots, per_name)
            row_slots = slots[coded[0]] if sampled else None
        else:
            assert col is not None  # absent columns are counted above
            row_slots = _category_slots(col, lay.cat_maps[c], size)
            self.cat_counts[o : o + size + 3] += np.bincount(row_slots, minlength=size + 3)
        st = batch.status.get(ch)
        if st is not None:
            self.cat_wrong[c] += np.count_nonzero(st == WRONG_TYPE)
        return row_slots if sampled else None

    def _sample(
        self,
        batch: Batch,
        n: int,
        rows: np.ndarray | None,
        columns: list[np.ndarray] | None,
        slots: Mapping[str, np.ndarray | None],
    ) -> None:
        """Offer the batch's rows to the reservoir: numeric channels (``columns``, or ``rows``
        when they are one matrix, or read from the batch when None), then the layout's extra
        numeric inputs (NaN when absent) and categorical slot codes."""
        lay = self.layout
        if rows is not None and not (lay.extra_numeric or lay.coded_categorical):
            self.reservoir.add(rows)
            return
        if columns is None:
            columns = [self._numeric_input(j, batch, n) for j in range(len(lay.numeric))]
        extras = [batch.inputs.get(k, np.full(n, np.nan)) for k in lay.extra_numeric]
        coded = [cast(np.ndarray, slots[k]) for k in lay.coded_categorical]
        gathered = _ColumnRows([*columns, *extras, *coded], n)
        # The reservoir reads only ``shape``, a leading slice and the rows it keeps: a duck-typed
        # matrix spares a copy of the whole batch (most rows of a large batch are not kept).
        self.reservoir.add(cast(np.ndarray, gathered))

    def _numeric_input(self, j: int, batch: Batch, n: int) -> np.ndarray:
        """Numeric channel ``j`` of a batch as float64 (all NaN when the batch has no such column)."""
        ch = self.layout.numeric[j]
        col = batch.column(ch)
        if col is None:
            return np.full(n, np.nan)  # channel absent from the batch: every record is null
        if col.dtype.kind not in "fiub":
            raise TypeError(f"column {ch!r} must be numeric, got dtype {col.dtype}")
        return np.asarray(col, dtype=np.float64)

    def _count_column(self, j: int, batch: Batch, n: int) -> np.ndarray:
        """Count numeric channel ``j`` of a large batch (the counts :meth:`_update_numeric`
        makes of the whole matrix, one column at a time: no copy of the batch, and one column
        stays in the CPU cache across its bin edges); returns the column as float64."""
        lay, c = self.layout, self.num_counters
        ch = lay.numeric[j]
        col = self._numeric_input(j, batch, n)
        # The usual column holds no null, NaN or infinity: its min and max (NaN propagates)
        # say so without a mask of finite values.
        lowest = np.min(col, initial=np.inf)
        highest = np.max(col, initial=-np.inf)
        finite: np.ndarray | bool = True
        nonfinite = 0
        if not (math.isfinite(lowest) and math.isfinite(highest)):
            finite = np.isfinite(col)
            nonfinite = n - int(np.count_nonzero(finite))
            lowest = np.min(col, where=finite, initial=np.inf)
            highest = np.max(col, where=finite, initial=-np.inf)
        null = wrong = 0
        st = batch.status.get(ch)
        if st is not None:
            null, wrong = int(np.count_nonzero(st == NULL)), int(np.count_nonzero(st == WRONG_TYPE))
        elif nonfinite:
            null = int(np.count_nonzero(np.isnan(col)))  # without a status array NaN means null
        c[_NULL, j] += null
        c[_WRONG, j] += wrong
        c[_NONFINITE, j] += nonfinite - null - wrong
        if lowest < lay.lo[j]:
            c[_BELOW, j] += np.count_nonzero((col < lay.lo[j]) & finite)
        if highest > lay.hi[j]:
            c[_ABOVE, j] += np.count_nonzero((col > lay.hi[j]) & finite)
        self.num_min[j] = np.minimum(self.num_min[j], lowest)
        self.num_max[j] = np.maximum(self.num_max[j], highest)
        self.num_sum[j] += np.sum(col, where=finite)
        # values at or below each edge (right-closed bins); -inf always is, NaN never
        minus_inf = int(np.count_nonzero(col == -np.inf)) if nonfinite else 0
        edges = lay.edges[j].tolist()
        at_or_below = np.full(len(edges), -minus_inf, dtype=np.int64)
        for start in range(0, n, _BIN_BLOCK):  # a block stays in the CPU cache across the edges
            block = col[start : start + _BIN_BLOCK]
            at_or_below += [np.count_nonzero(block <= edge) for edge in edges]
        o, size = int(lay.bin_offsets[j]), len(edges) + 1
        cumulative = np.array([0, *at_or_below.tolist(), n - nonfinite], dtype=np.int64)
        self.bin_counts[o : o + size] += cumulative[1:] - cumulative[:-1]
        return col

    def _update_numeric(self, batch: Batch, n: int) -> np.ndarray:
        """Count the numeric channels of a small batch as one (d, n) matrix (few numpy calls)."""
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
        self._bin_together(x, None if all_finite else finite)
        return x

    def _bin_together(self, x: np.ndarray, finite: np.ndarray | None) -> None:
        """Bin counts of all channels at once (``finite``: None when every value is finite):
        a value's slot is its channel's first slot plus the number of edges below it."""
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
