"""``monitor.compare``: two tables -> which features drifted, by the service's own rule.

    import monitor
    result = monitor.compare(reference_df, current_df)
    result.drifted_features, result.dataset_drift
    result.to_frame()

The reference is profiled (:mod:`monitor.profiling`), the current table is counted into one
window in chunks (bounded memory, no timestamps needed) and that window is evaluated by
the detector the service runs, with the same decision knobs (``alpha``, ``correction``,
``min_effect_numeric``, ... of :class:`detectors.decision.DriftSettings`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from detectors.decision import DriftSettings, FeatureDrift
from detectors.evaluation import Evaluation, EvaluationSettings, evaluate_window
from detectors.threads import Workers
from detectors.windows.state import WindowLayout, WindowState
from monitor.frames import CHUNK_ROWS, Table, TableError, chunks
from monitor.profiling import ColumnReads, Profile, check_columns, profile, table_kinds

_KNOBS = tuple(f.name for f in fields(DriftSettings))


@dataclass(frozen=True)
class Comparison:
    """The verdict: per feature (in schema order) and for the dataset."""

    evaluation: Evaluation
    kinds: dict[str, str]
    reference_rows: int
    current_rows: int

    @property
    def features(self) -> dict[str, FeatureDrift]:
        return {f.feature: f for f in self.evaluation.drift.features}

    @property
    def drifted_features(self) -> list[str]:
        return list(self.evaluation.drift.drifted_features)

    @property
    def dataset_drift(self) -> bool:
        return self.evaluation.drift.dataset_drift

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: kind, method, statistic, p-value, adjusted p-value, effect
        (and its method and threshold), drift flag."""
        rows = []
        for name, f in self.features.items():
            rows.append(
                {
                    "feature": name,
                    "kind": self.kinds.get(name, f.kind),
                    "method": None if f.test is None else f.test.method,
                    "statistic": None if f.test is None else f.test.statistic,
                    "pvalue": None if f.test is None else f.test.pvalue,
                    "adjusted_pvalue": f.adjusted_pvalue,
                    "effect_method": None if f.effect is None else f.effect.method,
                    "effect": None if f.effect is None else f.effect.statistic,
                    "effect_threshold": None if f.effect is None else f.effect.threshold,
                    "drift": f.drift,
                    "detail": f.detail,
                }
            )
        return pd.DataFrame(rows).set_index("feature")

    def to_dict(self) -> dict[str, Any]:
        drift = self.evaluation.drift.to_dict()
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "schema": dict(self.kinds),
            "dataset_drift": self.dataset_drift,
            "drifted_features": self.drifted_features,
            "share": drift["share"],
            "threshold": drift["threshold"],
            "correction": drift["correction"],
            "features": drift["features"],
            "quality": self.evaluation.quality.to_dict(),
        }

    def to_html(self) -> str:
        """One self-contained HTML page (no script, nothing fetched), in the style of the
        service's report: the verdict, then a row per feature."""
        from monitor.report.pages import document, table
        from monitor.report.svg import esc

        def cell(value: Any) -> str:
            if value is None or (isinstance(value, float) and value != value):
                return ""
            return esc(f"{value:.4g}" if isinstance(value, float) else value)

        frame = self.to_frame().reset_index()
        rows = [[cell(v) for v in record] for record in frame.itertuples(index=False)]
        verdict = "dataset drift" if self.dataset_drift else "no dataset drift"
        drifted = ", ".join(self.drifted_features) or "none"
        body = (
            f"<h1>{esc(verdict)}</h1><p>{self.reference_rows:,} reference rows, {self.current_rows:,} current rows; "
            f"drifted: {esc(drifted)}</p>{table([str(c) for c in frame.columns], rows)}"
        )
        return document("Drift comparison", body, None)

    def save_html(self, path: str | Path) -> None:
        Path(path).write_text(self.to_html(), encoding="utf-8")

    def __repr__(self) -> str:
        schema = ", ".join(f"{name}: {kind}" for name, kind in self.kinds.items())
        verdict = "dataset drift" if self.dataset_drift else "no dataset drift"
        return (
            f"Comparison({verdict}; drifted {self.drifted_features}; "
            f"{self.reference_rows} vs {self.current_rows} rows; schema {{{schema}}})"
        )


def drift_settings(decision: Mapping[str, Any]) -> DriftSettings:
    unknown = sorted(set(decision) - set(_KNOBS))
    if unknown:
        raise TypeError(f"unknown decision setting {unknown[0]!r} (settings: {', '.join(_KNOBS)})")
    return DriftSettings(**decision)


