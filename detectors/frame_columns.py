"""Reading a DataFrame's columns without a Python object per value.

:meth:`detectors.columns.Batch.from_frame` used to turn every column into a list of
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
