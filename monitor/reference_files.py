"""Reference data: reading a reference file (CSV, Parquet, JSONL, optionally gzip) and
profiling it with a model's schema, with a summary for display and, when the file has
labels, the reference's own performance (what live performance is compared with).

Shared by the upload route, the ``monitor reference`` command and start-up (the
config's ``reference.file``). Everything a user can get wrong in the file raises
:class:`ReferenceDataError` with a message that names the problem.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from detectors.columns import Batch
from detectors.profiles import NumericProfile, ReferenceProfile
from detectors.schema import Schema
from detectors.segments import SegmentSpec, build_slices, parse_slice
from detectors.windows.performance import performance_from_arrays
from monitor.detection import performance_settings, schema_for
from monitor.records import Invalid
from monitor.segment_state import reference_tags, segment_spec
from monitor.settings import ModelConfig
from monitor.validation import BOOLEAN_WORDS, as_boolean, boolean_inputs

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TOP_CATEGORIES = 10  # categories listed per channel in a summary
_SHOWN_COLUMNS = 20  # columns named in a "missing column" message


def file_format(path: str | Path) -> str:
    """csv, parquet or jsonl, from the file name (a .gz suffix is looked through)."""
    name = Path(path).name.lower().removesuffix(".gz")
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise ReferenceDataError(f"{path}: unknown file type (expected .csv, .parquet or .jsonl, optionally .gz)")


def read_table(path: str | Path) -> pd.DataFrame:
    """A whole table file as a DataFrame (JSONL records are flattened: inputs become columns)."""
    table = parse_table(Path(path).read_bytes(), file_format(path))
    if isinstance(table, list):
        return pd.DataFrame(
            [{**(row.get("inputs") or {}), **{k: v for k, v in row.items() if k != "inputs"}} for row in table]
        )
    return table


def reference_from_file(path: str | Path, config: ModelConfig) -> tuple[ReferenceProfile, dict[str, Any]]:
    """Profile and summary of a reference file named in the config."""
    fmt = file_format(path)
    return build_reference(Path(path).read_bytes(), fmt, config, label_column=config.reference.label_column)


class ReferenceDataError(ValueError):
    """The reference rows cannot be read or lack a column; the message says which."""


def build_reference(
    data: bytes,
    fmt: str,
    config: ModelConfig,
    *,
    prediction_column: str | None = None,
    latency_column: str | None = None,
    label_column: str | None = None,
) -> tuple[ReferenceProfile, dict[str, Any]]:
    """Profile of reference rows in ``fmt`` (csv, parquet or jsonl) with the model's
    schema, and its summary (:func:`profile_summary`, plus ``performance`` when
    ``label_column`` is in the table, and then with segments ``segment_performance``: each
    reference slice's own metrics).

    The profile's version label is "new": the store assigns the real one (see
    :func:`monitor.detection.with_version`). Raises ReferenceDataError for anything
    wrong with the data."""
    if not data.strip():
        raise ReferenceDataError("the reference file is empty")
    schema = schema_for(config, prediction_column=prediction_column, latency_column=latency_column)
    ref = config.reference
    spec = segment_spec(config)
    profile, rows, table = _profile(
        data, fmt, schema, spec, booleans=config.boolean_features, bins=ref.bins, top_k=ref.top_k,
        sample_size=ref.sample_size,
    )  # fmt: skip
    summary = profile_summary(profile, rows, fmt)
    if spec is not None:  # which tag values have a reference slice of their own, and its rows
        summary["segments"] = {
            name: part.channels[next(iter(part.channels))].count for name, part in profile.slices.items()
        }
    if label_column and isinstance(table, pd.DataFrame) and label_column in table.columns and schema.prediction_type:
        predictions, labels = table[schema.prediction_column].to_numpy(), table[label_column].to_numpy()
        metrics = _metrics(config, predictions, labels)
        if metrics is not None:
            summary["performance"] = metrics
        if spec is not None and profile.slices:
            summary["segment_performance"] = _slice_metrics(config, table, spec, profile, predictions, labels)
    return profile, summary


def _metrics(config: ModelConfig, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float | None] | None:
    """The performance metrics of reference rows; None under the performance settings' min_labels."""
    result = performance_from_arrays(performance_settings(config), predictions, labels)
    if result is None:
        return None
    return {k: _finite(v) if v is not None else None for k, v in result.metrics.items()}


