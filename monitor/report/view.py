"""A model's windows as the pages draw them, gathered from result and histogram rows.

Rows come from the store (:func:`load_view`) or from a replay's results, turned into the
same rows by :func:`monitor.detection.evaluation_rows` (:func:`view_from_rows`). Times
are epoch seconds; a feature's ``score`` is its effect statistic (its unit is the
method's, e.g. reference SDs for ``wasserstein_normed``) and ``threshold`` the minimum
effect that counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from monitor.store import tables as t
from monitor.store.database import Store

# Windows drawn by default: a day of 15-minute windows, and what fits a screen's width.
DEFAULT_WINDOWS = 50
MAX_WINDOWS = 1000
_LATEST_KINDS = ("dataset_drift", "feature_drift")
_DRAWN_KINDS = ("feature_drift", "prediction_drift", "dataset_drift", "latency", "performance", "estimated_performance")


@dataclass
class Cell:
    """One feature in one window."""

    drift: bool = False
    insufficient: bool = False
    score: float | None = None  # the effect statistic
    threshold: float | None = None
    effect: str = ""
    test: str = ""
    statistic: float | None = None  # the test statistic
    pvalue: float | None = None
    adjusted_pvalue: float | None = None
    n_current: int | None = None

    @property
    def ratio(self) -> float | None:
        """The score in units of its threshold (1 = the drift threshold): what colours a cell."""
        if self.score is None or not self.threshold:
            return None
        return self.score / self.threshold


@dataclass
class Window:
    seq: int
    start: float | None = None
    end: float | None = None
    n: int | None = None
    reference_version: str | None = None
    share: float | None = None
    share_threshold: float | None = None
    dataset_drift: bool = False
    drifted: tuple[str, ...] = ()
    latency: dict[str, float | None] = field(default_factory=dict)
    latency_slo: float | None = None


@dataclass
class ModelView:
    """What the model page, the feature page and the report draw; ``segment``: a slice's
    windows ("region:eu", detectors.segments) instead of the whole population's."""

    model: str
    windows: list[Window] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)
    prediction: dict[int, Cell] = field(default_factory=dict)
    # (feature, window) -> [(check, rate, threshold, breached)]
    quality: dict[tuple[str, int], list[tuple[str, float | None, float | None, bool]]] = field(default_factory=dict)
    # metric -> [(window, value, reference value)]
    performance: dict[str, list[tuple[int, float | None, float | None]]] = field(default_factory=dict)
    # (feature, window) -> the histogram's data (edges, categories, reference, current)
    histograms: dict[tuple[str, int], Mapping[str, Any]] = field(default_factory=dict)
    # Estimated beside realized performance, by the end of their windows (epoch s): the
    # estimate's and the labels' windows are cut apart, so only time lines them up.
    # metric -> [(window end, estimate, lower, upper)]
    estimated: dict[str, list[tuple[float, float | None, float | None, float | None]]] = field(default_factory=dict)
    # metric -> {"reference": the reference's realized value, "threshold": the alert threshold}
    estimated_lines: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # metric -> [(window end, realized value)]
    realized: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    segment: str = ""

    def window(self, seq: int) -> Window | None:
        return next((w for w in self.windows if w.seq == seq), None)

    @property
    def latest(self) -> Window | None:
        return self.windows[-1] if self.windows else None


def load_view(
    store: Store,
    model: str,
    *,
    windows: int = DEFAULT_WINDOWS,
    feature: str | None = None,
    histograms: bool = False,
    quality: bool = False,
    segment: str = "",
) -> ModelView:
    """The model's last ``windows`` windows from the store; with ``histograms`` and ``quality``,
    their histograms and data-quality checks too (only ``feature``'s when it is given: every
    feature's quality checks are two thirds of a model's rows). ``segment``: that slice's
    windows (numbered apart from the whole population's)."""
    if not 1 <= windows <= MAX_WINDOWS:
        raise ValueError(f"windows must be between 1 and {MAX_WINDOWS}, got {windows}")
    newest = _newest_slice_window(store, model, segment) if segment else _newest_window(store, model)
    if newest is None:
        return ModelView(model, segment=segment)
    since = newest - windows + 1
    rows = store.drawn_results(model, _DRAWN_KINDS, since_seq=since, segment=segment)
    if quality:
        rows += store.drawn_results(model, ("quality",), since_seq=since, feature=feature, segment=segment)
    drawn = store.histograms(model, feature=feature, since_seq=since, segment=segment) if histograms else []
    view = view_from_rows(model, rows, drawn)
    view.segment = segment
    return view


