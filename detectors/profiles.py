"""Reference profiles: what a model's inputs, predictions and latency looked like at training/validation time.

A :class:`ReferenceProfile` is built once from a table (DataFrame, CSV, Parquet
or JSONL) and a :class:`~detectors.columns.Schema`, stored as bytes, and used to
lay out every window (the bins and categories windows count into).

Numeric channels (:class:`NumericProfile`): quantile bin edges from the finite
reference values (default 10 bins; ``method='inverted_cdf'`` so every edge is a
data value; duplicate edges from ties removed, and edges at the maximum dropped,
so no reference bin is empty). Bins are right-closed and open-ended:
``(-inf, e0], (e0, e1], ..., (e_last, +inf)``, i.e. ``np.searchsorted(edges, x,
side='left')`` gives a value's bin, and every finite value falls in a bin.
Non-finite values (+-inf, and NaN that is not a null) are not binned; they are
counted in ``nonfinite_count``. ``std`` is the population standard deviation
(ddof=0) of finite values. The sample is a seeded uniform sample without
replacement of the finite values (all of them when there are fewer than
``sample_size``).

Categorical channels (:class:`CategoricalProfile`): counts of the ``top_k`` most
frequent categories (ties broken by category text) plus ``other_count`` for the
rest. The rest ("tail") is remembered by name up to ``max_tracked_categories``
so that windows can tell a rare-but-known category from an unseen one;
``tail_complete`` says whether all were kept. Booleans are the strings
'true'/'false' (see :mod:`detectors.columns`).

Storage: :meth:`ReferenceProfile.to_bytes` uses the numeric-only container of
:mod:`detectors.sketches` (JSON header + raw arrays, no pickle), with
``format_version``. ``content_hash`` is the SHA-256 of the profile's content,
excluding the caller's ``version`` label, and is checked on load.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.category_counts import CategoryCounts
from detectors.columns import NULL, WRONG_TYPE, Batch
from detectors.schema import NUMERIC, Schema
from detectors.sketches import pack, unpack
from detectors.threads import Workers, map_columns, workers_for

FORMAT_VERSION = 1
# None as the 0-d object array np.equal(x, None) makes of it; numpy's stubs reject a bare None.
_NONE_SCALAR = np.array(None, dtype=object)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference summary of one numeric channel. Counts are of rows; rates are fractions of ``count``."""

    edges: np.ndarray  # interior cut points, ascending (len = n_bins - 1)
    counts: np.ndarray  # int64 per bin, finite values only
    sample: np.ndarray  # float64 finite values
    count: int  # all rows, including null / non-finite / wrong-type
    null_count: int
    nonfinite_count: int
    wrong_type_count: int
    min: float
    max: float
    mean: float
    std: float

    @property
    def n_bins(self) -> int:
        return int(self.edges.size + 1)

    @property
    def null_rate(self) -> float:
        return self.null_count / self.count if self.count else 0.0

    @property
    def nonfinite_rate(self) -> float:
        return self.nonfinite_count / self.count if self.count else 0.0

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Bin of each (finite) value."""
        return np.searchsorted(self.edges, values, side="left")


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference summary of one categorical channel."""

    categories: tuple[str, ...]  # top-K, most frequent first
    counts: np.ndarray  # int64 aligned with categories
    other_count: int  # non-null values outside the top-K
    tail: frozenset[str]  # names of the categories counted in other_count (maybe truncated)
    tail_complete: bool
    count: int
    null_count: int
    wrong_type_count: int

    @property
    def null_rate(self) -> float:
        return self.null_count / self.count if self.count else 0.0

    def aligned_counts(self) -> np.ndarray:
        """``[counts of top-K..., other]``: the vector windows' category counts align with."""
        return np.append(self.counts, self.other_count).astype(np.int64)


Profile = NumericProfile | CategoricalProfile