def _slice_metrics(
    config: ModelConfig,
    table: pd.DataFrame,
    spec: SegmentSpec,
    profile: ReferenceProfile,
    predictions: np.ndarray,
    labels: np.ndarray,
) -> dict[str, dict[str, float | None]]:
    """Per reference slice (``region:eu``), the metrics of its own rows: what the slice's
    live performance is compared with (slices differ by nature: a kiosk's accuracy is not a
    phone's). A slice with too few labelled rows is left out: it is compared with the whole
    reference's metrics, and its results say so."""
    tags = reference_tags(table, spec)
    out = {}
    for name in profile.slices:
        key, value = parse_slice(name)
        rows = np.flatnonzero(tags[key] == value)
        metrics = _metrics(config, predictions[rows], labels[rows])
        if metrics is not None:
            out[name] = metrics
    return out


def _profile(
    data: bytes,
    fmt: str,
    schema: Schema,
    spec: SegmentSpec | None = None,
    booleans: frozenset[str] = frozenset(),
    **options: int,
) -> tuple[ReferenceProfile, int, Any]:
    table = parse_table(data, fmt)
    if isinstance(table, pd.DataFrame):
        _check_columns(table, schema)
        table = _boolean_words_in_frame(table, schema, booleans)
    else:
        _check_record_keys(table, schema)
        table = [_boolean_words_in_record(row, booleans, number) for number, row in enumerate(table, start=1)]
    # Timestamps play no part in a profile, and an odd one must not refuse the file.
    try:
        if isinstance(table, pd.DataFrame):
            table = table[[c for c in table.columns if c != schema.timestamp_column or c in _needed(schema)]]
            batch = Batch.from_frame(table, schema, default_timestamp=0.0)
        else:
            records = [{k: v for k, v in row.items() if k != "timestamp"} for row in table]
            batch = Batch.from_records(records, schema, default_timestamp=0.0)
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: an inf std, shown as null
            profile = ReferenceProfile.from_batch(batch, schema, version="new", **options)
            if spec is not None:
                slices = build_slices(batch, reference_tags(table, spec), schema, spec, **options)
                profile = ReferenceProfile(
                    schema, profile.channels, version="new", params=profile.params, slices=slices
                )
            return profile, len(table), table
    except (ValueError, TypeError, OverflowError) as exc:
        raise ReferenceDataError(f"cannot profile the reference rows: {exc}") from None


def _boolean_word(value: Any) -> Any:
    if isinstance(value, str):
        return BOOLEAN_WORDS.get(value.lower(), value)
    return value


