"""Bounded-memory summaries used by windows: a row reservoir, a quantile sketch, and their codec.

* :class:`Reservoir` -- a seeded uniform sample of at most ``capacity`` rows of a
  ``width``-column float64 stream (Algorithm R, vectorised), mergeable into a
  uniform sample of the union, serialisable with its RNG state.
* :class:`QuantileSketch` -- a deterministic log-bucket sketch (DDSketch-style)
  for non-negative values such as latency in milliseconds. A quantile answer is
  within ``relative_accuracy`` (default 1 %) *relative value error* of the exact
  lower quantile (``np.quantile(x, q, method='lower')``) for values inside
  ``[min_value, max_value]``; below ``min_value`` the answer is 0 (absolute error
  < ``min_value``), above ``max_value`` it is the exact maximum. Merging is exact
  (bucket counts add), so a merged sketch equals the sketch of the union.
  KLL from datasketches was not used: its compaction draws from a process-wide
  RNG that cannot be seeded or checkpointed from Python, so a restored window
  would not continue bit-identically.
* :func:`pack` / :func:`unpack` -- the binary container for all detector state:
  ``b"MMDT"``, u16 codec version, u32 header length, a UTF-8 JSON header, then
  8-byte aligned little-endian arrays described in the header. Only plain numeric
  dtypes are accepted (never object arrays), so loading can never run code.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAGIC = b"MMDT"
CODEC_VERSION = 1
PREFIX = struct.Struct("<4sHI")
_DTYPES = frozenset({"<f8", "<i8", "<u8", "<i4", "<u4", "<u2", "|u1", "|i1", "|b1"})


def pack(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise a JSON-able header and named numeric arrays into one bytes object."""
    table = []
    blobs = []
    offset = 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False) if a.dtype.byteorder == ">" else a
        dt = a.dtype.str
        if dt not in _DTYPES:
            raise TypeError(f"array {name!r} has unsupported dtype {dt}")
        raw = a.tobytes()
        table.append([name, dt, list(a.shape), offset, len(raw)])
        pad = (-len(raw)) % 8
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    head = json.dumps({"h": header, "a": table}, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * ((-(len(head) + PREFIX.size)) % 8)
    return PREFIX.pack(MAGIC, CODEC_VERSION, len(head)) + head + b"".join(blobs)


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of :func:`pack`; returns writable copies of the arrays. Raises ValueError on bad input."""
    mv = memoryview(data)
    if len(mv) < PREFIX.size:
        raise ValueError("data is too short to be detector state")
    magic, version, hlen = PREFIX.unpack_from(mv, 0)
    if magic != MAGIC:
        raise ValueError(f"not detector state: magic {magic!r}")
    if version != CODEC_VERSION:
        raise ValueError(f"unsupported codec version {version}, expected {CODEC_VERSION}")
    start = PREFIX.size + hlen
    if start > len(mv):
        raise ValueError("truncated header")
    doc = json.loads(bytes(mv[PREFIX.size : start]))
    arrays: dict[str, np.ndarray] = {}
    for name, dt, shape, off, nbytes in doc["a"]:
        if dt not in _DTYPES:
            raise ValueError(f"array {name!r} has unsupported dtype {dt}")
        dtype = np.dtype(dt)
        if math.prod(shape) * dtype.itemsize != nbytes or off < 0 or start + off + nbytes > len(mv):
            raise ValueError(f"array {name!r} is inconsistent with the data")
        arrays[name] = (
            np.frombuffer(mv, dtype=dtype, count=nbytes // dtype.itemsize, offset=start + off).reshape(shape).copy()
        )
    return doc["h"], arrays


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    """A PCG64 generator's state as JSON-able values (128-bit ints as decimal strings)."""
    s = gen.bit_generator.state
    if s["bit_generator"] != "PCG64":
        raise TypeError(f"only PCG64 generators can be saved, got {s['bit_generator']}")
    return {
        "state": str(s["state"]["state"]),
        "inc": str(s["state"]["inc"]),
        "has_uint32": int(s["has_uint32"]),
        "uinteger": int(s["uinteger"]),
    }


def rng_from_state(d: Mapping[str, Any]) -> np.random.Generator:
    gen = np.random.Generator(np.random.PCG64(0))
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(d["state"]), "inc": int(d["inc"])},
        "has_uint32": int(d["has_uint32"]),
        "uinteger": int(d["uinteger"]),
    }
    return gen


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Reservoir:
    """Seeded uniform sample of at most ``capacity`` rows of ``width`` float64 columns.

    ``add`` is Algorithm R with vectorised draws: row number i (0-based over the
    stream) replaces slot ``j ~ U{0..i}`` when ``j < capacity``. Within one call
    several rows may draw the same slot; the last of them must win, exactly as
    if the rows were processed one by one. numpy does not promise which write
    wins for repeated fancy indices, so each slot's last row is found first
    (``np.maximum.at``, unbuffered) and assigned once. Storage grows by doubling up
    to ``capacity`` and never beyond, so memory is bounded whatever the traffic.
    """

    def __init__(self, capacity: int, width: int, seed: int = 0) -> None:
        self.capacity = check_positive_int("capacity", capacity)
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 0:
            raise ValueError(f"width must be a non-negative integer, got {width!r}")
        self.width = int(width)
        self.seen = 0
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._data = np.empty((0, self.width), dtype=np.float64)

    @property
    def size(self) -> int:
        """Number of rows currently held: min(seen, capacity)."""
        return min(self.seen, self.capacity)

    @property
    def sample(self) -> np.ndarray:
        """The held rows, shape (size, width) (a view: copy before modifying)."""
        return self._data[: self.size]

    def _reserve(self, rows: int) -> None:
        if rows > self._data.shape[0]:
            new = min(self.capacity, max(rows, 2 * self._data.shape[0], 64))
            grown = np.empty((new, self.width), dtype=np.float64)
            grown[: self._data.shape[0]] = self._data
            self._data = grown

    def add(self, rows: np.ndarray) -> None:
        """Offer rows (shape (m, width)) in stream order."""
        m = rows.shape[0]
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"rows must have shape (m, {self.width}), got {rows.shape}")
        if m == 0:
            return
        n0, cap = self.seen, self.capacity
        fill = max(0, min(cap - n0, m))
        if fill:
            self._reserve(n0 + fill)
            self._data[n0 : n0 + fill] = rows[:fill]
        if m > fill:
            idx = np.arange(n0 + fill, n0 + m, dtype=np.int64)
            slots = self._rng.integers(0, idx + 1)
            hit = np.flatnonzero(slots < cap)
            if hit.size:
                last = np.full(cap, -1, dtype=np.int64)
                np.maximum.at(last, slots[hit], hit)  # each slot's last hit: the write that wins
                kept = np.flatnonzero(last >= 0)
                self._data[kept] = rows[fill + last[kept]]
        self.seen = n0 + m

    def merge(self, other: Reservoir, seed: int = 0) -> Reservoir:
        """A new reservoir holding a uniform sample of the union of both streams.

        The number of rows taken from ``self`` is hypergeometric(seen_self,
        seen_other, k) with k = min(capacity, seen_self + seen_other); each side's
        rows are then picked uniformly without replacement from its sample. For
        streams of 10^9 rows or more numpy's hypergeometric is unavailable and a
        binomial draw (clipped to what each side holds) approximates it.
        """
        if (other.capacity, other.width) != (self.capacity, self.width):
            raise ValueError(
                "cannot merge reservoirs of different capacity or width: "
                f"({self.capacity}, {self.width}) vs ({other.capacity}, {other.width})"
            )
        out = Reservoir(self.capacity, self.width, seed)
        total = self.seen + other.seen
        k = min(self.capacity, total)
        if k == 0:
            return out
        rng = out._rng
        if max(self.seen, other.seen) < 10**9:
            from_self = int(rng.hypergeometric(self.seen, other.seen, k)) if other.seen else k
        else:
            from_self = int(rng.binomial(k, self.seen / total))
        from_self = min(max(from_self, k - other.size), self.size)
        a = rng.choice(self.size, size=from_self, replace=False)
        b = rng.choice(other.size, size=k - from_self, replace=False)
        out._data = np.empty((max(k, min(64, self.capacity)), self.width), dtype=np.float64)
        out._data[:from_self] = self.sample[a]
        out._data[from_self:k] = other.sample[b]
        out.seen = total
        return out

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return (
            {"capacity": self.capacity, "width": self.width, "seen": self.seen, "rng": rng_state(self._rng)},
            {"rows": self.sample},
        )

    @classmethod
    def from_state(cls, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Reservoir:
        out = cls(header["capacity"], header["width"])
        out.seen = int(header["seen"])
        out._rng = rng_from_state(header["rng"])
        rows = arrays["rows"]
        if rows.shape != (out.size, out.width):
            raise ValueError(f"reservoir rows have shape {rows.shape}, expected {(out.size, out.width)}")
        out._reserve(out.size)
        out._data[: out.size] = rows
        return out

    def to_bytes(self) -> bytes:
        return pack(*self.state())

    @classmethod
    def from_bytes(cls, data: bytes) -> Reservoir:
        return cls.from_state(*unpack(data))

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)


