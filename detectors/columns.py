"""Columnar batches of model records: the input type of reference profiles and windows.

The service turns a batch of records (dicts with ``inputs``, ``prediction``,
``latency_ms``, ``label``, ``timestamp``) into numpy columns once, and the
detectors only ever see those columns.

Units: ``timestamps`` are float epoch seconds (UTC); ``latency_ms`` is milliseconds.

Column encoding (per *channel*: a feature name, or :data:`PREDICTION` / :data:`LATENCY`):

* numeric channels: float64 arrays. NaN where the value was null/missing, of the
  wrong type, or a genuine NaN.
* categorical channels: object arrays of ``str`` or ``None`` (null). Booleans
  become ``'true'``/``'false'``; integers and integral floats become ``'3'``
  (so a CSV's ``3.0`` and a JSON ``3`` are the same category); other floats use
  Python's shortest ``repr`` (``'0.5'``).
* ``Batch.status[channel]`` (optional int8 array, one entry per row) tells what
  the raw value was: :data:`VALID`, :data:`NULL` or :data:`WRONG_TYPE` (e.g. a
  string where a number was expected, or a dict where a category was expected;
  the stored value is then NaN / None). It is a per-row code rather than a count
  so that a batch can be split at a window boundary with exact counts.
  When a numeric channel has no status array, every NaN counts as null (the
  pandas convention); with one, a NaN marked VALID is a genuine NaN (counted as
  non-finite). For categorical channels ``None`` is always null and the status,
  when present, only matters for its WRONG_TYPE rows.

Strings are always the wrong type for numeric channels, even ``"3.5"``: a
client sending strings is itself worth reporting. Booleans are accepted as 0/1.

``Batch.codes[channel]`` (categorical channels read by :meth:`Batch.from_frame`) is
``(codes, names)``, the column being ``names[codes]`` (``None`` names: null or wrong type):
windows and profiles count the codes instead of hashing a string per row. A batch read
only to be counted may leave such a column out of ``inputs`` (:func:`frame_column` with
``spelled=False``): :meth:`Batch.column` spells it out when asked.

Raw values become entries in :mod:`detectors.coercion`; a DataFrame's columns are read in
:mod:`detectors.frame_columns`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors.coercion import NULL as NULL
from detectors.coercion import VALID as VALID
from detectors.coercion import WRONG_TYPE as WRONG_TYPE
from detectors.coercion import category_string as category_string
from detectors.coercion import coerce_categorical, coerce_numeric, prediction_column, timestamps_column
from detectors.frame_columns import frame_column, frame_list, frame_numeric, frame_prediction
from detectors.schema import LATENCY, NUMERIC, PREDICTION, Schema


@dataclass
class Batch:
    """One batch of records as columns (see the module docstring for the encoding)."""

    timestamps: np.ndarray
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    prediction: np.ndarray | None = None
    latency_ms: np.ndarray | None = None
    status: dict[str, np.ndarray] = field(default_factory=dict)
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        n = self.timestamps.shape[0]
        for ch in [*self.inputs, PREDICTION, LATENCY]:  # (a column left to its codes is checked below)
            col = self.column(ch)
            if col is not None and not isinstance(col, np.ndarray):
                raise TypeError(f"column {ch!r} must be a numpy array, got {type(col).__name__}")
            if col is not None and (col.ndim != 1 or col.shape[0] != n):
                raise ValueError(f"column {ch!r} must be 1-D with {n} rows, got shape {col.shape}")
        for ch, st in self.status.items():
            if st.shape != (n,) or st.dtype != np.int8:
                raise ValueError(f"status[{ch!r}] must be int8 with shape ({n},), got {st.dtype} {st.shape}")
        for ch, (codes, names) in self.codes.items():
            if codes.shape != (n,) or codes.dtype.kind not in "iu" or names.dtype.kind != "O":
                raise ValueError(f"codes[{ch!r}] must be integers with shape ({n},) into object names")

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def column(self, channel: str) -> np.ndarray | None:
        """The column of a feature, PREDICTION or LATENCY; None when absent."""
        if channel == PREDICTION:
            return self.prediction
        if channel == LATENCY:
            return self.latency_ms
        col = self.inputs.get(channel)
        if col is None and channel in self.codes:  # left to its codes: spelled out
            codes, names = self.codes[channel]
            col = names[codes]
        return col

    def select(self, index: slice | np.ndarray) -> Batch:
        """Rows by slice, integer indices or boolean mask (status codes follow their rows)."""
        return Batch(
            timestamps=self.timestamps[index],
            inputs={k: v[index] for k, v in self.inputs.items()},
            prediction=None if self.prediction is None else self.prediction[index],
            latency_ms=None if self.latency_ms is None else self.latency_ms[index],
            status={k: v[index] for k, v in self.status.items()},
            codes={k: (codes[index], names) for k, (codes, names) in self.codes.items()},
        )

    @classmethod
    def from_records(
        cls, rows: Sequence[Mapping[str, Any]], schema: Schema, *, default_timestamp: float | None = None
    ) -> Batch:
        """Build from record dicts ``{'inputs': {...}, 'prediction', 'latency_ms', 'timestamp'}``.

        A feature missing from ``inputs`` is null. ``default_timestamp`` (epoch s)
        replaces missing timestamps; without it a missing timestamp is an error.
        """
        names = list(schema.features)
        cols: list[Sequence[Any]]
        try:
            inputs_rows = [r.get("inputs") or {} for r in rows]
            try:
                # one C-level itemgetter per row, transposed by zip, is cheaper than a
                # dict.get comprehension per feature; rows lacking a key fall back.
                if len(names) > 1 and inputs_rows:
                    cols = list(zip(*map(operator.itemgetter(*names), inputs_rows), strict=True))
                else:
                    raise KeyError
            except KeyError:
                cols = [[d.get(name) for d in inputs_rows] for name in names]
        except (AttributeError, TypeError):  # a record or its inputs not a mapping: say which
            raise ValueError(_bad_record(rows)) from None
        inputs: dict[str, np.ndarray] = {}
        status: dict[str, np.ndarray] = {}
        for (name, kind), vals in zip(schema.features.items(), cols, strict=True):
            arr, st = coerce_numeric(vals) if kind == NUMERIC else coerce_categorical(vals)
            inputs[name] = arr
            if st is not None:
                status[name] = st
        prediction = latency = None
        if schema.prediction_type is not None:
            prediction, st = prediction_column([r.get("prediction") for r in rows], schema)
            if st is not None:
                status[PREDICTION] = st
        # Records always carry latency as ``latency_ms``. It is read even without a latency
        # channel in the schema: windows sketch latency whether or not the reference profiled it.
        raw_latency = [r.get("latency_ms") for r in rows]
        if schema.latency_column is not None:
            latency, st = coerce_numeric(raw_latency)
            if st is not None:
                status[LATENCY] = st
        elif any(v is not None for v in raw_latency):
            latency = coerce_numeric(raw_latency)[0]  # no status: an unprofiled channel has no quality checks
        else:
            # An all-NaN column rather than None, so batches can always be concatenated.
            latency = np.full(len(rows), np.nan)
        ts = timestamps_column([r.get("timestamp") for r in rows], default_timestamp)
        return cls(timestamps=ts, inputs=inputs, prediction=prediction, latency_ms=latency, status=status)

    @classmethod
    def from_columns(
        cls,
        schema: Schema,
        timestamps: Sequence[float] | np.ndarray,
        inputs: Mapping[str, Sequence[Any]],
        prediction: Sequence[Any] | None = None,
        latency_ms: Sequence[Any] | None = None,
    ) -> Batch:
        """Build from raw values per channel: the same batch as :meth:`from_records` makes
        of the rows those columns hold (a feature missing from ``inputs``, or a missing
        ``prediction`` / ``latency_ms`` column, is null in every row). ``timestamps`` are
        epoch seconds, one per row. Used by the service's columnar ingestion path, which
        never builds a dict per record."""
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        nulls: Sequence[Any] = [None] * ts.shape[0]
        columns: dict[str, np.ndarray] = {}
        status: dict[str, np.ndarray] = {}
        for name, kind in schema.features.items():
            vals = inputs.get(name, nulls)
            arr, st = coerce_numeric(vals) if kind == NUMERIC else coerce_categorical(vals)
            columns[name] = arr
            if st is not None:
                status[name] = st
        pred = latency = None
        if schema.prediction_type is not None:
            pred, st = prediction_column(list(prediction) if prediction is not None else list(nulls), schema)
            if st is not None:
                status[PREDICTION] = st
        raw_latency = nulls if latency_ms is None else latency_ms
        if schema.latency_column is not None:
            latency, st = coerce_numeric(raw_latency)
            if st is not None:
                status[LATENCY] = st
        elif latency_ms is not None and any(v is not None for v in raw_latency):
            latency = coerce_numeric(raw_latency)[0]  # as from_records: no status without a channel
        else:
            latency = np.full(ts.shape[0], np.nan)
        return cls(timestamps=ts, inputs=columns, prediction=pred, latency_ms=latency, status=status)

    @classmethod
    def concat(cls, batches: Sequence[Batch]) -> Batch:
        """One batch of the rows of ``batches`` in order (batches of one schema).

        Status codes are kept exactly: where one batch has a status array for a channel
        and another has none, the latter's rows get the codes its columns imply (NULL
        for a numeric NaN, VALID otherwise)."""
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        sizes = [len(b) for b in batches]

        def joined(get: Any) -> np.ndarray | None:
            parts = [get(b) for b in batches]
            if all(part is None for part in parts):
                return None
            return np.concatenate(
                [np.full(k, np.nan) if part is None else part for part, k in zip(parts, sizes, strict=True)]
            )

        status = {}
        for ch in dict.fromkeys(ch for b in batches for ch in b.status):
            parts = []
            for b, k in zip(batches, sizes, strict=True):
                st = b.status.get(ch)
                if st is None:
                    col = b.column(ch)
                    if col is not None and col.dtype.kind == "f":
                        st = np.isnan(col).astype(np.int8)  # without a status, NaN means null
                    else:
                        st = np.zeros(k, dtype=np.int8)
                parts.append(st)
            status[ch] = np.concatenate(parts)
        codes = {}
        for ch, (_, names) in first.codes.items():
            # kept where every batch coded the channel with the same names (chunks of one column)
            coded = [b.codes.get(ch) for b in batches]
            if all(c is not None and (c[1] is names or c[1].tolist() == names.tolist()) for c in coded):
                codes[ch] = (np.concatenate([c[0] for c in coded if c is not None]), names)
        return cls(
            timestamps=np.concatenate([b.timestamps for b in batches]),
            # a column left to codes that differ between the batches is spelled out
            inputs={
                k: np.concatenate([b.column(k) for b in batches])
                for k in [*first.inputs, *(k for k in first.codes if k not in first.inputs and k not in codes)]
            },
            prediction=joined(lambda b: b.prediction),
            latency_ms=joined(lambda b: b.latency_ms),
            status=status,
            codes=codes,
        )

    @classmethod
    def from_frame(cls, df: pd.DataFrame, schema: Schema, *, default_timestamp: float | None = None) -> Batch:
        """Build from a flat table whose columns are named as in ``schema``.

        In numeric pandas columns NaN means null; object columns are read value
        by value like records. A missing timestamp column uses ``default_timestamp``.
        """
        missing = [c for c in schema.features if c not in df.columns]
        if schema.prediction_type is not None and schema.prediction_column not in df.columns:
            missing.append(schema.prediction_column)
        if schema.latency_column is not None and schema.latency_column not in df.columns:
            missing.append(schema.latency_column)
        if missing:
            raise ValueError(f"columns missing from the table: {missing}")
        inputs: dict[str, np.ndarray] = {}
        status: dict[str, np.ndarray] = {}
        codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, kind in schema.features.items():
            arr, st, coded = frame_column(df[name], kind)
            if coded is not None:
                codes[name] = coded
            assert arr is not None  # spelled out
            inputs[name] = arr
            if st is not None:
                status[name] = st
        prediction = latency = None
        if schema.prediction_type is not None:
            prediction, st = frame_prediction(df[schema.prediction_column], schema)
            if st is not None:
                status[PREDICTION] = st
        if schema.latency_column is not None:
            latency, st = frame_numeric(df[schema.latency_column])
            if st is not None:
                status[LATENCY] = st
        n = len(df)
        if schema.timestamp_column in df.columns:
            col = df[schema.timestamp_column]
            if pd.api.types.is_datetime64_any_dtype(col):
                ts = (pd.to_datetime(col, utc=True).astype("int64").to_numpy() / 1e9).astype(np.float64)
            else:
                ts = timestamps_column(frame_list(col), default_timestamp)
        elif default_timestamp is not None:
            ts = np.full(n, float(default_timestamp))
        else:
            raise ValueError(
                f"timestamp column {schema.timestamp_column!r} is missing and no default_timestamp was given"
            )
        return cls(timestamps=ts, inputs=inputs, prediction=prediction, latency_ms=latency, status=status, codes=codes)


def _bad_record(rows: Sequence[Any]) -> str:
    """Why :meth:`Batch.from_records` cannot read ``rows``: the first record that is not a
    mapping or whose ``inputs`` is not one (only looked for once reading failed)."""
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            return f"record {i} is not a mapping of fields, got {type(row).__name__}"
        inputs = row.get("inputs")
        if inputs and not isinstance(inputs, Mapping):
            return f"record {i}: inputs must be a mapping of feature values, got {type(inputs).__name__}"
    return "records must be mappings with a mapping of feature values under inputs"