def _newest_window(store: Store, model: str) -> int | None:
    latest = [row["window_seq"] for row in store.latest_results(model) if row["kind"] in _LATEST_KINDS]
    return max(latest) if latest else None


def _newest_slice_window(store: Store, model: str, segment: str) -> int | None:
    """The number of the slice's newest drift window (one aggregate: reading every slice's
    latest rows to pick one would return keys x values x features rows)."""
    c = t.results.c
    query = sa.select(sa.func.max(c.window_seq)).where(
        c.model == model, c.segment == segment, c.model_version == "", c.kind.in_(_LATEST_KINDS)
    )
    with store.engine.connect() as conn:
        newest = conn.execute(query).scalar()
    return None if newest is None else int(newest)


def view_from_rows(
    model: str, rows: Iterable[Mapping[str, Any]], histogram_rows: Iterable[Mapping[str, Any]] = ()
) -> ModelView:
    """The view of results-table rows (any order) and histogram rows."""
    view = ModelView(model)
    windows: dict[int, Window] = {}
    features: dict[str, None] = {}
    for row in rows:
        kind, seq = row["kind"], int(row["window_seq"])
        if kind == "performance":
            detail = row.get("detail") or {}
            view.performance.setdefault(row["method"], []).append((seq, row["statistic"], detail.get("reference")))
            if row.get("window_end") is not None:
                view.realized.setdefault(row["method"], []).append((row["window_end"], row["statistic"]))
            continue
        if kind == "estimated_performance":
            _add_estimate(view, row)
            continue
        window = windows.get(seq)
        if window is None:
            window = windows[seq] = Window(seq, row.get("window_start"), row.get("window_end"))
            window.reference_version = row.get("reference_version")
        if kind == "feature_drift":
            features.setdefault(row["feature"], None)
            _add_to_cell(view.cells.setdefault((row["feature"], seq), Cell()), row)
        elif kind == "prediction_drift":
            _add_to_cell(view.prediction.setdefault(seq, Cell()), row)
        elif kind == "dataset_drift":
            _add_dataset(window, row)
        elif kind == "quality":
            check = (row["method"], row["statistic"], row["threshold"], bool(row["drift"]))
            view.quality.setdefault((row["feature"], seq), []).append(check)
        elif kind == "latency":
            window.latency = dict(row.get("detail") or {})
            window.latency_slo = row["threshold"]
    view.windows = [windows[seq] for seq in sorted(windows)]
    view.features = list(features)
    for key in view.performance:
        view.performance[key].sort()
    for estimates in view.estimated.values():
        estimates.sort(key=lambda point: point[0])
    for realized in view.realized.values():
        realized.sort(key=lambda point: point[0])
    for drawn in histogram_rows:
        view.histograms[(drawn["feature"], int(drawn["window_seq"]))] = drawn["data"]
    return view


def _add_estimate(view: ModelView, row: Mapping[str, Any]) -> None:
    end = row.get("window_end")
    if end is None:  # a window without event times: nothing to line it up with
        return
    detail = row.get("detail") or {}
    view.estimated.setdefault(row["method"], []).append(
        (end, row["statistic"], detail.get("lower"), detail.get("upper"))
    )
    view.estimated_lines[row["method"]] = {"reference": detail.get("reference"), "threshold": row["threshold"]}


def _add_to_cell(cell: Cell, row: Mapping[str, Any]) -> None:
    detail = row.get("detail") or {}
    cell.drift = cell.drift or bool(row["drift"])
    if row["method"] == "insufficient":
        cell.insufficient = True
        return
    if detail.get("role") == "effect":
        cell.effect, cell.score, cell.threshold = row["method"], row["statistic"], row["threshold"]
        cell.n_current = row.get("n_current")
    else:
        cell.test, cell.statistic, cell.pvalue = row["method"], row["statistic"], row["pvalue"]
        cell.adjusted_pvalue = detail.get("adjusted_pvalue")


def _add_dataset(window: Window, row: Mapping[str, Any]) -> None:
    detail = row.get("detail") or {}
    window.n = row.get("n_current")
    window.share, window.share_threshold = row["statistic"], row["threshold"]
    window.dataset_drift = bool(row["drift"])
    window.drifted = tuple(detail.get("drifted") or ())