def _status_masks(x: np.ndarray, status: np.ndarray | None, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    if status is None:
        null = np.isnan(x) if numeric else np.equal(x, _NONE_SCALAR)
        return null, np.zeros(n, dtype=bool)
    wrong = status == WRONG_TYPE
    null = (status == NULL) if numeric else (np.equal(x, _NONE_SCALAR) & ~wrong)
    return null, wrong


def numeric_profile(
    x: np.ndarray, status: np.ndarray | None, *, bins: int = 10, sample_size: int = 10_000, seed: int = 0
) -> NumericProfile:
    """Profile of one numeric column (encoding as in :mod:`detectors.columns`)."""
    finite = np.isfinite(x)
    if status is None and bool(finite.all()):
        # The usual column (no null, NaN or infinity): no masks to count, no copy of the values.
        v, null_count, wrong_count, nonfinite_count = x, 0, 0, 0
    else:
        null, wrong = _status_masks(x, status, numeric=True)
        v = x[finite]
        null_count, wrong_count = int(null.sum()), int(wrong.sum())
        nonfinite_count = int((~finite & ~null & ~wrong).sum())
    edges = np.empty(0)
    counts = np.zeros(1, dtype=np.int64)
    lowest = highest = mean = std = float("nan")
    if v.size:
        # One sort gives the quantiles (numpy's 'inverted_cdf': the value of rank ceil(n*q))
        # and the bin counts (ranks of the edges), cheaper than a partition per quantile and
        # a search per value.
        ordered = np.sort(v)
        ranks = np.ceil(ordered.size * (np.arange(1, bins) / bins)).astype(np.intp) - 1
        edges = np.unique(ordered[np.clip(ranks, 0, ordered.size - 1)])
        edges = edges[edges < ordered[-1]]  # an edge at the max would leave the last bin empty
        below = np.searchsorted(ordered, edges, side="right")  # values <= each edge (right-closed bins)
        counts = np.diff(np.concatenate([[0], below, [ordered.size]])).astype(np.int64)
        # The ends of the sorted values, unless a zero: -0.0 and 0.0 sort as equals, and the
        # sign np.min / np.max return is the one the profile has always kept.
        lowest = float(ordered[0]) if ordered[0] != 0 else float(v.min())
        highest = float(ordered[-1]) if ordered[-1] != 0 else float(v.max())
        mean, std = _mean_std(v, ordered) if v.dtype == np.float64 else (float(v.mean()), float(v.std()))
    if v.size > sample_size:
        rng = np.random.default_rng(seed)
        sample = v[np.sort(rng.choice(v.size, size=sample_size, replace=False))]
    else:
        sample = v.copy()
    return NumericProfile(
        edges=_frozen(edges.astype(np.float64)),
        counts=_frozen(counts),
        sample=_frozen(sample),
        count=int(x.size),
        null_count=null_count,
        wrong_type_count=wrong_count,
        nonfinite_count=nonfinite_count,
        min=lowest,
        max=highest,
        mean=mean,
        std=std,
    )


def _mean_std(v: np.ndarray, scratch: np.ndarray) -> tuple[float, float]:
    """``(v.mean(), v.std())`` of a float64 array, the same bits by numpy's own arithmetic (a
    pairwise sum over the count, then the sum of the squared deviations from it), with the
    mean summed once and the deviations written into ``scratch`` (no new array)."""
    mean = np.add.reduce(v) / v.size
    np.subtract(v, mean, out=scratch)
    np.multiply(scratch, scratch, out=scratch)
    return float(mean), float(np.sqrt(np.add.reduce(scratch) / v.size))


def categorical_profile(
    x: np.ndarray, status: np.ndarray | None, *, top_k: int = 50, max_tracked_categories: int = 10_000
) -> CategoricalProfile:
    """Profile of one categorical column (object array of str/None)."""
    null, wrong = _status_masks(x, status, numeric=False)
    present = x[~null & ~wrong]
    vc = pd.Series(present, dtype=object).value_counts(sort=False)
    pairs = zip(vc.index.tolist(), vc.to_numpy().tolist(), strict=True)
    return _top_k(pairs, int(x.size), int(null.sum()), int(wrong.sum()), top_k, max_tracked_categories)


def categorical_from_counts(counts: CategoryCounts, *, top_k: int, max_tracked_categories: int) -> CategoricalProfile:
    """The profile of a column counted into ``counts`` (the same as :func:`categorical_profile`
    of its rows)."""
    return _top_k(counts.counts.items(), counts.count, counts.null, counts.wrong, top_k, max_tracked_categories)


def _top_k(
    pairs: Iterable[tuple[str, int]], count: int, null: int, wrong: int, top_k: int, max_tracked: int
) -> CategoricalProfile:
    """Category counts cut into the ``top_k`` most frequent (ties by name) and the tail."""
    ordered = sorted(pairs, key=lambda kv: (-kv[1], kv[0]))
    top, tail = ordered[:top_k], ordered[top_k:]
    return CategoricalProfile(
        categories=tuple(c for c, _ in top),
        counts=_frozen(np.array([n for _, n in top], dtype=np.int64)),
        other_count=int(sum(n for _, n in tail)),
        tail=frozenset(c for c, _ in tail[:max_tracked]),
        tail_complete=len(tail) <= max_tracked,
        count=count,
        null_count=null,
        wrong_type_count=wrong,
    )


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def profile_options(
    *, bins: int, sample_size: int, top_k: int, max_tracked_categories: int, seed: int
) -> dict[str, int]:
    """A profile's options (its ``params``), checked."""
    return {
        "bins": _check_int("bins", bins, 1),
        "sample_size": _check_int("sample_size", sample_size, 1),
        "top_k": _check_int("top_k", top_k, 1),
        "max_tracked_categories": _check_int("max_tracked_categories", max_tracked_categories, 0),
        "seed": _check_int("seed", seed, 0),
    }


def channel_profile(
    name: str,
    kind: str,
    column: tuple[np.ndarray | None, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None],
    *,
    bins: int,
    sample_size: int,
    top_k: int,
    max_tracked_categories: int,
    seed: int,
) -> Profile:
    """The profile of one channel (``kind``: NUMERIC or categorical) from its ``column``,
    ``(values, status, codes)`` encoded as in :class:`Batch`, as :meth:`ReferenceProfile.from_batch`
    makes it: the seed derives from ``seed`` and the name, and categorical values with codes
    are counted through them."""
    values, status, coded = column
    if values is None and coded is None:
        raise ValueError(f"reference data has no column for channel {name!r}")
    if kind == NUMERIC:
        assert values is not None
        channel_seed = (seed << 32) ^ zlib.crc32(name.encode())
        return numeric_profile(values, status, bins=bins, sample_size=sample_size, seed=channel_seed)
    if coded is not None:
        counted = CategoryCounts()
        counted.update(values, status, coded)
        return categorical_from_counts(counted, top_k=top_k, max_tracked_categories=max_tracked_categories)
    assert values is not None
    return categorical_profile(values, status, top_k=top_k, max_tracked_categories=max_tracked_categories)


class ReferenceProfile:
    """Profiles of every channel of a schema (features, then PREDICTION, LATENCY), plus a version label."""

    def __init__(
        self,
        schema: Schema,
        channels: Mapping[str, Profile],
        *,
        version: str | int,
        params: Mapping[str, Any] | None = None,
        slices: Mapping[str, ReferenceProfile] | None = None,
    ) -> None:
        if not isinstance(version, (str, int)) or isinstance(version, bool):
            raise ValueError(f"version must be a str or int, got {version!r}")
        expected = schema.channels()
        if list(channels) != list(expected):
            raise ValueError(f"channels {list(channels)} do not match the schema's {list(expected)}")
        for name, kind in expected.items():
            want = NumericProfile if kind == NUMERIC else CategoricalProfile
            if not isinstance(channels[name], want):
                raise ValueError(f"channel {name!r} must have a {want.__name__}")
        self.schema = schema
        self.channels: dict[str, Profile] = dict(channels)
        self.version = version
        self.params: dict[str, Any] = dict(params or {})
        # Segment analysis (detectors.segments): the profile of each tag value's own rows,
        # by slice name ("region:eu"); part of the content and of the stored bytes.
        self.slices: dict[str, ReferenceProfile] = dict(slices or {})

    @functools.cached_property
    def content_hash(self) -> str:
        """SHA-256 of the content without the version label (made when first asked for:
        a notebook's comparison never needs it)."""
        return hashlib.sha256(self._payload(include_version=False)).hexdigest()

    @property
    def features(self) -> dict[str, Profile]:
        return {k: self.channels[k] for k in self.schema.features}

    @classmethod
    def from_batch(
        cls,
        batch: Batch,
        schema: Schema,
        *,
        version: str | int,
        bins: int = 10,
        sample_size: int = 10_000,
        top_k: int = 50,
        max_tracked_categories: int = 10_000,
        seed: int = 0,
        workers: Workers | int | None = None,
    ) -> ReferenceProfile:
        """Profile columns already in :class:`Batch` form. Seeds per channel derive from ``seed``
        and the name. Categorical columns with codes (``Batch.codes``) are counted through them.
        ``workers`` (:class:`detectors.threads.Workers`, or a number of threads): channels are
        profiled on several threads (the sorts and counts release the GIL); the same profile."""
        params = profile_options(
            bins=bins, sample_size=sample_size, top_k=top_k, max_tracked_categories=max_tracked_categories, seed=seed
        )
        if len(batch) == 0:
            raise ValueError("cannot build a reference profile from 0 rows")
        channels = schema.channels()

        def one(name: str) -> Profile:
            coded = batch.codes.get(name)  # a column with codes is counted through them: not spelled out
            values = batch.column(name) if coded is None else batch.inputs.get(name)
            return channel_profile(name, channels[name], (values, batch.status.get(name), coded), **params)

        with workers_for(workers) as threads:
            profiled = map_columns(threads, one, channels)
        out = dict(zip(channels, profiled, strict=True))
        return cls(schema, out, version=version, params=params)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, schema: Schema, *, version: str | int, **kw: Any) -> ReferenceProfile:
        """From a flat table whose columns are named as in the schema (see :meth:`from_batch` for options)."""
        return cls.from_batch(Batch.from_frame(df, schema, default_timestamp=0.0), schema, version=version, **kw)

    @classmethod
    def from_file(cls, path: str | Path, schema: Schema, *, version: str | int, **kw: Any) -> ReferenceProfile:
        """From .csv, .parquet/.pq, or .jsonl/.ndjson (flat rows, or records with an ``inputs`` mapping)."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".csv":
            df = pd.read_csv(p)
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix in (".jsonl", ".ndjson"):
            with p.open("r", encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
            if rows and isinstance(rows[0].get("inputs"), Mapping):
                batch = Batch.from_records(rows, schema, default_timestamp=0.0)
                return cls.from_batch(batch, schema, version=version, **kw)
            df = pd.DataFrame(rows)
        else:
            raise ValueError(f"unsupported reference file type {suffix!r} for {p}: use .csv, .parquet or .jsonl")
        return cls.from_frame(df, schema, version=version, **kw)

    def _state(self, include_version: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: list[Any] = []  # [name, info] pairs: channel order matters
        arrays: dict[str, np.ndarray] = {}
        for i, (name, p) in enumerate(self.channels.items()):
            if isinstance(p, NumericProfile):
                meta.append(
                    [
                        name,
                        {
                            "count": p.count,
                            "null": p.null_count,
                            "nonfinite": p.nonfinite_count,
                            "wrong": p.wrong_type_count,
                        },
                    ]
                )
                arrays[f"{i}.edges"], arrays[f"{i}.counts"], arrays[f"{i}.sample"] = p.edges, p.counts, p.sample
                arrays[f"{i}.stats"] = np.array([p.min, p.max, p.mean, p.std])
            else:
                meta.append(
                    [
                        name,
                        {
                            "count": p.count,
                            "null": p.null_count,
                            "wrong": p.wrong_type_count,
                            "categories": list(p.categories),
                            "other": p.other_count,
                            "tail": sorted(p.tail),
                            "tail_complete": p.tail_complete,
                        },
                    ]
                )
                arrays[f"{i}.counts"] = p.counts
        header: dict[str, Any] = {
            "kind": "reference",
            "format_version": FORMAT_VERSION,
            "schema": self.schema.to_dict(),
            "params": self.params,
            "channels": meta,
        }
        if include_version:
            header["version"] = self.version
        if self.slices:
            header["slices"] = list(self.slices)
            for j, part in enumerate(self.slices.values()):
                arrays[f"slice.{j}"] = np.frombuffer(part.to_bytes(), np.uint8)
        return header, arrays

    def _payload(self, include_version: bool) -> bytes:
        return pack(*self._state(include_version))

    def to_bytes(self) -> bytes:
        header, arrays = self._state()
        header["content_hash"] = self.content_hash
        return pack(header, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        header, arrays = unpack(data)
        if header.get("kind") != "reference":
            raise ValueError(f"not a reference profile (kind={header.get('kind')!r})")
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported reference format_version {header.get('format_version')!r}")
        schema = Schema.from_dict(header["schema"])
        channels: dict[str, Profile] = {}
        for i, (name, m) in enumerate(header["channels"]):
            if "categories" in m:
                channels[name] = CategoricalProfile(
                    categories=tuple(m["categories"]),
                    counts=_frozen(arrays[f"{i}.counts"]),
                    other_count=m["other"],
                    tail=frozenset(m["tail"]),
                    tail_complete=m["tail_complete"],
                    count=m["count"],
                    null_count=m["null"],
                    wrong_type_count=m["wrong"],
                )
            else:
                lo, hi, mean, std = arrays[f"{i}.stats"].tolist()
                channels[name] = NumericProfile(
                    edges=_frozen(arrays[f"{i}.edges"]),
                    counts=_frozen(arrays[f"{i}.counts"]),
                    sample=_frozen(arrays[f"{i}.sample"]),
                    count=m["count"],
                    null_count=m["null"],
                    nonfinite_count=m["nonfinite"],
                    wrong_type_count=m["wrong"],
                    min=lo,
                    max=hi,
                    mean=mean,
                    std=std,
                )
        slices = {
            name: cls.from_bytes(arrays[f"slice.{j}"].tobytes()) for j, name in enumerate(header.get("slices", ()))
        }
        out = cls(schema, channels, version=header["version"], params=header["params"], slices=slices)
        if out.content_hash != header.get("content_hash"):
            raise ValueError("reference profile content hash mismatch: data corrupted or edited")
        return out
