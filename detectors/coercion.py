"""Raw values to column entries: what a record's value becomes in a numeric or categorical
column (see the encoding in :mod:`detectors.columns`), and the status codes that say
whether it was valid, null or of the wrong type."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors.schema import NUMERIC, Schema

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


def prediction_column(vals: list[Any], schema: Schema) -> tuple[np.ndarray, np.ndarray | None]:
    has_map = any(issubclass(t, Mapping) for t in set(map(type, vals)))
    if schema.prediction_type == NUMERIC:
        if has_map and schema.prediction_kind == "binary":
            vals = [_score(v, schema.positive_class) for v in vals]
        return coerce_numeric(vals)
    if has_map:
        vals = [_argmax(v) for v in vals]
    return coerce_categorical(vals)


def timestamps_column(vals: Sequence[Any], default: float | None) -> np.ndarray:
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