def _boolean_words_in_frame(table: pd.DataFrame, schema: Schema, booleans: frozenset[str]) -> pd.DataFrame:
    """Feature columns with "true"/"false" in any case as booleans, as live records have
    them (monitor.validation.BOOLEAN_WORDS); pandas reads only some spellings as booleans.
    The columns of boolean features (``booleans``) are read as validation reads their values."""
    changed = {name: _boolean_column(table[name], name) for name in booleans}
    for name in schema.features:
        if name in booleans:
            continue
        column = table[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            try:
                values = column.astype(object)
            except Exception:  # e.g. Arrow strings that are not UTF-8: profiling words the problem
                continue
            words = values.map(lambda v: isinstance(v, str) and v.lower() in BOOLEAN_WORDS)
            if words.any():
                changed[name] = values.map(_boolean_word)
    return table.assign(**changed) if changed else table


def _boolean_column(column: pd.Series, name: str) -> pd.Series:
    """A boolean feature's column as bools, None where null (true/false in any case, 1/0 as
    numbers or strings: :func:`monitor.validation.as_boolean`); anything else refuses the
    file, naming the column, the first such row (1 = the first row of data) and their count."""
    values: list[bool | None] = []
    bad: list[tuple[int, str]] = []
    for row, value in enumerate(column.astype(object).tolist(), start=1):
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            values.append(None)  # pandas' nulls: a missing value
            continue
        try:
            values.append(as_boolean(value))
        except ValueError as exc:
            bad.append((row, str(exc)))
            values.append(None)
    if bad:
        more = f" ({len(bad)} rows have such values)" if len(bad) > 1 else ""
        raise ReferenceDataError(f"column {name!r} (type: boolean), row {bad[0][0]}: {bad[0][1]}{more}")
    return pd.Series(values, index=column.index, dtype=object)


def _boolean_words_in_record(row: dict[str, Any], booleans: frozenset[str], number: int) -> dict[str, Any]:
    inputs = row.get("inputs")
    if not isinstance(inputs, dict):
        return row
    inputs = {name: _boolean_word(value) for name, value in inputs.items()}
    if booleans:
        try:
            inputs = boolean_inputs(inputs, booleans)
        except Invalid as exc:
            raise ReferenceDataError(f"record {number}: {exc.path} (type: boolean) {exc.message}") from None
    return {**row, "inputs": inputs}


def profile_summary(profile: ReferenceProfile, rows: int, fmt: str) -> dict[str, Any]:
    """What the reference looks like, for display: per channel (in schema order) its kind,
    null rate and either numeric statistics or its most frequent categories."""
    channels = []
    for name, kind in profile.schema.channels().items():
        p = profile.channels[name]
        entry: dict[str, Any] = {"name": name, "kind": kind, "null_rate": p.null_rate}
        if isinstance(p, NumericProfile):
            entry.update(
                {key: _finite(getattr(p, key)) for key in ("min", "max", "mean", "std")},
                bins=p.n_bins,
                nonfinite_rate=p.nonfinite_rate,
            )
        else:
            shown = zip(p.categories[:TOP_CATEGORIES], p.counts[:TOP_CATEGORIES].tolist(), strict=True)
            entry.update(
                categories=len(p.categories) + len(p.tail),
                top=[[category, count] for category, count in shown],
                other_count=p.other_count,
            )
        entry["wrong_type_rate"] = p.wrong_type_count / p.count if p.count else 0.0
        channels.append(entry)
    schema = profile.schema
    return {
        "rows": rows,
        "format": fmt,
        "features": list(schema.features),
        "prediction_column": schema.prediction_column if schema.prediction_type else None,
        "latency_column": schema.latency_column,
        "channels": channels,
    }


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None  # JSON has no NaN


def parse_table(data: bytes, fmt: str) -> pd.DataFrame | list[dict[str, Any]]:
    """A DataFrame, or the records of a JSONL file of ``{"inputs": {...}, ...}`` records."""
    if data[:2] == b"\x1f\x8b":  # gzip magic: a compressed file
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ReferenceDataError(f"cannot decompress the gzip file: {exc}") from None
    if fmt == "jsonl":
        return _read_jsonl(data)
    try:
        return pd.read_csv(io.BytesIO(data)) if fmt == "csv" else pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pandas and pyarrow raise a zoo of types on broken input; all mean "bad file"
        raise ReferenceDataError(f"cannot read the reference as {fmt.upper()}: {_first_line(exc)}") from None


def _read_jsonl(data: bytes) -> pd.DataFrame | list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []  # each row's line in the file (blank lines are skipped)
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ReferenceDataError(f"line {number} is not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise ReferenceDataError(f"line {number} is not a JSON object")
        rows.append(row)
        numbers.append(number)
    if rows and isinstance(rows[0].get("inputs"), dict):
        # Records as ingested: features under "inputs", then "prediction", "latency_ms".
        for row, number in zip(rows, numbers, strict=True):
            inputs = row.get("inputs")
            if inputs is not None and not isinstance(inputs, dict):
                raise ReferenceDataError(
                    f"line {number}: inputs must be a JSON object of feature values, got {_json_type(inputs)}"
                )
        return rows
    try:
        return pd.DataFrame(rows)
    except Exception as exc:  # pandas refuses some mixes of values; the message says which
        raise ReferenceDataError(f"cannot read the JSONL rows as a table: {_first_line(exc)}") from None


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _needed(schema: Schema) -> list[str]:
    needed = list(schema.features)
    if schema.prediction_type is not None:
        needed.append(schema.prediction_column)
    if schema.latency_column is not None:
        needed.append(schema.latency_column)
    return needed


def _check_columns(table: pd.DataFrame, schema: Schema) -> None:
    present = set(map(str, table.columns))
    missing = [name for name in _needed(schema) if name not in present]
    if not missing:
        return
    names = ", ".join(repr(name) for name in missing)
    shown = ", ".join(map(str, list(table.columns)[:_SHOWN_COLUMNS]))
    more = f" and {len(table.columns) - _SHOWN_COLUMNS} more" if len(table.columns) > _SHOWN_COLUMNS else ""
    raise ReferenceDataError(
        f"missing column{'s' if len(missing) > 1 else ''} {names} (the file has: {shown or 'no columns'}{more})"
    )


def _check_record_keys(records: list[dict[str, Any]], schema: Schema) -> None:
    """Records (``{"inputs": {...}, "prediction": ...}``): a feature no record has is missing."""
    seen: set[str] = set()
    for record in records:
        inputs = record.get("inputs")
        if isinstance(inputs, dict):
            seen.update(inputs)
    missing = [name for name in schema.features if name not in seen]
    if schema.prediction_type is not None and not any("prediction" in record for record in records):
        missing.append("prediction")
    if schema.latency_column is not None and not any("latency_ms" in record for record in records):
        missing.append("latency_ms")
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise ReferenceDataError(f"missing column{'s' if len(missing) > 1 else ''} {names} in every record")
