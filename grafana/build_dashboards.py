"""Writes grafana/dashboards/*.json: the dashboards are defined here, in one place.

    python grafana/build_dashboards.py          # rewrite the JSON files
    python grafana/build_dashboards.py --check  # exit 1 if a file differs from this module

Every expression uses only metric families from monitor/metrics.py
(tests/grafana/test_dashboards.py checks names and labels, validates the JSON against
grafana/schema/dashboard.schema.json and runs every expression against a real Prometheus).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from a checkout: the project's packages
    sys.path.insert(0, str(HERE.parent))

from alerts.prometheus_rules import RUNBOOK_BASE, alerts, runbook_url  # noqa: E402  (after the path)

DASHBOARDS = HERE / "dashboards"
SCHEMA_VERSION = 41  # Grafana 11/12 dashboards; Grafana migrates older ones on load
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# Detector defaults (README.md, Detection), drawn as thresholds; the textbox variables
# below override them where a deployment configured other values.
ALPHA = 0.05
MIN_EFFECT_NUMERIC = 0.1
DATASET_DRIFT_SHARE = 0.5
LATENCY_SLO_SECONDS = 0.1


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new row."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {"type": "row", "title": title, "id": self._id(), "collapsed": False, "panels": [],
                 "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}}  # fmt: skip
        self.y += 1
        return panel

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
                         "range": not instant, "instant": instant, "editorMode": "code"}  # fmt: skip
    if table:
        t["format"] = "table"
    return t


def thresholds(*steps: tuple[str, float | None, str | None]) -> dict[str, Any]:
    out = []
    for color, value, expr in steps:
        step: dict[str, Any] = {"color": color, "value": value}
        if expr:
            step["valueExpr"] = expr  # Grafana >= 12.x resolves the variable; older ones use value
        out.append(step)
    return {"mode": "absolute", "steps": out}


def panel(layout: Layout, kind: str, title: str, targets: list[dict[str, Any]], *, w: int = 12, h: int = 8,
          unit: str = "short", description: str = "", threshold: dict[str, Any] | None = None,
          line: bool = False, custom: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
          min_: float | None = None, max_: float | None = None, mappings: list[dict[str, Any]] | None = None,
          ) -> dict[str, Any]:  # fmt: skip
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "palette-classic" if kind == "timeseries" else "thresholds"},
    }
    defaults["thresholds"] = threshold or thresholds(("green", None, None))
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if mappings:
        defaults["mappings"] = mappings
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never",
                              "spanNulls": False,
                              "thresholdsStyle": {"mode": "line+area" if line else "off"}, **(custom or {})}  # fmt: skip
    opts: dict[str, Any] = {}
    if kind == "timeseries":
        opts = {"legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["lastNotNull"]},
                "tooltip": {"mode": "multi", "sort": "desc"}}  # fmt: skip
    elif kind == "stat":
        opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background", "graphMode": "none", "textMode": "auto", "orientation": "auto"}  # fmt: skip
    elif kind == "bargauge":
        opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "orientation": "horizontal", "displayMode": "basic", "valueMode": "color", "showUnfilled": True,
                "namePlacement": "left", "sizing": "auto", "minVizHeight": 16, "minVizWidth": 8,
                "maxVizHeight": 300}  # fmt: skip
    elif kind == "table":
        opts = {"showHeader": True, "cellHeight": "sm"}
    opts.update(options or {})
    p: dict[str, Any] = {
        "type": kind, "title": title, "id": layout._id(), "datasource": DS, "gridPos": layout.place(w, h),
        "fieldConfig": {"defaults": defaults, "overrides": []}, "options": opts, "targets": targets,
    }  # fmt: skip
    if description:
        p["description"] = description
    if kind == "table":
        p["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True,
                                                                               "job": True, "instance": True}}}]  # fmt: skip
    return p


FLAG = [{"type": "value", "options": {"0": {"text": "ok", "color": "green"}, "1": {"text": "DRIFT", "color": "red"}}}]
RED_AT_1 = thresholds(("green", None, None), ("red", 1, None))
# A gauge that is NaN by design (no sample to judge): said in words, not drawn as "NaN".
NO_PAIRS = {"type": "special", "options": {"match": "nan", "result": {"text": "no shared ids", "color": "text"}}}


def ds_variable() -> dict[str, Any]:
    return {"name": "DS_PROMETHEUS", "label": "Data source", "type": "datasource", "query": "prometheus",
            "hide": 0, "refresh": 1, "options": []}  # fmt: skip


def query_variable(name: str, label: str, query: str, *, multi: bool = False) -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name, "label": label, "type": "query", "datasource": DS, "definition": query,
        "query": {"query": query, "refId": f"{name}-query", "qryType": 1}, "refresh": 2, "sort": 1,
        "hide": 0, "options": [], "multi": multi, "includeAll": multi,
    }  # fmt: skip
    if multi:
        v["allValue"] = ".*"
    return v


def textbox(name: str, label: str, value: float | str, description: str) -> dict[str, Any]:
    text = str(value)
    return {"name": name, "label": label, "type": "textbox", "query": text, "description": description, "hide": 0,
            "current": {"text": text, "value": text}, "options": [{"selected": True, "text": text, "value": text}]}  # fmt: skip


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]],
              variables: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "uid": uid, "title": title, "description": description, "tags": ["model-monitor"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"}, "timezone": "browser", "refresh": "1m",
        "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": variables}, "links": links, "panels": panels,
    }  # fmt: skip


def runbooks_panel(layout: Layout) -> dict[str, Any]:
    """The Prometheus alerts of the shipped rules (alerts/prometheus_rules.py) that are
    pending or firing, by name, with a link to each alert's runbook in the panel's menu."""
    p = panel(
        layout,
        "table",
        "Prometheus alerts pending and firing (runbooks: panel links)",
        [target('ALERTS{alertname=~"Model.+|Monitor.+"}', instant=True, table=True)],
        w=8,
        description="The shipped Prometheus rules' alerts (monitor rules export), by alert name, model and "
        "feature; alertstate is pending until the rule's for: has passed. Each alert's runbook is linked "
        "from this panel's menu: the service's own page, $runbook_base/<alert>. The built-in engine's alerts: "
        "GET /v1/alerts.",
    )
    link = {"type": "link", "tags": [], "asDropdown": False, "includeVars": False, "keepTime": False,
            "targetBlank": True, "icon": "doc", "tooltip": ""}  # fmt: skip
    p["links"] = [
        {**link, "title": f"Runbook: {alert.name}", "url": runbook_url(alert.name, "${runbook_base}")}
        for alert in alerts()
    ]
    return p


def overview() -> dict[str, Any]:
    L = Layout()
    slo = "Dashed line: $latency_slo_seconds (a textbox variable; the service does not export each model's latency.slo_ms)."
    panels = [
        L.row("Traffic"),
        panel(
            L,
            "timeseries",
            "Records accepted per second",
            [target("sum by (model) (rate(monitor_records_accepted_total[$__rate_interval]))", "{{model}}")],
            unit="reqps",
            description="monitor_records_accepted_total: items that passed validation.",
        ),
        panel(
            L,
            "timeseries",
            "Records rejected per second, by reason",
            [
                target(
                    "sum by (model, reason) (rate(monitor_records_rejected_total[$__rate_interval]))",
                    "{{model}} {{reason}}",
                )
            ],
            unit="reqps",
            description="Rejected items are kept as dead letters: GET /v1/dead-letters?model=&reason=",
        ),
        panel(
            L,
            "stat",
            "Rejected share (5m)",
            [
                target(
                    "sum by (model) (rate(monitor_records_rejected_total[5m])) / "
                    "sum by (model) (rate(monitor_records_received_total[5m]))",
                    "{{model}}",
                    instant=True,
                )
            ],
            w=8,
            h=5,
            unit="percentunit",
            threshold=thresholds(("green", None, None), ("orange", 0.01, None), ("red", 0.05, None)),
            description="ModelIngestRejectsHigh fires over 5% for 10m.",
        ),
        panel(
            L,
            "stat",
            "Dead letters dropped (range)",
            [
                target(
                    "sum by (cause) (increase(monitor_dead_letters_dropped_total[$__range]))", "{{cause}}", instant=True
                )
            ],
            w=8,
            h=5,
            threshold=RED_AT_1,
        ),
        panel(
            L,
            "timeseries",
            "HTTP request duration p95, by route",
            [
                target(
                    "histogram_quantile(0.95, sum by (le, route) "
                    "(rate(monitor_http_request_duration_seconds_bucket[$__rate_interval])))",
                    "{{route}}",
                )
            ],
            w=8,
            h=5,
            unit="s",
        ),
        L.row("Model latency"),
        panel(
            L,
            "timeseries",
            "Model latency p50 / p95 / p99 (latest window)",
            [target("max by (model, q) (monitor_model_latency_seconds)", "{{model}} p{{q}}")],
            w=16,
            unit="s",
            line=True,
            description=slo,
            threshold=thresholds(("green", None, None), ("red", LATENCY_SLO_SECONDS, "$latency_slo_seconds")),
            custom={"thresholdsStyle": {"mode": "dashed"}},
        ),
        panel(
            L,
            "stat",
            "Latency SLO breached",
            [target("max by (model) (monitor_latency_slo_breach)", "{{model}}", instant=True)],
            w=8,
            threshold=RED_AT_1,
            mappings=[{"type": "value", "options": {"0": {"text": "ok"}, "1": {"text": "BREACH"}}}],
            description="1 when latency.quantile is over latency.slo_ms in the latest window.",
        ),
        L.row("Drift and data quality"),
        panel(
            L,
            "timeseries",
            "Dataset drift: share of features drifted",
            [target("max by (model) (monitor_dataset_drift_share)", "{{model}}")],
            w=8,
            unit="percentunit",
            min_=0,
            max_=1,
            line=True,
            threshold=thresholds(("green", None, None), ("red", DATASET_DRIFT_SHARE, "$dataset_drift_share")),
            custom={"thresholdsStyle": {"mode": "dashed"}, "drawStyle": "line", "lineInterpolation": "stepAfter"},
            description="Dashed line: drift.dataset_drift_share (default 0.5).",
        ),
        panel(
            L,
            "timeseries",
            "Drifted features",
            [target("max by (model) (monitor_drifted_features)", "{{model}}")],
            w=8,
            custom={"lineInterpolation": "stepAfter"},
            min_=0,
        ),
        panel(
            L,
            "stat",
            "Dataset drift now",
            [target("max by (model) (monitor_dataset_drift)", "{{model}}", instant=True)],
            w=8,
            threshold=RED_AT_1,
            mappings=FLAG,
        ),
        panel(
            L,
            "timeseries",
            "Data-quality checks in breach, by check",
            [target("sum by (model, check) (monitor_quality_breach)", "{{model}} {{check}}")],
            w=8,
            min_=0,
            custom={"lineInterpolation": "stepAfter"},
            description="Number of features over a quality.* threshold in the latest window.",
        ),
        panel(
            L,
            "table",
            "Data-quality breaches: failing ratio",
            [
                target(
                    "monitor_quality_ratio and on (model, feature, check) (monitor_quality_breach == 1)",
                    instant=True,
                    table=True,
                )
            ],
            w=16,
            unit="percentunit",
            description="Feature/check pairs over their threshold in the latest window (ModelDataQualityBreach).",
        ),
        L.row("Alerts and webhooks"),
        panel(
            L,
            "timeseries",
            "Alerts firing, by severity",
            [target("sum by (model, severity) (monitor_alerts_firing)", "{{model}} {{severity}}")],
            w=8,
            min_=0,
            custom={"lineInterpolation": "stepAfter"},
        ),
        panel(
            L,
            "timeseries",
            "Webhook deliveries, by outcome",
            [
                target(
                    "sum by (webhook, outcome) (increase(monitor_webhook_deliveries_total[$__rate_interval]))",
                    "{{webhook}} {{outcome}}",
                )
            ],
            w=8,
            min_=0,
            custom={"drawStyle": "bars", "fillOpacity": 60},
            description="delivered, failed_attempt (will retry), dead (gave up), suppressed (cooldown).",
        ),
        runbooks_panel(L),
        panel(
            L,
            "stat",
            "Webhook outbox pending",
            [target("max(monitor_webhook_outbox_pending)", "pending", instant=True)],
            w=8,
            threshold=thresholds(("green", None, None), ("orange", 1, None), ("red", 50, None)),
        ),
    ]
    variables = [
        ds_variable(),
        textbox("latency_slo_seconds", "Latency SLO (s)", LATENCY_SLO_SECONDS, "Drawn on the latency panel."),
        textbox("dataset_drift_share", "Dataset drift share", DATASET_DRIFT_SHARE, "drift.dataset_drift_share"),
        textbox(
            "runbook_base",
            "Runbooks",
            RUNBOOK_BASE,
            "The service's runbook pages as your browser reaches them, <service URL>/runbooks: the same "
            "links as monitor rules export --service-url",
        ),
    ]
    links = [{"title": "Model detail", "type": "dashboards", "tags": ["model-monitor"], "asDropdown": False,
              "includeVars": False, "keepTime": True, "targetBlank": False, "icon": "dashboard", "tooltip": "",
              "url": ""}]  # fmt: skip
    return dashboard("model-monitor-overview", "Model monitor: models overview",
                     "Every monitored model: traffic, rejects, latency, drift, data quality, alerts, webhooks.",
                     panels, variables, links)  # fmt: skip


def slices_row(layout: Layout, m: str) -> dict[str, Any]:
    """A collapsed row of the model's segment slices and versions (README "Segments",
    "Versions"): collapsed, as a model without ``segments:`` or ``versions:`` has none."""
    row = layout.row("Slices and versions (segments:, versions:)")
    results = "GET /v1/models/$model/results"
    row["collapsed"] = True
    row["panels"] = [
        panel(
            layout,
            "bargauge",
            "Drifted features per segment (latest window)",
            [target(f"monitor_segment_drifted_features{{{m}}}", "{{segment}}", instant=True)],
            w=8,
            min_=0,
            threshold=RED_AT_1,
            description="Features that drifted in each slice's latest window, against the slice's own reference "
            "rows (or the whole reference without them). Red in one slice while the whole population is green: a "
            "shift confined to that slice (a region's upstream feed, a device's client release). Which features: "
            f"/ui/segments?model=$model, or {results}?segment=<segment>. region:__other__ pools the values "
            "beyond segments.max_values.",
        ),
        panel(
            layout,
            "stat",
            "Prediction drift per segment",
            [target(f"monitor_segment_prediction_drift{{{m}}}", "{{segment}}", instant=True)],
            w=8,
            threshold=RED_AT_1,
            mappings=FLAG,
            description="DRIFT when a slice's predictions moved away from its reference's. With drifted features in "
            "the same slice the inputs moved and the model follows them; without, the model behaves differently "
            "there on the same inputs: watch that slice's performance (next panel) as its labels arrive. "
            f"{results}?segment=<segment>&kind=prediction_drift.",
        ),
        panel(
            layout,
            "timeseries",
            "Segment performance, by metric",
            [target(f"monitor_segment_performance{{{m}}}", "{{segment}} {{metric}}")],
            w=8,
            custom={"lineInterpolation": "stepAfter"},
            description="Each slice's latest labelled window (accuracy, roc_auc, f1, ...; mae, rmse). Slices "
            "differ by nature: compare a slice with its own past, not with the others. A drop past "
            "performance.max_drop from the slice's reference metrics fires performance_drop rules with segments:; "
            f"{results}?segment=<segment>&kind=performance says against which reference.",
        ),
        panel(
            layout,
            "bargauge",
            "Drifted features per version (latest window)",
            [target(f"monitor_version_drifted_features{{{m}}}", "{{version}}", instant=True)],
            w=8,
            min_=0,
            threshold=RED_AT_1,
            description="Each version's latest window against the version's own reference (or the model's when it "
            "has none: PUT /v1/models/$model/versions/<v>/reference). Red for the new version only: the rollout "
            "changed what the model is fed, or its reference is missing; hold the rollout and open "
            f"/ui/versions?model=$model or {results}?version=<v>.",
        ),
        panel(
            layout,
            "stat",
            "Records in each version's latest window",
            [target(f"monitor_version_window_records{{{m}}}", "{{version}}", instant=True)],
            w=6,
            description="A version's windows close only as its own traffic comes, so a canary's gauges lag the "
            "whole population's. A version missing here has no closed window yet or was retired "
            "(versions.max_active): GET /v1/models/$model/versions.",
        ),
        panel(
            layout,
            "stat",
            "Challenger diverged from champion",
            [target(f"monitor_version_divergence{{{m}}}", instant=True)],
            w=5,
            threshold=RED_AT_1,
            mappings=[{"type": "value", "options": {"0": {"text": "ok"}, "1": {"text": "DIVERGED"}}}],
            description="DIVERGED when the challenger's predictions differed from the champion's over the latest "
            "whole-population window (the model's prediction-drift test and minimum effect). Red: do not promote "
            f"the challenger until the difference is understood; {results}?kind=version_divergence has the "
            "p-value, the effect and the agreement.",
        ),
        panel(
            layout,
            "stat",
            "Champion / challenger agreement",
            [target(f"monitor_version_agreement_ratio{{{m}}}", instant=True)],
            w=5,
            unit="percentunit",
            min_=0,
            max_=1,
            mappings=[NO_PAIRS],
            description="Share of the ids both versions scored in the latest window (shadow traffic) on which they "
            "agreed: the same class, the same side of performance.threshold, or within "
            "versions.agreement_tolerance. 'no shared ids' when no request went to both.",
        ),
    ]
    return row


def detail() -> dict[str, Any]:
    L = Layout()
    m = 'model="$model"'
    mf = 'model="$model", feature=~"$feature"'
    panels = [
        L.row("Latest window"),
        panel(
            L,
            "stat",
            "Dataset drift share",
            [target(f"monitor_dataset_drift_share{{{m}}}", instant=True)],
            w=4,
            h=4,
            unit="percentunit",
            threshold=thresholds(("green", None, None), ("red", DATASET_DRIFT_SHARE, "$dataset_drift_share")),
        ),
        panel(
            L,
            "stat",
            "Drifted features",
            [target(f"monitor_drifted_features{{{m}}}", instant=True)],
            w=4,
            h=4,
            threshold=RED_AT_1,
        ),
        panel(
            L,
            "stat",
            "Prediction drift",
            [target(f"monitor_prediction_drift{{{m}}}", instant=True)],
            w=4,
            h=4,
            threshold=RED_AT_1,
            mappings=FLAG,
        ),
        panel(
            L,
            "stat",
            "Alerts firing",
            [target(f"sum by (severity) (monitor_alerts_firing{{{m}}})", "{{severity}}", instant=True)],
            w=4,
            h=4,
            threshold=RED_AT_1,
        ),
        panel(
            L, "stat", "Records in latest window", [target(f"monitor_window_records{{{m}}}", instant=True)], w=4, h=4
        ),
        panel(L, "stat", "Reference version", [target(f"monitor_reference_version{{{m}}}", instant=True)], w=4, h=4),
        L.row("Feature drift ($feature)"),
        panel(
            L,
            "timeseries",
            "Feature drift score (effect size)",
            [target(f"monitor_feature_drift_score{{{mf}}}", "{{feature}} ({{method}})")],
            line=True,
            custom={"thresholdsStyle": {"mode": "dashed"}, "lineInterpolation": "stepAfter"},
            threshold=thresholds(("green", None, None), ("red", MIN_EFFECT_NUMERIC, "$min_effect")),
            description="Wasserstein distance in reference SDs (numeric) or Jensen-Shannon distance (categorical). "
            "Dashed: $min_effect (drift.min_effect_numeric, 0.1; categorical default 0.045).",
        ),
        panel(
            L,
            "timeseries",
            "Feature drift p-value (BH-adjusted)",
            [target(f"monitor_feature_drift_pvalue{{{mf}}}", "{{feature}} ({{method}})")],
            line=True,
            threshold=thresholds(("red", None, None), ("green", ALPHA, "$alpha")),
            custom={
                "thresholdsStyle": {"mode": "dashed"},
                "lineInterpolation": "stepAfter",
                "scaleDistribution": {"type": "log", "log": 10},
            },
            description="Under the dashed line ($alpha, drift.alpha) the test is significant; a feature drifts "
            "when it is significant AND its effect is over the minimum.",
        ),
        panel(
            L,
            "timeseries",
            "Feature drift flags (all features)",
            [target(f"monitor_feature_drift{{{m}}}", "{{feature}}")],
            w=12,
            min_=0,
            max_=1,
            custom={"lineInterpolation": "stepAfter", "fillOpacity": 20},
        ),
        panel(
            L,
            "table",
            "Feature drift now",
            [
                target(f"monitor_feature_drift{{{m}}}", ref="A", instant=True, table=True),
                target(f"monitor_feature_drift_score{{{m}}}", ref="B", instant=True, table=True),
                target(f"monitor_feature_drift_pvalue{{{m}}}", ref="C", instant=True, table=True),
            ],
            w=12,
            description="Drift flag (A), effect size (B) and adjusted p-value (C) per feature.",
        ),
        L.row("Data quality ($feature)"),
        panel(
            L,
            "timeseries",
            "Quality ratio by feature and check",
            [target(f"monitor_quality_ratio{{{mf}}}", "{{feature}} {{check}}")],
            unit="percentunit",
            min_=0,
            custom={"lineInterpolation": "stepAfter"},
            description="Share of the window's records failing out_of_range, null_increase, non_finite, "
            "wrong_type or unseen.",
        ),
        panel(
            L,
            "table",
            "Quality checks in breach",
            [
                target(
                    f"monitor_quality_ratio{{{m}}} and on (model, feature, check) (monitor_quality_breach{{{m}}} == 1)",
                    instant=True,
                    table=True,
                )
            ],
            unit="percentunit",
        ),
        L.row("Predictions and performance"),
        panel(
            L,
            "timeseries",
            "Prediction drift score and p-value",
            [
                target(f"monitor_prediction_drift_score{{{m}}}", "score ({{method}})", ref="A"),
                target(f"monitor_prediction_drift_pvalue{{{m}}}", "p-value ({{method}})", ref="B"),
            ],
            w=8,
            custom={"lineInterpolation": "stepAfter"},
        ),
        panel(
            L,
            "timeseries",
            "Performance (latest labelled window)",
            [target(f"monitor_performance{{{m}}}", "{{metric}}")],
            w=8,
            custom={"lineInterpolation": "stepAfter"},
            description="accuracy, precision, recall, f1, roc_auc (binary); mae, rmse (regression).",
        ),
        panel(
            L,
            "stat",
            "Performance degraded",
            [target(f"monitor_performance_degraded{{{m}}}", instant=True)],
            w=8,
            threshold=RED_AT_1,
            mappings=[{"type": "value", "options": {"0": {"text": "ok"}, "1": {"text": "DEGRADED"}}}],
        ),
        L.row("Traffic, joins and labels"),
        panel(
            L,
            "timeseries",
            "Records accepted / rejected per second",
            [
                target(
                    f"sum by (source) (rate(monitor_records_accepted_total{{{m}}}[$__rate_interval]))",
                    "accepted {{source}}",
                    ref="A",
                ),
                target(
                    f"sum by (reason) (rate(monitor_records_rejected_total{{{m}}}[$__rate_interval]))",
                    "rejected {{reason}}",
                    ref="B",
                ),
            ],
            w=8,
            unit="reqps",
        ),
        panel(
            L,
            "timeseries",
            "Model latency quantiles",
            [target(f"monitor_model_latency_seconds{{{m}}}", "p{{q}}")],
            w=8,
            unit="s",
            line=True,
            custom={"thresholdsStyle": {"mode": "dashed"}},
            threshold=thresholds(("green", None, None), ("red", LATENCY_SLO_SECONDS, "$latency_slo_seconds")),
        ),
        panel(
            L,
            "timeseries",
            "Windows evaluated",
            [target(f"sum by (kind) (increase(monitor_windows_evaluated_total{{{m}}}[$__rate_interval]))", "{{kind}}")],
            w=8,
            custom={"drawStyle": "bars", "fillOpacity": 60},
        ),
        panel(
            L,
            "timeseries",
            "Join health per second",
            [
                target(
                    f"sum by (missing) (rate(monitor_join_incomplete_total{{{m}}}[$__rate_interval]))",
                    "incomplete, missing {{missing}}",
                    ref="A",
                ),
                target(
                    f"sum by (cause) (rate(monitor_join_evicted_total{{{m}}}[$__rate_interval]))",
                    "evicted ({{cause}})",
                    ref="B",
                ),
                target(f"rate(monitor_records_duplicate_total{{{m}}}[$__rate_interval])", "duplicates", ref="C"),
                target(f"rate(monitor_records_joined_total{{{m}}}[$__rate_interval])", "joined", ref="D"),
            ],
            w=8,
            unit="reqps",
            description="Partial records that never met their counterpart (incomplete) or were pushed out of the "
            "full join buffer (evicted).",
        ),
        panel(
            L,
            "timeseries",
            "Label health per second",
            [
                target(f"rate(monitor_labels_joined_total{{{m}}}[$__rate_interval])", "labels joined", ref="A"),
                target(f"rate(monitor_labels_unmatched_total{{{m}}}[$__rate_interval])", "labels unmatched", ref="B"),
                target(
                    f"sum by (cause) (rate(monitor_label_buffer_evicted_total{{{m}}}[$__rate_interval]))",
                    "predictions evicted unlabelled ({{cause}})",
                    ref="C",
                ),
            ],
            w=8,
            unit="reqps",
        ),
        panel(
            L,
            "timeseries",
            "Buffers (all models)",
            [
                target("monitor_join_buffer_records", "join buffer", ref="A"),
                target("monitor_label_buffer_records", "label buffer", ref="B"),
            ],
            w=8,
        ),
        L.row("Kafka (all topics of this instance)"),
        panel(
            L,
            "timeseries",
            "Kafka consumer lag",
            [target("monitor_kafka_consumer_lag", "{{topic}}/{{partition}}", ref="A")],
            w=8,
            description="Messages not yet consumed, per assigned partition. Growing lag: the monitor cannot keep "
            "up (add instances to the group) or is stuck (see monitor_kafka_connected).",
        ),
        panel(
            L,
            "timeseries",
            "Kafka records per second",
            [
                target(
                    f'rate(monitor_records_accepted_total{{{m}, source="kafka"}}[$__rate_interval])',
                    "accepted",
                    ref="A",
                ),
                # Every model: a message too broken to name its model counts under _unknown.
                target(
                    'sum by (reason) (rate(monitor_records_rejected_total{source="kafka"}[$__rate_interval]))',
                    "rejected {{reason}}",
                    ref="B",
                ),
                target("rate(monitor_kafka_messages_total[$__rate_interval])", "messages {{topic}}", ref="C"),
            ],  # fmt: skip
            w=8,
            unit="reqps",
        ),
        panel(
            L,
            "timeseries",
            "Kafka broker and checkpoints",
            [
                target("monitor_kafka_connected", "connected", ref="A"),
                target(
                    'rate(monitor_kafka_checkpoints_total{outcome="written"}[$__rate_interval])',
                    "checkpoints/s",
                    ref="B",
                ),
            ],  # fmt: skip
            w=8,
        ),
        slices_row(L, m),
    ]
    variables = [
        ds_variable(),
        query_variable("model", "Model", "label_values(monitor_records_accepted_total, model)"),
        query_variable(
            "feature", "Feature", 'label_values(monitor_feature_drift{model="$model"}, feature)', multi=True
        ),
        textbox("alpha", "alpha", ALPHA, "drift.alpha: drawn on the p-value panel."),
        textbox("min_effect", "Min effect", MIN_EFFECT_NUMERIC, "drift.min_effect_numeric: drawn on the score panel."),
        textbox("dataset_drift_share", "Dataset drift share", DATASET_DRIFT_SHARE, "drift.dataset_drift_share"),
        textbox("latency_slo_seconds", "Latency SLO (s)", LATENCY_SLO_SECONDS, "latency.slo_ms / 1000"),
    ]
    links = [{"title": "Models overview", "type": "link", "url": "/d/model-monitor-overview", "icon": "dashboard",
              "asDropdown": False, "includeVars": False, "keepTime": True, "targetBlank": False, "tooltip": "",
              "tags": []}]  # fmt: skip
    return dashboard("model-monitor-detail", "Model monitor: model detail",
                     "One model: feature drift with thresholds, data quality, prediction drift, performance, "
                     "joins and labels, Kafka consumption, segment slices and model versions.",
                     panels, variables, links)  # fmt: skip


DASHBOARD_FILES = {"models-overview.json": overview, "model-detail.json": detail}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, build in DASHBOARD_FILES.items():
        path = DASHBOARDS / name
        text = render(build)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            DASHBOARDS.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run python grafana/build_dashboards.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
