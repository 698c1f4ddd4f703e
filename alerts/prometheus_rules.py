"""Prometheus alerting rules on the metrics of :mod:`monitor.metrics`, built as data and rendered as YAML.

For teams that alert from Prometheus and Alertmanager. ``monitor rules export`` prints
:func:`render`; the shipped ``alerts/prometheus/monitor-alerts.yml`` is its output (a test keeps
them equal) and ``alerts/prometheus/monitor-alerts_test.yml`` unit-tests every alert with
``promtool test rules``. To change a rule, edit this module, re-export the shipped file
and update the unit tests.

Windows and ``for:``. The detector gauges (``monitor_feature_drift`` ...) hold the verdict
of each model's *latest* window until the next window replaces it, and Prometheus samples
them at every scrape, so ``for:`` counts wall time, not windows: ``for: 30m`` fires when
every window that was the latest during 30 minutes said "drift". With windows closing
every 5 minutes that is 6 consecutive drifted windows; one clean window in between resets
it. A window longer than ``for:`` fires alone once it has been the latest for that long.
To require N windows without editing this module: ``monitor rules export --window-period
5m --for-windows N`` sets the ``for:`` of these result alerts to N x the window period
(:func:`windows_for`). (The service's own alert engine, :mod:`alerts.engine`, counts
windows exactly.)

Counter ratios are per model over all sources, so one noisy source does not page per
source and a model with several sources is judged as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

# Where each alert's runbook lives: the service serves one page per alert at
# /runbooks/<AlertName> (monitor/api/runbooks.py), so a link opens wherever the service runs.
# The default is the service at its default address (server.host/port); `monitor rules export
# --service-url URL` points the links at the service as people reach it, `--runbook-base URL`
# at any other place with a page per alert (a wiki).
SERVICE_URL = "http://127.0.0.1:8000"
RUNBOOKS_PATH = "/runbooks"
RUNBOOK_BASE = SERVICE_URL + RUNBOOKS_PATH
GROUP = "monitor"
# Unknown-model traffic counts under this label value (monitor.metrics.UNKNOWN_MODEL); it is
# not a model, so "no traffic" makes no sense for it. Kept literal: this module renders text.
UNKNOWN_MODEL = "_unknown"

# Durations and thresholds. Drift is judged per window and a window can be noisy: wait for
# several windows. Data quality usually means a broken upstream: sooner. Latency and
# performance gauges change only when a window closes: the `for:` only rides out a restart.
DRIFT_FOR = "30m"
QUALITY_FOR = "15m"
LATENCY_FOR = "10m"
PERFORMANCE_FOR = "15m"
REJECTS_SHARE, REJECTS_RANGE, REJECTS_FOR = 0.05, "5m", "10m"
# No increase over NO_TRAFFIC_RANGE, held for NO_TRAFFIC_FOR: silent for their sum (15m).
NO_TRAFFIC_RANGE, NO_TRAFFIC_FOR, NO_TRAFFIC_TOTAL = "10m", "5m", "15m"
JOIN_INCOMPLETE_SHARE, JOIN_RANGE, JOIN_FOR = 0.05, "10m", "15m"
# Labels often arrive in batches (hourly, daily): a long range keeps a batch's share
# visible after it landed instead of flapping between batches.
LABELS_UNMATCHED_SHARE, LABELS_RANGE, LABELS_FOR = 0.10, "1h", "15m"
DEAD_LETTERS_RANGE = "10m"

# Alertmanager template snippets used in the annotations.
MODEL = "{{ $labels.model }}"
FEATURE = "{{ $labels.feature }}"
CHECK = "{{ $labels.check }}"
SEGMENT = "{{ $labels.segment }}"
VERSION = "{{ $labels.version }}"
PERCENT = "{{ $value | humanizePercentage }}"

Severity = Literal["warning", "critical"]


@dataclass(frozen=True)
class Alert:
    """One alerting rule; ``for_`` is a Prometheus duration ("30m")."""

    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str

    def rule(self, runbook_base: str = RUNBOOK_BASE) -> dict[str, Any]:
        """The rule as Prometheus expects it, keys in the conventional order."""
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": runbook_url(self.name, runbook_base),
            },
        }


def runbook_url(alert: str, runbook_base: str = RUNBOOK_BASE) -> str:
    """The page of ``alert``'s runbook under ``runbook_base`` (the service's ``/runbooks``)."""
    return f"{runbook_base.rstrip('/')}/{alert}"


def runbook_base(service_url: str) -> str:
    """The runbooks of the service at ``service_url`` ("https://monitor.example.com/ml/")."""
    return service_url.rstrip("/") + RUNBOOKS_PATH


def _rate_by_model(counter: str, range_: str) -> str:
    return f"sum by (model) (rate({counter}[{range_}]))"


def _share(part: str, rest: str, range_: str) -> str:
    """part / (part + rest) per model, over ``range_``.

    A model with ``part`` but no ``rest`` series at all (e.g. nothing ever joined, the worst
    case) would vanish from a plain ``part + rest``: ``or 0 * part`` stands in a zero for it.
    """
    p, r = _rate_by_model(part, range_), _rate_by_model(rest, range_)
    return f"{p}\n/\n(\n  {p}\n  + ({r} or 0 * {p})\n)"


_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def duration_seconds(text: str) -> int:
    """Seconds of a Prometheus duration in whole seconds ("5m", "1h30m", "90s"); ValueError
    naming the value otherwise."""
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a Prometheus duration such as 5m, 1h or 90s: {text!r}")
    return sum(int(n) * unit for n, unit in zip(match.groups(), _UNITS.values(), strict=True) if n)


def duration_text(seconds: int) -> str:
    """A whole number of seconds as a Prometheus duration: 1800 -> "30m", 5400 -> "1h30m"."""
    parts = []
    for unit, size in (("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def windows_for(window_period: str, for_windows: int) -> str:
    """The ``for:`` that holds ``for_windows`` windows closing every ``window_period``: the
    latest window's gauge must say "breach" for that long (see the module docstring)."""
    if isinstance(for_windows, bool) or not isinstance(for_windows, int) or for_windows < 1:
        raise ValueError(f"for_windows must be an integer >= 1, got {for_windows!r}")
    period = duration_seconds(window_period)
    if period == 0:
        raise ValueError(f"the window period must be longer than 0s, got {window_period!r}")
    return duration_text(period * for_windows)


