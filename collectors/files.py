"""Records from a table (CSV, Parquet, JSONL): replays and offline evaluation.

Each row becomes one record of ``model``: the model's configured features as inputs, the
prediction, latency, label, id and timestamp columns when present. Rows go through the
same validation as HTTP items, so a bad row is a dead letter with its row number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitor.records import Record, Rejection
from monitor.settings import ModelConfig
from monitor.validation import Validator


@dataclass(frozen=True)
class TableColumns:
    """Which columns hold what; None (or a column the table lacks) means absent."""

    prediction: str | None = "prediction"
    latency_ms: str | None = None
    label: str | None = None
    id: str | None = "id"
    timestamp: str | None = "timestamp"


def _clean(value: Any) -> Any:
    """pandas' missing values (NaN in numeric columns) become JSON null, numpy scalars plain."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def table_chunks(
    frame: pd.DataFrame,
    model: str,
    config: ModelConfig,
    validator: Validator,
    columns: TableColumns,
    *,
    chunk: int = 1_000,
    received_at: float = 0.0,
) -> Iterator[tuple[list[Record], list[Rejection]]]:
    """Validated records of ``frame`` in chunks of ``chunk`` rows (in file order)."""
    features = [name for name in config.features if name in frame.columns]
    present = {k: v for k, v in vars(columns).items() if v is not None and v in frame.columns}
    if "timestamp" in present:
        # Strings like "2018-10-30 18:00:00.000" and numbers both become epoch seconds.
        stamps = frame[present["timestamp"]]
        if not pd.api.types.is_numeric_dtype(stamps):
            frame = frame.assign(
                **{present["timestamp"]: pd.to_datetime(stamps, utc=True).map(lambda t: t.timestamp())}
            )
    names = list(frame.columns)
    position = {name: i for i, name in enumerate(names)}
    for start in range(0, len(frame), chunk):
        records: list[Record] = []
        rejections: list[Rejection] = []
        for offset, row in enumerate(frame.iloc[start : start + chunk].itertuples(index=False, name=None)):
            item: dict[str, Any] = {"model": model, "inputs": {f: _clean(row[position[f]]) for f in features}}
            for key, column in present.items():
                value = _clean(row[position[column]])
                if value is not None:
                    item[key] = value
            outcome = validator.validate(item, start + offset, received_at)
            if isinstance(outcome, Record):
                records.append(outcome)
            else:
                rejections.append(outcome)
        yield records, rejections
