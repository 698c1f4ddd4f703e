"""Alert rules: their config model and how one published result becomes signals.

A rule names a *kind* of verdict (feature drift, dataset drift, prediction drift, data
quality, latency SLO, performance drop), the models and features it covers and how the
engine (:mod:`alerts.engine`) debounces it. :func:`signals` reads one result -- an
:class:`~detectors.evaluation.Evaluation` or a
:class:`~detectors.performance.PerformanceResult` -- and returns one :class:`Signal` per
(rule, model, feature) key the rule covers, ``feature`` being ``''`` for model-wide kinds.
A rule covers the whole population, or with ``segments:`` slices of it, or with
``versions:`` model versions' own windows; a slice's or version's key carries it
(``age@region:eu``, ``age@version:2``).

A verdict that could not be reached (an insufficient feature, a window without latencies,
performance without reference metrics) gives *no* signal: it is neither a breach nor a
clean window, so it can neither advance nor resolve an alert.

Before labels come (:data:`detectors.results.Estimate`): ``estimated_performance_drop``
breaches when a covered metric's CBPE estimate falls below its threshold (the reference
minus ``band`` sampling errors at the window's size: :mod:`detectors.estimation.cbpe`);
``multivariate_drift`` gives one signal per method (``feature`` = ``pca_reconstruction`` or
``domain_classifier``: each method its own alert), breaching when the method flags drift.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from alerts.selection import ALL, plain_name, selection
from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.multivariate import MultivariateDrift
from detectors.evaluation import Evaluation
from detectors.performance import METRICS, PerformanceResult
from detectors.quality import CHECKS
from detectors.results import Estimate, Result
from detectors.schema import channel_name
from detectors.versions import VersionDivergence

RuleKind = Literal[
    "feature_drift", "dataset_drift", "prediction_drift", "data_quality", "latency_slo", "performance_drop",
    "estimated_performance_drop", "multivariate_drift", "version_divergence",
]  # fmt: skip
Severity = Literal["info", "warning", "critical"]
KINDS: tuple[str, ...] = get_args(RuleKind)
SEVERITIES: tuple[str, ...] = get_args(Severity)
# Metrics with a drop (the bias, ``mean_error``, has none: see detectors.performance).
ALL_METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for ms in METRICS.values() for m in ms if m != "mean_error"))
# Rule names go into alert ids ("rule:model:feature:n") and URLs: keep them plain.
# Which optional keys make sense for which kinds; giving one elsewhere is a config error
# (it would be silently ignored otherwise).
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "features": ("feature_drift", "data_quality"),
    "checks": ("data_quality",),
    "min_share": ("dataset_drift",),
    "slo_ms": ("latency_slo",),
    "metrics": ("performance_drop", "estimated_performance_drop"),
    "max_drop": ("performance_drop",),
    "segments": (
        "feature_drift",
        "dataset_drift",
        "prediction_drift",
        "data_quality",
        "latency_slo",
        "performance_drop",
    ),
    "versions": ("feature_drift", "dataset_drift", "prediction_drift", "data_quality", "latency_slo"),
}


def _json_number(x: float | None) -> float | None:
    """Values travel as JSON (state, webhooks): NaN and infinities become None."""
    return None if x is None or not math.isfinite(x) else float(x)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _finite(name: str, value: Any, lo: float, hi: float = math.inf, *, open_lo: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lo or (open_lo and value == lo) or value > hi:
        bound = f"> {lo}" if open_lo else f">= {lo}"
        raise ValueError(
            f"{name} must be a finite number {bound}{'' if hi == math.inf else f' and <= {hi}'}, got {value!r}"
        )
    return float(value)


class AlertRuleConfig(BaseModel):
    """One alert rule (``alerts: rules: [...]`` in the YAML config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: RuleKind
    models: list[str] = [ALL]
    features: list[str] = [ALL]
    checks: list[str] = [ALL]
    severity: Severity = "warning"
    for_windows: int = 1
    resolve_windows: int = 1
    cooldown_seconds: float = 0.0
    min_share: float | None = None  # dataset_drift: breach at share >= min_share instead of the detector's flag
    slo_ms: float | None = None  # latency_slo: breach at value > slo_ms instead of the detector's SLO
    metrics: list[str] = [ALL]  # performance_drop: which metrics count (default: all)
    max_drop: float | None = None  # performance_drop: breach at drop > max_drop instead of the detector's limits
    # Segment results (detectors.segments) this rule covers: "region:eu" or "region:*";
    # None (the default): the whole population only. A rule with segments covers only them.
    segments: list[str] | None = None
    # Model versions' own windows (monitor/version_state.py) this rule covers: "2", or "*" for
    # every version; None: the whole population only. A rule with versions covers only them.
    versions: list[str] | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _plain_name(cls, value: Any) -> Any:
        return plain_name(value)

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if value not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {value!r}")
        return value

    @field_validator("severity", mode="before")
    @classmethod
    def _known_severity(cls, value: Any) -> Any:
        if value not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {value!r}")
        return value

    @field_validator("models", "features", mode="before")
    @classmethod
    def _names(cls, value: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None  # set for every field validator
        return selection(info.field_name, value)

    @field_validator("checks", mode="before")
    @classmethod
    def _checks(cls, value: Any) -> Any:
        return selection("checks", value, CHECKS)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> Any:
        return selection("metrics", value, ALL_METRICS)

    @field_validator("segments", mode="before")
    @classmethod
    def _segments(cls, value: Any) -> Any:
        if value is None:
            return None
        for entry in selection("segments", value):
            key, sep, tag = entry.partition(":")
            if not (key and sep and tag) or key == ALL:
                raise ValueError(f"segments entries are 'key:value' or 'key:*' (e.g. 'region:eu'), got {entry!r}")
        return value

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        return None if value is None else selection("versions", value)

    @field_validator("for_windows", "resolve_windows", mode="before")
    @classmethod
    def _windows(cls, value: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None  # set for every field validator
        return _positive_int(info.field_name, value)

    @field_validator("cooldown_seconds", mode="before")
    @classmethod
    def _cooldown(cls, value: Any) -> Any:
        return _finite("cooldown_seconds", value, 0.0)

    @field_validator("min_share", mode="before")
    @classmethod
    def _share(cls, value: Any) -> Any:
        return None if value is None else _finite("min_share", value, 0.0, 1.0, open_lo=True)

    @field_validator("slo_ms", mode="before")
    @classmethod
    def _slo(cls, value: Any) -> Any:
        return None if value is None else _finite("slo_ms", value, 0.0, open_lo=True)

    @field_validator("max_drop", mode="before")
    @classmethod
    def _drop(cls, value: Any) -> Any:
        return None if value is None else _finite("max_drop", value, 0.0)

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> AlertRuleConfig:
        if self.segments is not None and self.versions is not None:
            raise ValueError(
                "segments and versions select different results (a slice's windows, a version's): give one, "
                f"got segments={self.segments!r} and versions={self.versions!r}"
            )
        for key, kinds in _KIND_KEYS.items():
            # Compared with the default (not "was it given") so a dumped rule validates again.
            if getattr(self, key) != type(self).model_fields[key].default and self.kind not in kinds:
                raise ValueError(
                    f"{key} applies only to kind {' or '.join(kinds)}, "
                    f"got {key}={getattr(self, key)!r} with kind={self.kind!r}"
                )
        return self

    def covers_model(self, model: str) -> bool:
        return self.models == [ALL] or model in self.models

    def covers_segment(self, segment: str) -> bool:
        """Whether results of ``segment`` ('' the whole population) are this rule's."""
        if self.segments is None or not segment:
            return self.segments is None and not segment
        key = segment.partition(":")[0]
        return segment in self.segments or f"{key}:{ALL}" in self.segments

    def covers_version(self, version: str) -> bool:
        """Whether results of model ``version``'s own windows ('' none: the whole population
        or a slice) are this rule's."""
        if self.versions is None or not version:
            return self.versions is None and not version
        return self.versions == [ALL] or version in self.versions


def validate_rules(rules: Iterable[AlertRuleConfig | Mapping[str, Any]]) -> list[AlertRuleConfig]:
    """Rules parsed (mappings are validated) and checked for duplicate names."""
    parsed = [r if isinstance(r, AlertRuleConfig) else AlertRuleConfig.model_validate(r) for r in rules]
    seen: set[str] = set()
    for rule in parsed:
        if rule.name in seen:
            raise ValueError(f"alert rule names must be unique, got {rule.name!r} twice")
        seen.add(rule.name)
    return parsed


@dataclass(frozen=True)
class Signal:
    """One rule's verdict on one key for one window. ``value`` is the number the rule
    looked at (an effect size, a share, a rate, a latency, a drop); None if undefined."""

    rule: str
    model: str
    feature: str
    breaching: bool
    value: float | None
    detail: Mapping[str, Any] = field(default_factory=dict)


def _wanted(selection: list[str], name: str) -> bool:
    return selection == [ALL] or name in selection


def signals(rule: AlertRuleConfig, model: str, result: Result | Estimate) -> list[Signal]:
    """The signals of ``rule`` for one result of ``model`` (see the module docstring)."""
    if not rule.covers_model(model):
        return []
    segment = getattr(result, "segment", "")
    if not rule.covers_segment(segment):
        return []
    version = getattr(result, "model_version", "")  # a version's own windows: rules with versions only
    if not rule.covers_version(version):
        return []
    if isinstance(result, PerformanceResult):
        return _performance(rule, model, result) if rule.kind == "performance_drop" else []
    if isinstance(result, VersionDivergence):
        return _divergence(rule, model, result) if rule.kind == "version_divergence" else []
    if isinstance(result, EstimatedPerformance | MultivariateDrift):
        return _estimate(rule, model, result)
    if rule.kind in ("performance_drop", "estimated_performance_drop", "multivariate_drift", "version_divergence"):
        return []
    out: list[tuple[str, bool, float | None, dict[str, Any]]] = []
    if rule.kind == "feature_drift":
        for f in result.drift.features:
            if _wanted(rule.features, f.feature) and not f.insufficient:
                out.append((f.feature, f.drift, *_drift_value(f)))
    elif rule.kind == "prediction_drift":
        p = result.prediction
        if p is not None and not p.insufficient:
            out.append(("", p.drift, *_drift_value(p)))
    elif rule.kind == "dataset_drift":
        d = result.drift
        if d.n_evaluated > 0:  # no feature could be tested: no verdict
            threshold = d.threshold if rule.min_share is None else rule.min_share
            breaching = d.dataset_drift if rule.min_share is None else d.share >= rule.min_share
            detail = {"n_drifted": d.n_drifted, "n_evaluated": d.n_evaluated, "threshold": threshold}
            out.append(("", breaching, _json_number(d.share), {**detail, "drifted": list(d.drifted_features)}))
    elif rule.kind == "data_quality":
        out.extend(_quality(rule, result))
    elif rule.kind == "latency_slo":
        lat = result.latency
        slo = rule.slo_ms if rule.slo_ms is not None else (None if lat is None else lat.slo_ms)
        if lat is not None and slo is not None and math.isfinite(lat.value):
            breaching = lat.breached if rule.slo_ms is None else lat.value > rule.slo_ms
            out.append(("", breaching, float(lat.value), {"slo_ms": slo, "quantile": lat.quantile, "n": lat.n}))
    if segment:  # one alert per slice: the key's feature carries it ("age@region:eu", "@region:eu")
        return [Signal(rule.name, model, slice_feature(f, segment), b, v,
                       {"kind": rule.kind, "segment": segment, "feature": f, **d})
                for f, b, v, d in out]  # fmt: skip
    if version:  # one alert per version, the same way ("age@version:2", "@version:2")
        return [Signal(rule.name, model, slice_feature(f, f"version:{version}"), b, v,
                       {"kind": rule.kind, "model_version": version, "feature": f, **d})
                for f, b, v, d in out]  # fmt: skip
    return [Signal(rule.name, model, f, b, v, {"kind": rule.kind, **d}) for f, b, v, d in out]


def _drift_value(f: Any) -> tuple[float | None, dict[str, Any]]:
    """A drift verdict's value is its effect size (the distance); the p-value goes in detail."""
    value = None if f.effect is None else _json_number(f.effect.statistic)
    detail = {
        "effect": None if f.effect is None else f.effect.method,
        "test": None if f.test is None else f.test.method,
        "pvalue": None if f.adjusted_pvalue is None else _json_number(f.adjusted_pvalue),
    }
    return value, detail


def _quality(rule: AlertRuleConfig, result: Evaluation) -> list[tuple[str, bool, float | None, dict[str, Any]]]:
    """One signal per channel: breaching if any covered check breached; clean only when
    every covered check of the channel was sufficient (an insufficient one might hide a breach)."""
    by_channel: dict[str, list[Any]] = {}
    for c in result.quality.checks:
        name = channel_name(c.channel)
        if _wanted(rule.features, name) and _wanted(rule.checks, c.check):
            by_channel.setdefault(name, []).append(c)
    out = []
    for name, checks in by_channel.items():
        breached = [c for c in checks if c.breached and not c.insufficient]
        if not breached and any(c.insufficient for c in checks):
            continue
        looked = breached or checks
        rates = [r for r in (_json_number(c.rate) for c in looked) if r is not None]
        detail = {
            "breached": [c.check for c in breached],
            "rates": {c.check: _json_number(c.rate) for c in checks},
            "thresholds": {c.check: _json_number(c.threshold) for c in checks},
        }
        out.append((name, bool(breached), max(rates) if rates else None, detail))
    return out


def _performance(rule: AlertRuleConfig, model: str, result: PerformanceResult) -> list[Signal]:
    """Model-wide: breaching if a covered metric dropped past its limit. Without reference
    metrics (``drop`` None) or with every covered drop undefined there is no verdict."""
    if result.drop is None:
        return []
    limits = dict(result.max_drop) if rule.max_drop is None else {m: rule.max_drop for m in result.drop}
    covered = {m: d for m, d in result.drop.items() if m in limits and _wanted(rule.metrics, m) and d is not None}
    if not covered:
        return []
    degraded = [m for m, d in covered.items() if d > limits[m]]
    worst = max(covered[m] for m in (degraded or covered))
    detail: dict[str, Any] = {
        "kind": rule.kind,
        "degraded": degraded,
        "drop": {m: _json_number(d) for m, d in covered.items()},
        "max_drop": {m: limits[m] for m in covered},
        "n": result.n,
    }
    feature = ""
    if result.segment:  # one alert per slice ("@region:eu"), compared with its own reference metrics
        feature = slice_feature("", result.segment)
        detail.update(segment=result.segment, reference_slice=result.reference_slice)
    return [Signal(rule.name, model, feature, bool(degraded), _json_number(worst), detail)]


# An alert's ``feature`` is stored in a String(256) column (monitor/store/tables.py,
# MODEL_NAME_LENGTH): PostgreSQL refuses longer text, and a slice's key, a feature name and
# a tag value (up to limits.max_string_length, 1,024 by default) can be longer together.
ALERT_FEATURE_LENGTH = 256
_DIGEST_CHARS = 16


def slice_feature(feature: str, segment: str) -> str:
    """The ``feature`` of a slice's alert: ``feature@key:value``, or, when that is over
    ALERT_FEATURE_LENGTH characters, its head and ``#`` plus the first 16 hex digits of
    its SHA-256 (so two long slices still get two alerts; the detail keeps both whole)."""
    key = f"{feature}@{segment}"
    if len(key) <= ALERT_FEATURE_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{key[: ALERT_FEATURE_LENGTH - _DIGEST_CHARS - 1]}#{digest}"


def _divergence(rule: AlertRuleConfig, model: str, result: VersionDivergence) -> list[Signal]:
    """Champion vs challenger (model-wide): breaching when their predictions diverge (the
    prediction-drift rule on the two); no verdict when either had too few predictions."""
    verdict = result.verdict
    if verdict.insufficient:
        return []
    value, detail = _drift_value(verdict)
    detail = {"kind": rule.kind, "champion": result.champion, "challenger": result.challenger,
              "agreement_rate": result.agreement_rate, "pairs": result.pairs, **detail}  # fmt: skip
    return [Signal(rule.name, model, "", verdict.drift, value, detail)]


def _estimate(rule: AlertRuleConfig, model: str, result: EstimatedPerformance | MultivariateDrift) -> list[Signal]:
    """An estimated performance (model-wide: breaching if a covered metric's estimate is
    under its threshold; no verdict when every covered estimate is undefined) or one
    multivariate method's verdict (keyed by the method)."""
    if isinstance(result, MultivariateDrift):
        if rule.kind != "multivariate_drift":
            return []
        detail: dict[str, Any] = {"kind": rule.kind, "lower": result.lower, "upper": result.upper, "n": result.n}
        return [Signal(rule.name, model, result.method, result.drift, _json_number(result.statistic), detail)]
    if rule.kind != "estimated_performance_drop":
        return []
    covered = {m: e for m, e in result.metrics.items() if _wanted(rule.metrics, m) and e.value is not None}
    if not covered:
        return []
    below = [m for m, e in covered.items() if e.alert]
    # The value is the largest shortfall from the reference among the metrics looked at.
    worst = max((e.reference or 0.0) - (e.value or 0.0) for m, e in covered.items() if not below or m in below)
    info: dict[str, Any] = {
        "kind": rule.kind,
        "degraded": below,
        "estimated": {m: e.value for m, e in covered.items()},
        "threshold": {m: e.threshold for m, e in covered.items()},
        "n": result.n,
    }
    return [Signal(rule.name, model, "", bool(below), _json_number(worst), info)]


__all__ = [
    "ALL",
    "KINDS",
    "SEVERITIES",
    "AlertRuleConfig",
    "Signal",
    "signals",
    "validate_rules",
]