def alerts(result_for: str | None = None) -> list[Alert]:
    """Every shipped alert, in file order. ``result_for``: the ``for:`` of every alert on a
    detector verdict (drift, quality, latency, performance) instead of the defaults above."""
    return [*_result_alerts(result_for), *_ingestion_alerts()]


def _result_alerts(result_for: str | None = None) -> list[Alert]:
    """On the detectors' verdicts: drift, data quality, latency, performance."""
    drift_for, quality_for, latency_for, performance_for = (
        (result_for,) * 4 if result_for else (DRIFT_FOR, QUALITY_FOR, LATENCY_FOR, PERFORMANCE_FOR)
    )
    return [
        Alert(
            "ModelFeatureDrift",
            "monitor_feature_drift == 1",
            drift_for,
            "warning",
            f"Feature {FEATURE} of model {MODEL} drifted",
            f"Feature {FEATURE} of model {MODEL} has differed from the model's reference (significant test and "
            f"effect size over the minimum) in every window evaluated for {drift_for}. "
            f"Scores: GET /v1/models/{MODEL}/results?kind=feature_drift&feature={FEATURE}",
        ),
        Alert(
            "ModelDatasetDrift",
            # The share as the value: "62.5% of the features" says more than "1".
            "monitor_dataset_drift_share and on (model) (monitor_dataset_drift == 1)",
            drift_for,
            "critical",
            f"Model {MODEL}: {PERCENT} of its features drifted",
            f"{PERCENT} of the features of model {MODEL} drifted in the latest window, at or over "
            f"drift.dataset_drift_share, in every window evaluated for {drift_for}. "
            f"The model sees data unlike its reference: consider retraining. "
            f"Scores: GET /v1/models/{MODEL}/results?kind=dataset_drift",
        ),
        Alert(
            "ModelPredictionDrift",
            "monitor_prediction_drift == 1",
            drift_for,
            "warning",
            f"Predictions of model {MODEL} drifted",
            f"The distribution of the predictions of model {MODEL} has differed from the reference's in every "
            f"window evaluated for {drift_for}. Scores: GET /v1/models/{MODEL}/results?kind=prediction_drift",
        ),
        Alert(
            "ModelDataQualityBreach",
            "monitor_quality_ratio and on (model, feature, check) (monitor_quality_breach == 1)",
            quality_for,
            "warning",
            f"Model {MODEL}: {PERCENT} of the records fail the {CHECK} check on {FEATURE}",
            f"{PERCENT} of the records of model {MODEL} in the latest window fail the {CHECK} check on "
            f"{FEATURE}, over its quality.{CHECK} threshold, in every window evaluated for {quality_for}. "
            f"Details: GET /v1/models/{MODEL}/results?kind=quality&feature={FEATURE}",
        ),
        Alert(
            "ModelLatencySLOBreach",
            "monitor_latency_slo_breach == 1",
            latency_for,
            "critical",
            f"Model {MODEL} is over its latency SLO",
            f"The configured quantile (latency.quantile) of the latency of model {MODEL} has been over latency.slo_ms in every "
            f"window evaluated for {latency_for}. Quantiles: monitor_model_latency_seconds, or "
            f"GET /v1/models/{MODEL}/results?kind=latency",
        ),
        Alert(
            "ModelPerformanceDegraded",
            "monitor_performance_degraded == 1",
            performance_for,
            "critical",
            f"Performance of model {MODEL} degraded",
            f"Accuracy or ROC AUC of model {MODEL} in the latest labelled window is more than "
            f"performance.max_drop below the reference's, for {performance_for}. "
            f"Figures: GET /v1/models/{MODEL}/results?kind=performance",
        ),
        *_segment_alerts(drift_for),
        *_version_alerts(drift_for),
    ]


