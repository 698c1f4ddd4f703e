"""Tables for the Python API: what ``monitor.compare`` and ``monitor.profile`` accept
(pandas DataFrames, pyarrow Tables, CSV / Parquet / JSONL files, optionally gzip), read
in chunks of rows, and the column kinds inferred from a table.

Files are read by pyarrow a few tens of thousands of rows at a time into Arrow-backed
DataFrames, so a string column never becomes a Python object per value (pandas 2 and 3
alike) and a file larger than memory is still read in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from detectors.frame_columns import category_codes

NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
KINDS = (NUMERIC, CATEGORICAL, BOOLEAN)
CHUNK_ROWS = 50_000  # rows per chunk: ~8 MB of float64 for 20 numeric columns
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})

Table: TypeAlias = pd.DataFrame | pa.Table | str | Path


class TableError(ValueError):
    """A table cannot be read or does not fit the comparison; the message says what and where."""


def chunks(source: Table, columns: Sequence[str] | None = None, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """``source`` as DataFrames of at most ``rows`` rows (only ``columns`` when given; a
    DataFrame is sliced as it is, since selecting columns may copy it)."""
    if isinstance(source, pd.DataFrame):
        for start in range(0, len(source), rows):
            yield source.iloc[start : start + rows]
    elif isinstance(source, pa.Table):
        table = source if columns is None else source.select(list(columns))
        for batch in table.to_batches(max_chunksize=rows):
            yield _arrow_frame(batch)
    elif isinstance(source, (str, Path)):
        yield from _file_chunks(Path(source), columns, rows)
    else:
        raise TableError(f"expected a pandas DataFrame, a pyarrow Table or a file path, got {type(source).__name__}")


def is_columnar_file(source: Table) -> bool:
    return isinstance(source, (str, Path)) and Path(source).name.lower().endswith((".parquet", ".pq"))


def head(source: Table, rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """The first rows of ``source`` (what column kinds are inferred from)."""
    if is_columnar_file(source):
        # Column by column: a whole row group of every column at once can be hundreds of MB.
        first = {
            name: next(chunks(source, columns=[name], rows=rows), pd.DataFrame())[name]
            for name in _parquet_columns(source)
        }
        return pd.DataFrame(first)
    return next(chunks(source, rows=rows), pd.DataFrame())


def _parquet_columns(source: Table) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.ParquetFile(str(source)).schema_arrow.names)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{source}: cannot read the file: {str(exc).strip()[:300]}") from None


def column_names(source: Table) -> list[str]:
    if isinstance(source, pd.DataFrame):
        return [str(c) for c in source.columns]
    if isinstance(source, pa.Table):
        return list(source.column_names)
    return [str(c) for c in head(source, 1).columns]


def _arrow_frame(batch: pa.RecordBatch | pa.Table) -> pd.DataFrame:
    # Arrow-backed columns: strings stay in Arrow buffers, nulls stay nulls.
    return batch.to_pandas(types_mapper=pd.ArrowDtype)


def _file_chunks(path: Path, columns: Sequence[str] | None, rows: int) -> Iterator[pd.DataFrame]:
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    name = path.name.lower().removesuffix(".gz")
    wanted = None if columns is None else list(columns)
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=wanted):
                yield _arrow_frame(batch)
        elif name.endswith(".csv"):
            import pyarrow.csv as pacsv

            # Types are inferred from the first block: a big block sees more of the file.
            reader = pacsv.open_csv(
                pa.input_stream(str(path), compression="detect"),
                read_options=pacsv.ReadOptions(block_size=16 << 20),
                convert_options=pacsv.ConvertOptions(include_columns=wanted),
            )
            for batch in reader:
                for start in range(0, batch.num_rows, rows):
                    yield _arrow_frame(batch.slice(start, rows))
        elif name.endswith((".jsonl", ".ndjson")):
            for frame in pd.read_json(path, lines=True, chunksize=rows):
                yield frame if wanted is None else frame[wanted]
        else:
            raise TableError(f"{path}: unknown file type (expected .csv, .parquet or .jsonl, optionally .gz)")
    except (pa.ArrowException, OSError, KeyError) as exc:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TableError(f"{path}: cannot read the file: {text}") from None


def infer_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Column -> 'numeric' | 'categorical' | 'boolean'; date-time columns are left out.

    Booleans are bool columns and text columns whose only values are true / false (in any
    case: ``"False"``, ``"false"`` and ``False`` are one value)."""
    kinds: dict[str, str] = {}
    for name in frame.columns:
        col = frame[name]
        dtype = col.dtype
        if pd.api.types.is_datetime64_any_dtype(dtype) or str(dtype).startswith(("timestamp", "date")):
            continue
        if pd.api.types.is_bool_dtype(dtype):
            kinds[str(name)] = BOOLEAN
        elif pd.api.types.is_numeric_dtype(dtype):
            kinds[str(name)] = NUMERIC
        elif _boolean_values(col):
            kinds[str(name)] = BOOLEAN
        else:
            kinds[str(name)] = CATEGORICAL
    return kinds


_FIRST_LOOK = 1_000  # rows: a text column is seldom boolean, and its first rows usually say so


def _boolean_values(col: pd.Series) -> bool:
    # A value of the first rows that is no truth value settles it without hashing the rest.
    if len(col) > _FIRST_LOOK and any(_truth(v) is None for v in _coded(col.iloc[:_FIRST_LOOK])[1]):
        return False
    distinct = _coded(col)[1]
    return bool(distinct) and all(_truth(v) is not None for v in distinct)


def _coded(col: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """(codes, distinct values) of a column; an object column mixing kinds of values (True
    next to "False") is read value by value, with a value's type part of its identity."""
    coded = category_codes(col)
    if coded is not None:
        return coded
    seen: dict[tuple[type, Any], int] = {}
    distinct: list[Any] = []
    codes = np.empty(len(col), dtype=np.intp)
    for i, value in enumerate(col.tolist()):
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            codes[i] = -1
            continue
        try:
            key = (type(value), value)
            code = seen.get(key)
        except TypeError:  # unhashable (a list, a dict): its own value
            key, code = (type(value), id(value)), None
        if code is None:
            code = seen[key] = len(distinct)
            distinct.append(value)
        codes[i] = code
    return codes, distinct


def _truth(value: Any) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text == "true" else False if text == "false" else None
    return None


def as_boolean(col: pd.Series) -> pd.Series:
    """A boolean column as the categories 'false' / 'true' (null stays null), through its
    codes: ``True``, ``"True"``, ``"true"`` are one category. A value that is no truth
    value is refused, naming the column and the value."""
    codes, distinct = _coded(col)
    mapping = np.empty(len(distinct) + 1, dtype=np.int8)
    for i, value in enumerate(distinct):
        truth = _truth(value)
        if truth is None and isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            truth = bool(value)
        if truth is None:
            raise TableError(f"column {col.name!r}: {value!r} is not a boolean value (true/false)")
        mapping[i] = int(truth)
    mapping[-1] = -1  # null
    new_codes = mapping[np.where(codes < 0, len(distinct), codes)]
    categories = pd.Categorical.from_codes(new_codes, categories=pd.Index(["false", "true"]))
    return pd.Series(categories, index=col.index, name=col.name)


def check_kinds(kinds: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, kind in kinds.items():
        if kind not in KINDS:
            raise TableError(f"schema[{name!r}] must be one of {KINDS}, got {kind!r}")
        out[str(name)] = kind
    if not out:
        raise TableError("the schema names no column to compare")
    return out
