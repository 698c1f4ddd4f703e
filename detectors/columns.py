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
windows and profiles count the codes instead of hashing a string per row.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors.frame_columns import category_codes, numeric_array
from detectors.schema import LATENCY, NUMERIC, PREDICTION, Schema

VALID, NULL, WRONG_TYPE = 0, 1, 2

_NUM_FAST = frozenset({float, int, bool, type(None)})
_CAT_FAST = frozenset({str, type(None)})
_NONE = type(None)


def category_string(v: Any) -> str | None:
    """Canonical category for one raw value; None for null. Raises TypeError for wrong types."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isnan(f):
            return None
        if f.is_integer() and abs(f) < 2.0**53:
            return str(int(f))
        return repr(f)
    raise TypeError(type(v).__name__)


def coerce_numeric(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw values -> (float64 array, int8 status or None when every value is valid and not NaN).

    From a numpy numeric array NaN means null; from Python values None is null
    and a float NaN is a (non-finite) value.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        arr = values.astype(np.float64, copy=True)
        nan = np.isnan(arr)
        # numpy/pandas numeric columns cannot tell null from NaN: NaN means null there.
        return arr, (nan.astype(np.int8) if nan.any() else None)
    vals = values.tolist() if isinstance(values, np.ndarray) else values
    try:
        # dtype inference runs in C and is cheaper than a Python type scan: an
        # all-number column comes back as a numeric array and needs no checks.
        guess = np.array(vals)
    except (ValueError, OverflowError, TypeError):
        guess = None
    if guess is not None and guess.ndim == 1 and guess.dtype.kind in "fiub":
        arr = guess.astype(np.float64, copy=False)
        # NaN given as a number is a value (non-finite), not a null: say so with an all-VALID status
        return arr, (np.zeros(arr.size, dtype=np.int8) if np.isnan(arr).any() else None)
    types = set(map(type, vals))
    if types <= _NUM_FAST:
        try:
            floats: np.ndarray | None = np.array(vals, dtype=np.float64)  # None -> NaN
        except OverflowError:
            floats = None
        if floats is not None:
            if _NONE not in types:
                return floats, None
            status = np.zeros(len(vals), dtype=np.int8)
            # only NaN positions can be None: look at those alone
            nulls = [i for i in np.flatnonzero(np.isnan(floats)).tolist() if vals[i] is None]
            status[nulls] = NULL
            return floats, status
    arr = np.empty(len(vals), dtype=np.float64)
    status = np.zeros(len(vals), dtype=np.int8)
    for i, v in enumerate(vals):
        if v is None:
            arr[i], status[i] = np.nan, NULL
        elif isinstance(v, numbers.Real):
            try:
                arr[i] = float(v)
            except OverflowError:
                arr[i] = math.copysign(math.inf, v)
        else:
            arr[i], status[i] = np.nan, WRONG_TYPE
    return arr, (status if status.any() else None)


def coerce_categorical(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw values -> (object array of str/None, int8 status or None when no WRONG_TYPE)."""
    vals = values.tolist() if isinstance(values, np.ndarray) else values
    n = len(vals)
    out = np.empty(n, dtype=object)
    if set(map(type, vals)) <= _CAT_FAST:
        out[:] = vals
        return out, None
    status = np.zeros(n, dtype=np.int8)
    for i, v in enumerate(vals):
        try:
            out[i] = category_string(v)
        except TypeError:
            out[i], status[i] = None, WRONG_TYPE
    return out, (status if status.any() else None)


def _score(v: Any, positive: str | None) -> Any:
    if not isinstance(v, Mapping):
        return v
    if not v:
        return None
    if positive is None:
        return max(v.items(), key=lambda kv: str(kv[0]))[1]
    for k, p in v.items():
        if str(k) == positive:
            return p
    return None


def _argmax(v: Any) -> Any:
    if not isinstance(v, Mapping):
        return v
    if not v:
        return None
    try:
        return max(v.items(), key=lambda kv: kv[1])[0]
    except TypeError:  # non-comparable probabilities: wrong type
        return v


def _prediction_column(vals: list[Any], schema: Schema) -> tuple[np.ndarray, np.ndarray | None]:
    has_map = any(issubclass(t, Mapping) for t in set(map(type, vals)))
    if schema.prediction_type == NUMERIC:
        if has_map and schema.prediction_kind == "binary":
            vals = [_score(v, schema.positive_class) for v in vals]
        return coerce_numeric(vals)
    if has_map:
        vals = [_argmax(v) for v in vals]
    return coerce_categorical(vals)


