"""The gauges of each model version's latest window (``monitor_version_*{model, version}``,
families in monitor/slice_metrics.py), set as a version's windows close
(monitor/version_state.py) and restored from the store at start-up.

Bounded by ``versions.max_active`` per model, as the version windows are. The state
retires its least recently seen version when a new one comes; the gauges follow when the
newcomer's first window closes: past ``max_active`` versions with series, the series of
the versions without windows in the state (retired; or, without checkpoints, not seen
since a restart) go first, least recently set first, then the least recently set ones.
A window of a version the state has retired meanwhile (evaluated off the pipeline's
thread) sets nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Gauge

from detectors.evaluation import Evaluation
from detectors.schema import channel_name
from monitor.metrics import Metrics


@dataclass(frozen=True)
class ActiveVersions:
    """What the version state of one model says: its bound and the versions with windows."""

    max_active: int
    active: frozenset[str]


# model -> its versions' bound and active set, None for a model without ``versions:``.
VersionsOf = Callable[[str], ActiveVersions | None]


class ModelStates(Protocol):
    """The pipeline's model states (monitor.pipeline.Pipeline.models)."""

    @property
    def models(self) -> Mapping[str, Any]: ...


def pipeline_versions(pipeline: ModelStates) -> VersionsOf:
    """The active versions of each model of ``pipeline`` (read from any thread: a copy of
    the state's keys, taken without releasing the GIL)."""

    def of(model: str) -> ActiveVersions | None:
        state = pipeline.models.get(model)
        versions = None if state is None else state.versions
        if versions is None:
            return None
        return ActiveVersions(versions.max_active, frozenset(list(versions.detectors)))

    return of


def _newest(rows: list[Mapping[str, Any]]) -> tuple[float, float]:
    """When a version's rows were stored, then the event time its window ended: rows written
    together (one batch of the store's writer) are told apart by their traffic."""
    return max(r.get("created_at") or 0.0 for r in rows), max(r.get("window_end") or 0.0 for r in rows)


def _value(x: float | None) -> float:
    return float("nan") if x is None else float(x)


class VersionGauges:
    """Sets, restores and removes the version series of :class:`monitor.metrics.Metrics`."""

    def __init__(self, metrics: Metrics, versions_of: VersionsOf | None = None):
        self.metrics = metrics
        self.versions_of = versions_of

    def publish(self, model: str, result: Evaluation) -> None:
        """A version's closed window (``result.model_version``)."""
        m, version = self.metrics, result.model_version
        m.windows_evaluated.labels(model, "version_drift").inc()
        known = None if self.versions_of is None else self.versions_of(model)
        if known is not None and version not in known.active:
            return  # retired between its window's close and now
        self._set(m.version_window_records, float(result.n), model, version)
        self._set(m.version_drifted_features, float(result.drift.n_drifted), model, version)
        for feature in result.drift.features:
            self._set(m.version_feature_drift, int(feature.drift), model, version, feature.feature, guarded=True)
            if feature.effect is not None:
                self._set(m.version_feature_drift_score, _value(feature.effect.statistic), model, version,
                          feature.feature, feature.effect.method, guarded=True)  # fmt: skip
        if result.prediction is not None:
            self._set(m.version_prediction_drift, int(result.prediction.drift), model, version)
        for check in result.quality.checks:
            self._set(m.version_quality_breach, int(check.breached), model, version, channel_name(check.channel),
                      check.check, guarded=True)  # fmt: skip
        self._bound(model, known)

    def restore(self, model: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """The versions' latest stored windows (``Store.latest_version_results``) back into
        the gauges, the most recently stored ``max_active`` versions at most (see :func:`_newest`)."""
        by_version: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_version.setdefault(row["model_version"], []).append(row)
        newest_last = sorted(by_version, key=lambda v: _newest(by_version[v]))
        known = None if self.versions_of is None else self.versions_of(model)
        if known is not None:
            newest_last = newest_last[-known.max_active :]
        for version in newest_last:
            for row in by_version[version]:
                self._restore_row(model, version, row)
        self._bound(model, known)

    def _restore_row(self, model: str, version: str, row: Mapping[str, Any]) -> None:
        m, kind, feature, method = self.metrics, row["kind"], row["feature"], row["method"]
        detail, drift = row.get("detail") or {}, int(bool(row["drift"]))
        if kind == "feature_drift":
            self._set(m.version_feature_drift, drift, model, version, feature, guarded=True)
            if detail.get("role") == "effect":
                self._set(m.version_feature_drift_score, _value(row.get("statistic")), model, version, feature,
                          method, guarded=True)  # fmt: skip
        elif kind == "dataset_drift":
            self._set(m.version_window_records, float(row.get("n_current") or 0), model, version)
            self._set(m.version_drifted_features, float(len(detail.get("drifted") or ())), model, version)
        elif kind == "prediction_drift":
            self._set(m.version_prediction_drift, drift, model, version)
        elif kind == "quality":
            self._set(m.version_quality_breach, drift, model, version, feature, method, guarded=True)

    def _set(self, family: Gauge, value: float, model: str, version: str, *rest: str, guarded: bool = False) -> None:
        """Set one series and remember it; per-feature families go through the series cap."""
        labels = (model, version, *rest)
        child = self.metrics.guard.labels(family, *labels) if guarded else family.labels(*labels)
        if child is not None:
            child.set(value)
            self.metrics.version_series.add(model, version, family, labels)

    def _bound(self, model: str, known: ActiveVersions | None) -> None:
        """Remove the series of the versions past the bound (see the module docstring)."""
        if known is None:
            return
        series = self.metrics.version_series
        shown = series.versions(model)  # least recently set first
        extra = len(shown) - known.max_active
        if extra <= 0:
            return
        gone = [v for v in shown if v not in known.active] + [v for v in shown if v in known.active]
        for version in gone[:extra]:
            for family, labels in series.take(model, version):
                try:
                    family.remove(*labels)
                except KeyError:  # removed already
                    pass
                self.metrics.guard.release(family, *labels)
