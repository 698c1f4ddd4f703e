"""Reading a DataFrame into a :class:`~detectors.columns.Batch` (what
:meth:`~detectors.columns.Batch.from_frame` does), without a Python object per value.

``Batch.from_frame`` used to turn every column into a list of
Python values and back: at 500,000 rows that cost ~0.45 s and ~150 MB more under pandas
3, whose string columns make a new ``str`` per value. Here numeric columns go to float64
arrays in one call (a float64 column without a copy), and categorical columns go through
codes: a column is factorised (or its categorical codes / dictionary are taken as they
are), only its distinct values are turned into categories, and each row points at one of
those few shared strings. Columns these paths cannot read exactly (object columns that mix
kinds of values) return None, and the caller reads them value by value as before.
Behaves the same under pandas 2 and pandas 3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detectors.coercion import WRONG_TYPE, category_string, coerce_categorical, coerce_numeric, prediction_column
from detectors.schema import NUMERIC, Schema

# What pandas infers for object columns that factorise exactly as the value-by-value path
# reads them. "mixed" and friends can hold True next to 1, which hash alike (True == 1) but
# are different categories ('true' and '1'), or dicts and lists (wrong types): those go
# value by value.
_FACTORISABLE = frozenset({"string", "empty", "boolean", "integer", "floating", "mixed-integer-float", "decimal"})


def numeric_array(col: pd.Series) -> np.ndarray | None:
    """A numeric or boolean column as float64 (NaN where null), or None for a column that
    must be read value by value (object and string columns, where strings are wrong types).

    A float64 column comes back without a copy: batches never write into their columns."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind == "f" and dtype.itemsize == 8:
            return col.to_numpy()
        if dtype.kind in "fiub":
            return col.to_numpy().astype(np.float64)
        return None
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        # nullable extension dtypes (Int64, Float64, boolean, Arrow numbers): pd.NA -> NaN (null)
        try:
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        except Exception as exc:  # e.g. Arrow decimals or huge integers that float64 cannot take
            raise ValueError(f"column {col.name!r}: cannot read its values as numbers: {exc}") from None
    return None


def category_codes(col: pd.Series) -> tuple[np.ndarray, list[Any]] | None:
    """``(codes, distinct)``: per row an index into ``distinct`` (the column's distinct raw
    values as Python objects), -1 where null (None, NaN, pd.NA); None for a column that
    must be read value by value."""
    dtype = col.dtype
    try:
        if isinstance(dtype, pd.CategoricalDtype):
            return np.asarray(col.cat.codes.to_numpy(), dtype=np.intp), col.cat.categories.tolist()
        if isinstance(dtype, np.dtype) and dtype.kind == "b":
            return col.to_numpy().astype(np.intp), [False, True]
        if isinstance(dtype, np.dtype) and dtype.kind == "O":
            if pd.api.types.infer_dtype(col, skipna=True) not in _FACTORISABLE:
                return None
        codes, distinct = pd.factorize(col, use_na_sentinel=True)
        return np.asarray(codes, dtype=np.intp), distinct.tolist()
    except (TypeError, ValueError):  # unhashable values (lists, dicts): value by value
        return None
    except Exception as exc:  # e.g. invalid UTF-8 in an Arrow-backed string column of a file
        raise ValueError(f"column {col.name!r}: cannot read its values: {exc}") from None


def frame_list(col: pd.Series) -> list[Any]:
    """A pandas column as a list of raw Python values; NaN, pd.NA and NaT become None (null)."""
    try:
        values = col.tolist()
    except Exception as exc:  # e.g. invalid UTF-8 in an Arrow-backed string column of a file
        raise ValueError(f"column {col.name!r}: cannot read its values: {exc}") from None
    return [None if (v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)) else v for v in values]


def frame_column(
    col: pd.Series, kind: str, *, spelled: bool = True
) -> tuple[np.ndarray | None, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    """A table column for a channel of ``kind`` as :meth:`Batch.from_frame` reads it:
    ``(values, status, codes)``, codes as in ``Batch.codes`` (None for numeric columns and
    categorical ones read value by value). ``spelled=False``: values None where there are
    codes (a column only counted needs no category string per row)."""
    if kind == NUMERIC:
        return (*frame_numeric(col), None)
    values, status, coded = _frame_categorical(col, spelled)
    return values, status, coded


def frame_numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """A column for a numeric channel, as :func:`coerce_numeric` reads it (NaN is null)."""
    arr = numeric_array(col)
    if arr is None:
        return coerce_numeric(frame_list(col))
    # No status: without one a NaN is null, as in a numeric pandas column (no mask to build).
    return arr, None


def frame_prediction(col: pd.Series, schema: Schema) -> tuple[np.ndarray, np.ndarray | None]:
    """A prediction column: numbers or labels through the fast paths, mappings (class ->
    probability) value by value."""
    if schema.prediction_type == NUMERIC and numeric_array(col) is not None:
        return frame_numeric(col)
    if schema.prediction_type != NUMERIC and category_codes(col) is not None:
        values, status, _ = _frame_categorical(col, spelled=True)
        assert values is not None
        return values, status
    return prediction_column(frame_list(col), schema)


def _frame_categorical(
    col: pd.Series, spelled: bool = True
) -> tuple[np.ndarray | None, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    """A column for a categorical channel, as :func:`coerce_categorical` reads it, through
    its codes: one category string per distinct value, shared by the rows that hold it;
    with ``(codes, names)`` (see ``Batch.codes``), None when read value by value."""
    coded = category_codes(col)
    if coded is None:
        return (*coerce_categorical(frame_list(col)), None)
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
    if codes.size and codes.min() < 0:
        codes[codes < 0] = len(distinct) + 1  # null: the last name
    status = wrong[codes].astype(np.int8) * np.int8(WRONG_TYPE) if wrong.any() else None
    return names[codes] if spelled else None, status, (codes, names)
