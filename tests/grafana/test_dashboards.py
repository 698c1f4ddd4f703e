"""The Grafana dashboards: valid against Grafana's published dashboard schema, every PromQL
expression uses only metric families (and their labels) from monitor/metrics.py, and every
panel returns data from a real Prometheus scraping a real service fed the car-loan data."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import orjson
import pandas as pd
import pytest
from kafka_broker import KafkaBroker
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from support import CAR_LOAN_FEATURES, ROOT, Receiver, ServiceProcess, config, free_port, wait_for

from monitor.metrics import Metrics

GRAFANA = ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
SCHEMA = json.loads((GRAFANA / "schema" / "dashboard.schema.json").read_text())
DATA = ROOT / "tests" / "data" / "car_loan"

# What Grafana substitutes, as the Prometheus test uses it.
VARIABLES = {
    "$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m", "${__range}": "5m",
    "$model": "car_loan", "${model}": "car_loan", "$feature": "car_value", "${feature}": "car_value",
}  # fmt: skip
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "inf", "nan"}  # fmt: skip


# -- the dashboards -------------------------------------------------------------------------
def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, expr) of every query target."""
    return [
        (f"{p['title']} / {t['refId']}", t["expr"])
        for p in panels(dashboard)
        for t in p.get("targets", [])
        if t.get("expr")
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"${v['name']}", q))
    return out


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def all_expressions() -> list[tuple[str, str, str]]:
    return [(path.stem, where, expr) for path in DASHBOARD_FILES for where, expr in expressions(load(path))]