def _segment_alerts(drift_for: str) -> list[Alert]:
    """One alert per slice (README "Segments"): the ``segment`` label is bounded, at most
    keys x (segments.max_values + 1) values a model, so these stay as few as the slices. A
    slice's tests already run at alpha / (slices of its key) (Bonferroni), so the slices of a
    key together page no more often than the whole population would by chance."""
    return [
        Alert(
            "ModelSegmentFeatureDrift",
            "monitor_segment_feature_drift == 1",
            drift_for,
            "warning",
            f"Feature {FEATURE} of model {MODEL} drifted in segment {SEGMENT}",
            f"Feature {FEATURE} of model {MODEL} has differed, in the traffic of segment {SEGMENT}, from that "
            f"segment's slice of the reference (or the whole reference when the slice is too small) in every "
            f"window evaluated for {drift_for}. "
            f"Scores: GET /v1/models/{MODEL}/results?kind=feature_drift&feature={FEATURE}&segment={SEGMENT}",
        ),
        Alert(
            "ModelSegmentPredictionDrift",
            "monitor_segment_prediction_drift == 1",
            drift_for,
            "warning",
            f"Predictions of model {MODEL} drifted in segment {SEGMENT}",
            f"The distribution of the predictions of model {MODEL} in segment {SEGMENT} has differed from "
            f"the reference's in every window evaluated for {drift_for}. "
            f"Scores: GET /v1/models/{MODEL}/results?kind=prediction_drift&segment={SEGMENT}",
        ),
    ]


def _version_alerts(drift_for: str) -> list[Alert]:
    """One alert per model version (README "Versions"): the ``version`` label is bounded, at
    most versions.max_active values a model (a retired version's series are removed)."""
    return [
        Alert(
            "ModelVersionFeatureDrift",
            "monitor_version_feature_drift == 1",
            drift_for,
            "warning",
            f"Feature {FEATURE} of model {MODEL} drifted in version {VERSION}",
            f"Feature {FEATURE} of model {MODEL} has differed, in the traffic of model version {VERSION}, from "
            f"that version's reference (or the model's when the version has none) in every window evaluated for "
            f"{drift_for}. Scores: GET /v1/models/{MODEL}/results?kind=feature_drift&feature={FEATURE}&version={VERSION}",
        ),
        Alert(
            "ModelVersionPredictionDrift",
            "monitor_version_prediction_drift == 1",
            drift_for,
            "warning",
            f"Predictions of model {MODEL} drifted in version {VERSION}",
            f"The distribution of the predictions of model {MODEL} version {VERSION} has differed from that "
            f"version's reference (or the model's) in every window evaluated for {drift_for}. "
            f"Scores: GET /v1/models/{MODEL}/results?kind=prediction_drift&version={VERSION}",
        ),
    ]