def compare(
    reference: Table | Profile,
    current: Table,
    *,
    schema: Mapping[str, str] | None = None,
    sample_size: int = 10_000,
    chunk_rows: int | None = None,
    workers: int | None = None,
    **decision: Any,
) -> Comparison:
    """Compare ``current`` with ``reference`` (DataFrames, pyarrow Tables, file paths, or a
    :class:`~monitor.profiling.Profile` as the reference).

    ``schema`` maps column -> 'numeric' | 'categorical' | 'boolean'; inferred from the
    reference when None (``repr`` of the result prints it). ``sample_size`` is the
    window's sample for rank tests, as the service's ``window.sample_size``.
    ``chunk_rows``: rows of the current table counted at a time; by default 50,000 from a
    file and 1,000,000 from a table in memory (its numeric columns are read in place, so a
    large part costs little memory and gives the threads more to share). ``workers``:
    threads that read, profile and count the columns together (sorting, hashing and
    counting release the GIL), the calling thread being one of them; default
    ``min(2, os.cpu_count())``, 1 for the calling thread alone; the result is the same
    whatever the number. Other keyword arguments are the decision's knobs
    (:class:`detectors.decision.DriftSettings`)."""
    settings = drift_settings(decision)
    if schema is not None and isinstance(reference, Profile):
        raise TypeError("schema= applies when the reference is a table; a Profile keeps the schema it was built with")
    with contextlib.ExitStack() as stack:
        # Huge values overflow sums and moments to inf (reported, not warned about); the
        # helper threads run in this context, so the error state reaches them too.
        stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
        threads = Workers(min(2, os.cpu_count() or 1) if workers is None else workers)
        pool = stack.enter_context(threads) if threads.count > 1 else None
        if isinstance(reference, pa.Table):
            reference = reference.to_pandas(types_mapper=pd.ArrowDtype)
        # The kinds of an in-memory reference are known before it is profiled: the current
        # table's first part is then read on the helper threads meanwhile.
        kinds = _known_kinds(reference, schema)
        parts = reads = None
        if kinds is not None:
            parts = _nonempty_parts(current, kinds, chunk_rows)
            reads = _start_reading(parts, kinds, pool)
        ref = profile(reference, (kinds or schema) if not isinstance(reference, Profile) else None, workers=pool)
        kinds = dict(ref.kinds or {})
        if parts is None:
            parts = _nonempty_parts(current, kinds, chunk_rows)
            reads = _start_reading(parts, kinds, pool)
        window = WindowState(WindowLayout(ref.reference, sample_size=sample_size))
        rows = _count_current(window, reads, parts, kinds, pool)
        if rows == 0:
            raise TableError("the current table has no rows")
        evaluation = evaluate_window(window, EvaluationSettings(drift=settings), pool)
    _check_current(window, kinds)
    return Comparison(evaluation, kinds, ref.rows, rows)


_CURRENT = "current table"
_PART_ROWS = 1_000_000  # rows of a table in memory counted at a time (see compare's chunk_rows)


def _known_kinds(reference: Table | Profile, schema: Mapping[str, str] | None) -> dict[str, str] | None:
    """The reference's column kinds when they are known without reading it (a Profile) or
    from the frame in memory; None otherwise (a file is profiled first)."""
    if isinstance(reference, Profile):
        return dict(reference.kinds or {}) or None
    if isinstance(reference, pd.DataFrame):
        kinds = table_kinds(reference, schema)
        check_columns(reference, kinds, "reference table")  # its errors first, before the current table's
        return kinds
    return None


def _nonempty_parts(current: Table, kinds: Mapping[str, str], rows: int | None) -> Iterator[pd.DataFrame]:
    in_memory = isinstance(current, (pd.DataFrame, pa.Table))
    wanted = None if isinstance(current, pd.DataFrame) else list(kinds)
    rows = rows or (_PART_ROWS if in_memory else CHUNK_ROWS)
    return (chunk for chunk in chunks(current, columns=wanted, rows=rows) if len(chunk))


def _start_reading(
    parts: Iterator[pd.DataFrame], kinds: Mapping[str, str], workers: Workers | None
) -> ColumnReads | None:
    part = next(parts, None)
    return None if part is None else ColumnReads(part, kinds, _CURRENT, workers)


def _count_current(
    window: WindowState,
    reads: ColumnReads | None,
    parts: Iterator[pd.DataFrame],
    kinds: Mapping[str, str],
    workers: Workers | None,
) -> int:
    """Count the current table's parts (``reads``: the first, being read; then ``parts``)
    into ``window``; returns the rows. Each part's columns are read on the helper threads
    while the part before is counted."""
    rows = 0
    while reads is not None:
        batch = reads.batch()
        reads = _start_reading(parts, kinds, workers)
        window.update(batch, workers)
        rows += len(batch)
    return rows


def _check_current(window: WindowState, kinds: Mapping[str, str]) -> None:
    for name in kinds:
        quality = window.quality(name)
        if quality["count"] and quality["null"] + quality["wrong_type"] == quality["count"]:
            raise TableError(
                f"column {name!r} of the current table has no values (all {quality['count']} rows are null)"
            )