def test_the_dashboards_exist_and_are_up_to_date() -> None:
    assert [p.name for p in DASHBOARD_FILES] == ["model-detail.json", "models-overview.json"]
    check = subprocess.run([sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()


# -- (a) schema -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_validates_against_grafanas_schema(path: Path) -> None:
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    assert validator_class is jsonschema.Draft7Validator  # what the generated schema declares
    validator_class.check_schema(SCHEMA)
    errors = sorted(validator_class(SCHEMA).iter_errors(load(path)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    dashboard = load(path)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert len({dashboard["uid"] for dashboard in map(load, DASHBOARD_FILES)}) == len(DASHBOARD_FILES)
    for p in panels(dashboard):
        if p["type"] != "row":
            assert p["type"] in {"timeseries", "stat", "table", "bargauge"}
            assert p["targets"] and p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def test_the_schema_is_strict_enough_to_catch_mistakes() -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    good = load(GRAFANA / "dashboards" / "models-overview.json")
    for breakage in (
        lambda d: d.pop("schemaVersion"),
        lambda d: d["panels"][1].pop("type"),
        lambda d: d["panels"][1]["gridPos"].pop("w"),
        lambda d: d["panels"][1]["fieldConfig"].pop("overrides"),
        lambda d: d["templating"]["list"][0].update(type="nonsense"),
        lambda d: d["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"][0].pop("color"),
    ):
        broken = json.loads(json.dumps(good))
        breakage(broken)
        assert not validator.is_valid(broken)


# -- (b) metric names and labels -------------------------------------------------------------
def exported_series() -> dict[str, set[str]]:
    """Every series name ``Metrics`` exports (``_total``, ``_bucket``/``_sum``/``_count``)
    with its label names."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for family in vars(metrics).values():
        if isinstance(family, MetricWrapperBase) and family._labelnames:
            family.labels(*["x"] * len(family._labelnames))  # a child, so the samples show
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    # Prometheus's own series of the shipped alerting rules: each alert's name and state, and
    # the labels of its expression and of the rule.
    names["ALERTS"] = {
        "alertname", "alertstate", "model", "feature", "check", "severity", "metric", "quantile", "segment",
    }  # fmt: skip
    return names


def balanced(expr: str, open_at: int) -> str:
    """The text inside the parenthesis opening at ``open_at``."""
    depth = 0
    for i in range(open_at, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[open_at + 1 : i]
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


def preceding_balanced(expr: str, close_at: int) -> str:
    depth = 0
    for i in range(close_at, -1, -1):
        depth += {")": 1, "(": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[i + 1 : close_at]
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


def metric_names(expr: str) -> list[str]:
    """Metric identifiers of a PromQL expression: not functions or aggregations (followed by
    ``(``), keywords, label names (inside ``{}`` and grouping clauses), durations or numbers."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = []
    for m in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", expr):
        following = expr[m.end() :].lstrip()
        if following.startswith("(") or m.group() in KEYWORDS:
            continue
        names.append(m.group())
    return names


def check_expression(expr: str, series: dict[str, set[str]]) -> list[str]:
    """Problems with ``expr``: unknown metric names, labels a metric does not have."""
    problems = []
    expr = substitute(expr)
    names = metric_names(expr)
    if not names:
        problems.append("no metric in expression")
    for name in names:
        if name not in series:
            problems.append(f"unknown metric {name}")
    for m in re.finditer(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr):
        name, matchers = m.groups()
        for label in re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", re.sub(r'"(?:\\.|[^"\\])*"', '""', matchers)):
            if name in series and label not in series[name]:
                problems.append(f"{name} has no label {label}")
    for m in re.finditer(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        clause, labels = m.group(1), [x.strip() for x in m.group(2).split(",") if x.strip()]
        if clause in ("by", "without"):
            # sum by (x) (ARG)  or  sum (ARG) by (x)
            rest = expr[m.end() :]
            if rest.lstrip().startswith("("):
                scope = balanced(expr, m.end() + len(rest) - len(rest.lstrip()))
            else:
                before = expr[: m.start()].rstrip()
                scope = preceding_balanced(before, len(before) - 1)
        else:
            scope = expr  # on/ignoring: the labels must be on both sides
        for name in metric_names(scope):
            for label in labels:
                if name in series and label not in series[name]:
                    problems.append(f"{clause} ({label}): {name} has no label {label}")
    return problems


def test_the_checker_catches_mistakes() -> None:
    series = exported_series()
    assert check_expression("sum by (model) (rate(monitor_records_accepted_total[$__rate_interval]))", series) == []
    assert check_expression(
        "histogram_quantile(0.95, sum by (le, route) (rate(monitor_http_request_duration_seconds_bucket[1m])))",
        series,
    ) == []  # fmt: skip
    assert check_expression("rate(monitor_records_accepted[1m])", series) == ["unknown metric monitor_records_accepted"]
    assert check_expression('monitor_drifted_features{feature="x"}', series) == [
        "monitor_drifted_features has no label feature"
    ]
    assert check_expression("sum by (feature) (monitor_dataset_drift)", series) == [
        "by (feature): monitor_dataset_drift has no label feature"
    ]
    assert check_expression("sum(monitor_dataset_drift) by (model, check)", series) == [
        "by (check): monitor_dataset_drift has no label check"
    ]
    assert check_expression("monitor_quality_ratio and on (model, method) monitor_quality_breach", series) == [
        "on (method): monitor_quality_ratio has no label method",
        "on (method): monitor_quality_breach has no label method",
    ]
    assert metric_names('max by (model) (monitor_latency_slo_breach{model=~"a|b"} offset 5m) > bool 1e3') == [
        "monitor_latency_slo_breach"
    ]


@pytest.mark.parametrize(("dashboard", "where", "expr"), all_expressions(), ids=lambda x: str(x)[:60])
def test_expression_uses_exported_metrics_and_labels(dashboard: str, where: str, expr: str) -> None:
    assert check_expression(expr, exported_series()) == []


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_variable_queries_use_exported_metrics_and_labels(path: Path) -> None:
    series = exported_series()
    for where, query in variable_queries(load(path)):
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert m, f"{where}: {query}"
        selector, label = m.groups()
        assert check_expression(selector, series) == [], where
        (name,) = metric_names(substitute(selector))
        assert label in series[name], f"{where}: {name} has no label {label}"


def test_detail_dashboard_variables() -> None:
    variables = {v["name"]: v for v in load(GRAFANA / "dashboards" / "model-detail.json")["templating"]["list"]}
    assert variables["model"]["definition"] == "label_values(monitor_records_accepted_total, model)"
    assert variables["feature"]["definition"] == 'label_values(monitor_feature_drift{model="$model"}, feature)'


# -- (c) against a real Prometheus -------------------------------------------------------------
PROMETHEUS = shutil.which("prometheus")
CHUNK = 5000
LAST = 50_000 - CHUNK  # offset of the last chunk: its predictions stay in the label buffer


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(item) for item in items)


def region(position: int) -> str:
    """A record's region tag: one region per window of 5,000, alternating, so that the last
    window, the labelled one, is one slice's whole performance window."""
    return "eu" if position // CHUNK % 2 == 0 else "us"


def version(position: int) -> str:
    """A record's model version: every other record, so both versions have windows and
    predictions in every whole-population window (champion "1", challenger "2")."""
    return str(1 + position % 2)


def record_chunks() -> list[bytes]:
    """The analysis period in windows of 5,000, with a model latency, a region tag and a
    version; the last window also has 10% of debt_to_income_ratio out of its [0, 1] range
    (a data-quality breach)."""
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    rng = np.random.default_rng(7)
    latency = rng.lognormal(np.log(20), 0.5, len(analysis))
    features = list(CAR_LOAN_FEATURES)
    bodies = []
    for start in range(0, len(analysis), CHUNK):
        items = []
        for i, row in enumerate(analysis.iloc[start : start + CHUNK].itertuples()):
            inputs = {f: getattr(row, f) for f in features}
            if start == LAST and i % 10 == 0:
                inputs["debt_to_income_ratio"] = 1.5
            items.append({"model": "car_loan", "id": str(row.id), "timestamp": row.timestamp, "inputs": inputs,
                          "prediction": row.y_pred_proba, "latency_ms": float(latency[start + i]),
                          "segment": {"region": region(start + i)}, "version": version(start + i)})  # fmt: skip
        bodies.append(ndjson(items))
    return bodies


def reference_with_latency(tmp_path: Path) -> Path:
    """The reference file plus a model-latency column (ms): the latency channel is profiled
    only from a reference that has one; and a region column, half eu, half us: each region's
    slice is compared with its own reference rows."""
    reference = pd.read_csv(DATA / "synthetic_car_loan_reference.csv.gz")
    reference["latency_ms"] = np.random.default_rng(3).lognormal(np.log(20), 0.5, len(reference))
    reference["region"] = np.where(np.arange(len(reference)) % 2 == 0, "eu", "us")
    path = tmp_path / "reference.csv.gz"
    reference.to_csv(path, index=False)
    return path


def label_body() -> bytes:
    """Labels of the last window's predictions (a performance window of 5,000, the whole
    population's and region us's), each naming its prediction's version: with a champion and
    a challenger, a record's key is its id and version."""
    target = pd.read_csv(DATA / "synthetic_car_loan_analysis_target.csv.gz")
    analysis_ids = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz", usecols=["id"])["id"]
    position = {str(i): p for p, i in enumerate(analysis_ids)}
    last = target[target["id"].isin(analysis_ids.iloc[LAST:])]
    assert len(last) == CHUNK
    return ndjson(
        [
            {"model": "car_loan", "id": str(r.id), "version": version(position[str(r.id)]), "label": int(r.repaid)}
            for r in last.itertuples()
        ]
    )


def post(url: str, body: bytes, expect: int = 200) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/records", content=body, headers={"content-type": "application/x-ndjson"}, timeout=60)
    assert r.status_code == expect, r.text
    return r.json()


def scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text


def sample(text: str, name: str, **labels: str) -> float | None:
    pattern = re.escape(name) + r"\{([^}]*)\} (\S+)|^" + re.escape(name) + r" (\S+)"
    for line in text.splitlines():
        m = re.match(pattern, line)
        if not m:
            continue
        if m.group(3) is not None:
            return float(m.group(3)) if not labels else None
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


class PrometheusProcess:
    """A real ``prometheus`` scraping ``target`` every second, on a free port, storing in tmp."""

    def __init__(self, tmp_path: Path, target: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tmp_path / "prometheus"
        self.dir.mkdir()
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{ROOT / 'alerts' / 'prometheus' / 'monitor-alerts.yml'}']\n"  # the ALERTS panel
            "scrape_configs:\n"
            f"  - job_name: monitor\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = self.dir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> PrometheusProcess:
        assert PROMETHEUS
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, "prometheus /-/ready")
        return self

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.mark.skipif(PROMETHEUS is None, reason="needs the prometheus binary (apt-get install prometheus)")
def test_every_panel_returns_data_from_a_real_prometheus(tmp_path: Path) -> None:
    started = time.monotonic()
    car_loan = {
        "features": CAR_LOAN_FEATURES,
        "prediction": {"kind": "binary"},
        "reference": {
            "file": str(reference_with_latency(tmp_path)),
            "prediction_column": "y_pred_proba",
            "latency_column": "latency_ms",
        },
        "window": {"kind": "count", "size": CHUNK},
        "latency": {"slo_ms": 50},
        # The slice panels: two regions with reference rows of their own, two versions compared.
        "segments": {"keys": ["region"], "max_values": 4},
        "versions": {"max_active": 2, "champion": "1", "challenger": "2"},
    }
    receiver = Receiver().start()
    (tmp_path / "kafka").mkdir()
    broker = KafkaBroker(tmp_path / "kafka", durable=False).start()  # for the Kafka panels
    broker.create_topic("car-loan", 1)
    kafka = {"bootstrap_servers": [broker.bootstrap], "topics": ["car-loan"], "session_timeout_ms": 6_000,
             "heartbeat_interval_ms": 1_000, "max_poll_interval_ms": 10_000}  # fmt: skip
    webhook = {"name": "retrain", "url": receiver.url, "rules": ["dataset-drift"], "timeout_seconds": 2}
    data = config(
        tmp_path,
        models={"car_loan": car_loan},
        alerts={"rules": [{"name": "dataset-drift", "kind": "dataset_drift", "severity": "critical"}],
                "webhooks": [webhook]},
        # A small join buffer and TTL so partial records leave it (incomplete, evicted,
        # unmatched labels); a label buffer holding one window so older predictions leave it.
        limits={"join_buffer_size": 5, "join_ttl_seconds": 1, "label_buffer_size": CHUNK + 1000},
        kafka=kafka,
    )  # fmt: skip
    service = ServiceProcess(tmp_path, data)
    prometheus: PrometheusProcess | None = None
    timings: dict[str, float] = {}
    try:
        service.start(timeout=60)
        timings["service ready"] = time.monotonic() - started
        prometheus = PrometheusProcess(tmp_path, f"127.0.0.1:{service.port}").start()
        timings["prometheus ready"] = time.monotonic() - started

        for body in record_chunks():
            assert post(service.url, body)["accepted"] == CHUNK
        post(service.url, label_body())
        bad = [
            {"model": "car_loan", "id": f"bad{i}", "inputs": {"car_value": [i]}, "prediction": 0.5} for i in range(3)
        ]
        post(service.url, ndjson(bad), expect=422)  # wrong_type: rejected
        partial = [{"model": "car_loan", "id": f"p{i}", "inputs": {"car_value": 1000.0}} for i in range(8)]
        unmatched = [{"model": "car_loan", "id": f"nope{i}", "label": 1} for i in range(3)]
        # The last analysis row again, under its version: the same key, so a duplicate.
        repeat = [{"model": "car_loan", "id": "99999", "version": version(49_999), "inputs": {"car_value": 1.0},
                   "prediction": 0.1}]  # fmt: skip
        post(service.url, ndjson(partial + unmatched + repeat))
        kafka_records = [
            {"model": "car_loan", "id": f"k{i}", "inputs": {"car_value": 1000.0 + i}, "prediction": 0.5}
            for i in range(20)
        ]
        broker.produce("car-loan", [(0, b"car_loan", orjson.dumps(r), []) for r in kafka_records]
                       + [(0, None, b"{broken", [])])  # fmt: skip
        timings["data posted"] = time.monotonic() - started

        def produced() -> bool:
            text = scrape(service.url)
            needed = [
                sample(text, "monitor_windows_evaluated_total", kind="performance"),
                sample(text, "monitor_webhook_deliveries_total", outcome="delivered"),
                sample(text, "monitor_labels_unmatched_total"),
                sample(text, "monitor_join_incomplete_total", missing="prediction"),
                sample(text, "monitor_quality_breach", feature="debt_to_income_ratio", check="out_of_range"),
                sample(text, "monitor_records_rejected_total", source="kafka", reason="invalid_json"),
                sample(text, "monitor_kafka_checkpoints_total", outcome="written"),
                sample(text, "monitor_windows_evaluated_total", kind="segment_drift"),
                sample(text, "monitor_windows_evaluated_total", kind="segment_performance"),
                sample(text, "monitor_windows_evaluated_total", kind="version_drift"),
                sample(text, "monitor_windows_evaluated_total", kind="version_divergence"),
                sample(text, "monitor_segment_window_records", segment="region:eu"),
                sample(text, "monitor_segment_window_records", segment="region:us"),
                sample(text, "monitor_version_window_records", version="1"),
                sample(text, "monitor_version_window_records", version="2"),
            ]
            return all(v for v in needed)

        wait_for(produced, 60, "windows (whole, slices, versions), a performance window, a delivered webhook, "
                 "joins, a quality breach")  # fmt: skip
        data_at = time.time()

        # A few scrapes after the last change, so rate() over 1m has its samples. Counted,
        # not timed: under load Prometheus's first scrape can come seconds after the data.
        def scrapes_after_data() -> int:
            series = prometheus.query("up[1m]")
            return sum(float(t) > data_at for t, _ in series[0]["values"]) if series else 0

        wait_for(lambda: scrapes_after_data() >= 3, 30, "three scrapes after the data")
        timings["scraped"] = time.monotonic() - started

        empty = []
        for dashboard, where, expr in all_expressions():
            if not prometheus.query(substitute(expr)):
                empty.append(f"{dashboard}: {where}: {expr}")
        for path in DASHBOARD_FILES:
            for where, query in variable_queries(load(path)):
                selector, label = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query).groups()
                values = {s["metric"].get(label) for s in prometheus.query(substitute(selector))}
                assert "car_loan" in values or "car_value" in values, (where, values)
        assert not empty, "panels without data:\n" + "\n".join(empty)

        def latest(expr: str, label: str) -> dict[str, float]:
            return {s["metric"][label]: float(s["value"][1]) for s in prometheus.query(expr)}

        # The slice panels show what was sent: two regions and two versions, windows of 5,000
        # each; region us alone has the labelled window; no id was scored by both versions.
        assert latest('monitor_segment_window_records{model="car_loan"}', "segment") == {
            "region:eu": CHUNK, "region:us": CHUNK,
        }  # fmt: skip
        assert latest('monitor_version_window_records{model="car_loan"}', "version") == {"1": CHUNK, "2": CHUNK}
        assert set(latest('monitor_segment_performance{model="car_loan"}', "segment")) == {"region:us"}
        (agreement,) = prometheus.query('monitor_version_agreement_ratio{model="car_loan"}')
        assert math.isnan(float(agreement["value"][1]))
        # Region us's labelled window is the whole population's; the versions are two halves of
        # one traffic, so the challenger does not diverge.
        whole = latest('monitor_performance{model="car_loan"}', "metric")
        assert latest('monitor_segment_performance{model="car_loan", segment="region:us"}', "metric") == whole
        assert latest('monitor_version_divergence{model="car_loan"}', "model") == {"car_loan": 0.0}
        assert len(receiver.requests) >= 1
        timings["queried"] = time.monotonic() - started
        print("timings (s from start):", {k: round(v, 1) for k, v in timings.items()})
    finally:
        if prometheus is not None:
            prometheus.stop()
        if service.process is not None:
            try:
                service.stop(timeout=20)
            except subprocess.TimeoutExpired:
                service.__exit__()
        receiver.stop()
        broker.stop()


def test_the_overview_names_the_alerts_and_links_every_runbook() -> None:
    """Issue 17, item 9: which alerts, not only how many, and a runbook link per alert that
    lands on the service's runbook page of that alert, as the rules' runbook_url does."""
    from alerts.prometheus_rules import RUNBOOK_BASE, alerts, rules
    from monitor.api.runbooks import runbooks

    overview = load(GRAFANA / "dashboards" / "models-overview.json")
    (table,) = [p for p in panels(overview) if p["title"].startswith("Prometheus alerts pending and firing")]
    assert table["targets"][0]["expr"] == 'ALERTS{alertname=~"Model.+|Monitor.+"}'
    names = [alert.name for alert in alerts()]
    assert [link["title"] for link in table["links"]] == [f"Runbook: {name}" for name in names]
    served = runbooks().sections  # GET /runbooks/<name> answers 200 for these: tests/monitor/test_runbooks.py
    for link, name in zip(table["links"], names, strict=True):
        assert link["url"] == f"${{runbook_base}}/{name}"
        assert name in served
    variables = {v["name"]: v for v in overview["templating"]["list"]}
    assert variables["runbook_base"]["query"] == RUNBOOK_BASE  # the same default as `monitor rules export`
    # With the variable at its default, each link is the shipped rule's runbook_url.
    shipped = {r["alert"]: r["annotations"]["runbook_url"] for r in rules()["groups"][0]["rules"]}
    assert {
        name: link["url"].replace("${runbook_base}", RUNBOOK_BASE)
        for link, name in zip(table["links"], names, strict=True)
    } == shipped