def _ingestion_alerts() -> list[Alert]:
    """On the traffic itself: rejects, silence, joins, labels, lost dead letters."""
    return [
        Alert(
            "ModelIngestRejectsHigh",
            f"{_rate_by_model('monitor_records_rejected_total', REJECTS_RANGE)}\n/\n"
            f"{_rate_by_model('monitor_records_received_total', REJECTS_RANGE)}\n> {REJECTS_SHARE:g}",
            REJECTS_FOR,
            "warning",
            f"Model {MODEL}: {PERCENT} of the items received are rejected",
            f"{PERCENT} of the items received for model {MODEL} over the last {REJECTS_RANGE} failed validation "
            f"(over {REJECTS_SHARE:.0%} for {REJECTS_FOR}). They are kept as dead letters; "
            f"monitor_records_rejected_total has the reasons.",
        ),
        Alert(
            "ModelNoTraffic",
            # The counter exists only once the model had traffic since the service started,
            # so a model that never sent anything does not fire.
            f'sum by (model) (increase(monitor_records_accepted_total{{model!="{UNKNOWN_MODEL}"}}'
            f"[{NO_TRAFFIC_RANGE}])) == 0",
            NO_TRAFFIC_FOR,
            "critical",
            f"Model {MODEL} has had no traffic for {NO_TRAFFIC_TOTAL}",
            f"No record of model {MODEL} was accepted for {NO_TRAFFIC_TOTAL}, though it had traffic before: "
            f"the model server, its payload logger or the path to this service is down, "
            f"and the model is not monitored meanwhile.",
        ),
        Alert(
            "ModelJoinIncompleteHigh",
            f"{_share('monitor_join_incomplete_total', 'monitor_records_joined_total', JOIN_RANGE)}\n"
            f"> {JOIN_INCOMPLETE_SHARE:g}",
            JOIN_FOR,
            "warning",
            f"Model {MODEL}: {PERCENT} of the joins are incomplete",
            f"{PERCENT} of the records of model {MODEL} over the last {JOIN_RANGE} left the join buffer without "
            f"their counterpart (inputs or prediction; see the missing label of monitor_join_incomplete_total), "
            f"over {JOIN_INCOMPLETE_SHARE:.0%} for {JOIN_FOR}. The detectors see only joined records.",
        ),
        Alert(
            "ModelLabelsUnmatchedHigh",
            f"{_share('monitor_labels_unmatched_total', 'monitor_labels_joined_total', LABELS_RANGE)}\n"
            f"> {LABELS_UNMATCHED_SHARE:g}",
            LABELS_FOR,
            "warning",
            f"Model {MODEL}: {PERCENT} of the labels match no prediction",
            f"{PERCENT} of the labels received for model {MODEL} over the last {LABELS_RANGE} matched no "
            f"prediction (never seen, or already out of the label buffer), over {LABELS_UNMATCHED_SHARE:.0%} "
            f"for {LABELS_FOR}. Performance is computed from matched labels only.",
        ),
        Alert(
            "MonitorDeadLettersDropped",
            # Any loss is worth knowing about at once: no `for:`.
            f"sum by (cause) (increase(monitor_dead_letters_dropped_total[{DEAD_LETTERS_RANGE}])) > 0",
            "0m",
            "warning",
            "Dead letters are being dropped ({{ $labels.cause }})",
            f'About {{{{ $value | printf "%.0f" }}}} dead letters were dropped over the last {DEAD_LETTERS_RANGE} '
            "(cause {{ $labels.cause }}: row_limit = the table is at storage.dead_letter_max_rows, "
            "byte_limit = at storage.dead_letter_max_bytes, store_error = the store failed). "
            "The rejected items they held are gone.",
        ),
    ]


def rules(runbook_base: str = RUNBOOK_BASE, result_for: str | None = None) -> dict[str, Any]:
    """The rules file's content: one group, ``monitor``."""
    return {"groups": [{"name": GROUP, "rules": [alert.rule(runbook_base) for alert in alerts(result_for)]}]}


HEADER = """\
# Prometheus alerting rules for model-monitor's metrics (README.md, section Alerts).
# Generated by `monitor rules export` from alerts/prometheus_rules.py: edit that module and
# re-export (monitor rules export --output alerts/prometheus/monitor-alerts.yml), not this file.
# Unit tests: promtool test rules alerts/prometheus/monitor-alerts_test.yml
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer expressions) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(runbook_base: str = RUNBOOK_BASE, result_for: str | None = None) -> str:
    """The rules file as text: a header comment, then the YAML in insertion order."""
    body = yaml.dump(
        rules(runbook_base, result_for),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,  # never fold a long annotation over lines
    )
    return HEADER + body
