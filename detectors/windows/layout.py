"""What the windows of one reference count: its bins, categories, out-of-range bounds and
samples (:class:`WindowLayout`, shared by every window of that reference; the windows
themselves are :class:`detectors.windows.state.WindowState`)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from detectors.profiles import CategoricalProfile, NumericProfile, ReferenceProfile
from detectors.schema import LATENCY, PREDICTION
from detectors.sketches import QuantileSketch, check_positive_int


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

    @functools.cached_property
    def fingerprint(self) -> str:
        """What checkpoints of these windows are matched by (made when first asked for)."""
        ident = [
            self.reference.content_hash,
            self.sample_size,
            self.lo.tolist(),
            self.hi.tolist(),
            self.latency_accuracy,
        ]
        if self.extra_numeric or self.coded_categorical:  # kept out otherwise: older checkpoints still match
            ident.append([self.extra_numeric, self.coded_categorical])
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]

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