class QuantileSketch:
    """Deterministic, mergeable quantile sketch for non-negative values (see module docstring).

    Bucket i holds values in (gamma^(i-1), gamma^i] with gamma = (1+a)/(1-a);
    its representative 2 gamma^i / (gamma + 1) is within relative error a of
    every value in it. The bucket array is fixed-size (about 1,150 int64 for
    the defaults), so memory never grows.
    """

    def __init__(self, relative_accuracy: float = 0.01, min_value: float = 1e-3, max_value: float = 1e7) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        if not 0.0 < min_value < max_value < math.inf:
            raise ValueError(
                f"need 0 < min_value < max_value < inf, got min_value={min_value!r}, max_value={max_value!r}"
            )
        self.relative_accuracy = float(relative_accuracy)
        self.min_value, self.max_value = float(min_value), float(max_value)
        self._gamma = (1 + self.relative_accuracy) / (1 - self.relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._offset = math.ceil(math.log(self.min_value) / self._log_gamma)
        nb = math.ceil(math.log(self.max_value) / self._log_gamma) - self._offset + 1
        # slot 0: [0, min_value); slots 1..nb: log buckets; slot nb+1: > max_value
        self.counts = np.zeros(nb + 2, dtype=np.int64)
        self.negative = 0  # negative inputs are invalid for this sketch: counted, not summarised
        self.min, self.max = math.inf, -math.inf

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def _params(self) -> tuple[float, float, float]:
        return (self.relative_accuracy, self.min_value, self.max_value)

    def update(self, values: np.ndarray) -> None:
        """Add values; NaN/inf are ignored, negatives counted in ``negative``."""
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        neg = v < 0
        if neg.any():
            self.negative += int(neg.sum())
            v = v[~neg]
            if v.size == 0:
                return
        self.min = min(self.min, float(v.min()))
        self.max = max(self.max, float(v.max()))
        nb = self.counts.size - 2
        idx = np.zeros(v.size, dtype=np.int64)
        mid = v >= self.min_value
        idx[mid] = np.ceil(np.log(v[mid]) / self._log_gamma).astype(np.int64) - self._offset + 1
        np.clip(idx, 0, nb + 1, out=idx)
        idx[v > self.max_value] = nb + 1
        self.counts += np.bincount(idx, minlength=nb + 2)

    def quantiles(self, qs: np.ndarray | Sequence[float]) -> np.ndarray:
        """Estimates of the lower quantiles at probabilities ``qs``; NaN when empty."""
        q = np.asarray(qs, dtype=np.float64)
        if np.any((q < 0) | (q > 1)):
            raise ValueError(f"quantile probabilities must be in [0, 1], got {qs!r}")
        n = self.count
        if n == 0:
            return np.full(q.shape, np.nan)
        rank = np.floor(q * (n - 1)).astype(np.int64)  # 0-based rank of the lower quantile
        slot = np.searchsorted(np.cumsum(self.counts), rank + 1, side="left")
        nb = self.counts.size - 2
        i = slot - 1 + self._offset
        est = 2.0 * np.power(self._gamma, i.astype(np.float64)) / (self._gamma + 1.0)
        est = np.where(slot == 0, 0.0, np.where(slot == nb + 1, self.max, est))
        # the exact extremes bound every quantile; clamping only moves towards the truth
        return np.clip(est, self.min, self.max)

    def quantile(self, q: float) -> float:
        return float(self.quantiles([q])[0])

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A new sketch equal to the sketch of both inputs' values."""
        if other._params() != self._params():
            raise ValueError(f"cannot merge sketches with different parameters: {self._params()} vs {other._params()}")
        out = QuantileSketch(*self._params())
        out.counts = self.counts + other.counts
        out.negative = self.negative + other.negative
        out.min, out.max = min(self.min, other.min), max(self.max, other.max)
        return out

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        nz = np.flatnonzero(self.counts)
        return (
            {
                "params": list(self._params()),
                "negative": self.negative,
                "min": self.min if self.count else None,
                "max": self.max if self.count else None,
            },
            {"slots": nz.astype(np.uint32), "counts": self.counts[nz]},
        )

    @classmethod
    def from_state(cls, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> QuantileSketch:
        out = cls(*header["params"])
        slots = arrays["slots"].astype(np.int64)
        if slots.size and (slots.min() < 0 or slots.max() >= out.counts.size):
            raise ValueError("quantile sketch slots out of range")
        out.counts[slots] = arrays["counts"]
        out.negative = int(header["negative"])
        if header["min"] is not None:
            out.min, out.max = float(header["min"]), float(header["max"])
        return out

    def to_bytes(self) -> bytes:
        return pack(*self.state())

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        return cls.from_state(*unpack(data))