def _timestamps(vals: Sequence[Any], default: float | None) -> np.ndarray:
    ts, status = coerce_numeric(vals)
    if status is not None:
        bad = np.flatnonzero((status != VALID) | np.isnan(ts))
        for i in bad.tolist():
            v = vals[i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                if default is None:
                    raise ValueError(f"record {i} has no timestamp and no default_timestamp was given")
                ts[i] = default
            else:
                try:
                    stamp = pd.Timestamp(v)
                    # naive date-times are taken as UTC
                    ts[i] = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp()
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"record {i} has an unreadable timestamp {v!r}") from exc
    return ts


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
        for ch in [*self.inputs, PREDICTION, LATENCY]:
            col = self.column(ch)
            if col is not None and not isinstance(col, np.ndarray):
                raise TypeError(f"column {ch!r} must be a numpy array, got {type(col).__name__}")
            if col is not None and (col.ndim != 1 or col.shape[0] != n):
                raise ValueError(f"column {ch!r} must be 1-D with {n} rows, got shape {col.shape}")
        for ch, st in self.status.items():
            if st.shape != (n,) or st.dtype != np.int8:
                raise ValueError(f"status[{ch!r}] must be int8 with shape ({n},), got {st.dtype} {st.shape}")
        for ch, (codes, names) in self.codes.items():
            if codes.shape != (n,) or codes.dtype.kind not in "iu" or names.dtype.kind != "O" or ch not in self.inputs:
                raise ValueError(f"codes[{ch!r}] must be integers with shape ({n},) into object names of an input")

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def column(self, channel: str) -> np.ndarray | None:
        """The column of a feature, PREDICTION or LATENCY; None when absent."""
        if channel == PREDICTION:
            return self.prediction
        if channel == LATENCY:
            return self.latency_ms
        return self.inputs.get(channel)

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
            prediction, st = _prediction_column([r.get("prediction") for r in rows], schema)
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
        ts = _timestamps([r.get("timestamp") for r in rows], default_timestamp)
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
            pred, st = _prediction_column(list(prediction) if prediction is not None else list(nulls), schema)
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
            inputs={k: np.concatenate([b.inputs[k] for b in batches]) for k in first.inputs},
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
            if kind == NUMERIC:
                arr, st = _frame_numeric(df[name])
            else:
                arr, st, coded = _frame_categorical(df[name])
                if coded is not None:
                    codes[name] = coded
            inputs[name] = arr
            if st is not None:
                status[name] = st
        prediction = latency = None
        if schema.prediction_type is not None:
            prediction, st = _frame_prediction(df[schema.prediction_column], schema)
            if st is not None:
                status[PREDICTION] = st
        if schema.latency_column is not None:
            latency, st = _frame_numeric(df[schema.latency_column])
            if st is not None:
                status[LATENCY] = st
        n = len(df)
        if schema.timestamp_column in df.columns:
            col = df[schema.timestamp_column]
            if pd.api.types.is_datetime64_any_dtype(col):
                ts = (pd.to_datetime(col, utc=True).astype("int64").to_numpy() / 1e9).astype(np.float64)
            else:
                ts = _timestamps(_frame_list(col), default_timestamp)
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


def _frame_list(col: pd.Series) -> list[Any]:
    """A pandas column as a list of raw Python values; NaN, pd.NA and NaT become None (null)."""
    try:
        values = col.tolist()
    except Exception as exc:  # e.g. invalid UTF-8 in an Arrow-backed string column of a file
        raise ValueError(f"column {col.name!r}: cannot read its values: {exc}") from None
    return [None if (v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)) else v for v in values]


def _frame_numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """A column for a numeric channel, as :func:`coerce_numeric` reads it (NaN is null)."""
    arr = numeric_array(col)
    if arr is None:
        return coerce_numeric(_frame_list(col))
    # No status: without one a NaN is null, as in a numeric pandas column (no mask to build).
    return arr, None


def _frame_prediction(col: pd.Series, schema: Schema) -> tuple[np.ndarray, np.ndarray | None]:
    """A prediction column: numbers or labels through the fast paths, mappings (class ->
    probability) value by value."""
    if schema.prediction_type == NUMERIC and numeric_array(col) is not None:
        return _frame_numeric(col)
    if schema.prediction_type != NUMERIC and category_codes(col) is not None:
        return _frame_categorical(col)[:2]
    return _prediction_column(_frame_list(col), schema)


def _frame_categorical(col: pd.Series) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    """A column for a categorical channel, as :func:`coerce_categorical` reads it, through
    its codes: one category string per distinct value, shared by the rows that hold it;
    with ``(codes, names)`` (see ``Batch.codes``), None when read value by value."""
    coded = category_codes(col)
    if coded is None:
        return (*coerce_categorical(_frame_list(col)), None)
    codes, distinct = coded
    names = np.empty(len(distinct) + 2, dtype=object)  # [categories..., wrong type, null]: both None
    wrong = np.zeros(len(distinct) + 2, dtype=bool)
    for i, value in enumerate(distinct):
        try:
            names[i] = category_string(value)
        except TypeError:
            wrong[i] = True
    narrow = np.int8 if names.size <= 127 else np.int16 if names.size <= 32_767 else np.int32  # kept: small
    codes = codes.astype(narrow)
    codes[codes < 0] = len(distinct) + 1  # null: the last name
    status = wrong[codes].astype(np.int8) * np.int8(WRONG_TYPE) if wrong.any() else None
    return names[codes], status, (codes, names)
