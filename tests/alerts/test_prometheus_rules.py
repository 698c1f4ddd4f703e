"""The Prometheus alerting rules: generated = shipped, only exported metrics, and the real tools agree.

promtool and amtool are run for real (Debian packages ``prometheus`` and
``prometheus-alertmanager``, which ``./dev test`` installs). A missing tool fails the test
with that hint instead of skipping it: a skipped check passes CI without checking anything.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from alerts.prometheus_rules import GROUP, RUNBOOK_BASE, alerts, render, rules
from monitor.cli.rules import add_commands
from monitor.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "alerts" / "prometheus"
RULES_FILE = RULES_DIR / "monitor-alerts.yml"
UNIT_TESTS_FILE = RULES_DIR / "monitor-alerts_test.yml"
ALERTMANAGER_FILE = RULES_DIR / "alertmanager.example.yml"
# The alerts the rules were asked for (README, Alerts); more may be added, none dropped.
REQUIRED_ALERTS = {
    "ModelFeatureDrift",
    "ModelDatasetDrift",
    "ModelPredictionDrift",
    "ModelDataQualityBreach",
    "ModelLatencySLOBreach",
    "ModelPerformanceDegraded",
    "ModelIngestRejectsHigh",
    "ModelNoTraffic",
    "ModelJoinIncompleteHigh",
    "ModelLabelsUnmatchedHigh",
    "MonitorDeadLettersDropped",
}


# --- the tools -------------------------------------------------------------------------


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH: this test runs the real {name}. `./dev test` installs it "
            f"(Debian package {package}); by hand: apt-get install --no-install-recommends {package}",
            pytrace=False,
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


# --- generated = shipped, and the command ---------------------------------------------------


def test_shipped_rules_file_is_the_generated_output() -> None:
    assert RULES_FILE.read_text(encoding="utf-8") == render(), (
        f"{RULES_FILE.relative_to(ROOT)} differs from alerts/prometheus_rules.py's output: "
        f"re-export it with `monitor rules export --output {RULES_FILE.relative_to(ROOT)}`"
    )


def _export(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="monitor")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["rules", "export", *argv])
    return args.func(args)


def test_export_prints_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert _export([]) == 0
    assert capsys.readouterr().out == render()


def test_export_writes_the_rules_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rules.yml"
    assert _export(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{out}: {len(alerts())} alerting rules written" in captured.err


def test_export_runbook_base_moves_every_runbook_link(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    assert _export(["--output", str(out), "--runbook-base", "https://wiki.example/ml"]) == 0
    urls = [r["annotations"]["runbook_url"] for r in yaml.safe_load(out.read_text())["groups"][0]["rules"]]
    assert urls == [f"https://wiki.example/ml/{alert.name}" for alert in alerts()]


def test_export_to_an_unwritable_place_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "rules.yml"
    assert _export(["--output", str(target)]) == 2
    assert f"error: cannot write {target}" in capsys.readouterr().err


# --- the rules' shape -------------------------------------------------------------------------


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    content = rules()
    assert [g["name"] for g in content["groups"]] == [GROUP]
    shipped = content["groups"][0]["rules"]
    names = [r["alert"] for r in shipped]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert REQUIRED_ALERTS <= set(names), f"missing alerts: {sorted(REQUIRED_ALERTS - set(names))}"
    for rule in shipped:
        name = rule["alert"]
        assert list(rule) == ["alert", "expr", "for", "labels", "annotations"], name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), f"{name}: for {rule['for']!r} is not a simple duration"
        assert rule["labels"] == {"severity": rule["labels"]["severity"]}, name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert list(annotations) == ["summary", "description", "runbook_url"], name
        assert annotations["runbook_url"] == f"{RUNBOOK_BASE}/{name}", name  # served: tests/monitor/test_runbooks.py
        # Every alert but the service-wide one is about a model and must say which.
        if name.startswith("Model"):
            assert "{{ $labels.model }}" in annotations["summary"], name
            assert "{{ $labels.model }}" in annotations["description"], name


# --- only exported metric names ---------------------------------------------------------------

# PromQL words that look like identifiers but are not series names (functions are recognised
# by their opening parenthesis instead, so a new function needs no entry here).
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"offset", "bool", "atan2", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
# An identifier not glued to a preceding word, digit, colon or dot (so not the "m" of "10m",
# nor the "e3" of "1e3"), and not followed by "(" (a function call).
_IDENTIFIER = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects."""
    assert "__name__" not in expr, f"selects by __name__, which this check cannot follow: {expr}"
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("{}", text)  # label names inside are not series names
    text = _RANGES.sub("[]", text)  # durations
    text = _GROUPING.sub(" ", text)  # label names in by (...), on (...)
    return {word for word in _IDENTIFIER.findall(text) if word.lower() not in KEYWORDS}


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for group in _GROUPING.findall(_STRINGS.sub('""', expr)):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    return labels


def test_metric_name_parser_finds_names_and_only_names() -> None:
    expr = (
        'sum by (model, source) (rate(a_total{model!="x y", le="1e3"}[5m] offset 1h)) / on (model) '
        "group_left (feature) b:recorded and c > bool 0.05 unless histogram_quantile(0.9, d_bucket) "
        "or sum(e) without (cause) * 1e3 + inf"
    )
    assert metric_names(expr) == {"a_total", "b:recorded", "c", "d_bucket", "e"}
    assert grouping_labels(expr) == {"model", "source", "feature", "cause"}


def _exported() -> dict[str, tuple[str, ...]]:
    """Every series name the service can expose, with its label names."""
    metrics = Metrics(CollectorRegistry())
    series: dict[str, tuple[str, ...]] = {}
    for attribute, metric in vars(metrics).items():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus_client keeps no public accessor for these; the test reads them anyway
        # rather than copy the families (a copy would not notice a rename).
        name, kind, labels = metric._name, metric._type, tuple(metric._labelnames)
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}
        assert kind in suffixes, f"monitor.metrics.{attribute}: type {kind} is new to this test; add its series"
        for suffix in suffixes[kind]:
            series[name + suffix] = labels + (("le",) if suffix == "_bucket" else ())
    return series


def test_every_metric_in_the_rules_is_exported() -> None:
    exported = _exported()
    problems = []
    for alert in alerts():
        used = metric_names(alert.expr)
        if not used:
            problems.append(f"{alert.name}: no metric name found in {alert.expr!r} (parser broken?)")
        problems += [
            f"{alert.name}: {name} is not exported by monitor.metrics" for name in sorted(used - exported.keys())
        ]
        known = {label for name in used & exported.keys() for label in exported[name]}
        problems += [
            f"{alert.name}: label {label!r} in by/on (...) is on none of {sorted(used)}"
            for label in sorted(grouping_labels(alert.expr) - known)
        ]
    assert not problems, "\n".join(problems)


_SERIES = re.compile(r"^\s*([A-Za-z_:][\w:]*)\s*\{(.*)\}\s*$")


def _unit_tests() -> dict[str, Any]:
    return yaml.safe_load(UNIT_TESTS_FILE.read_text(encoding="utf-8"))


def test_unit_test_series_are_exported_series_with_their_labels() -> None:
    # The unit tests prove the rules against these series; they prove nothing if the series
    # are not what the service exposes.
    exported = _exported()
    problems = []
    for case in _unit_tests()["tests"]:
        for item in case["input_series"]:
            match = _SERIES.match(item["series"])
            if match is None:
                problems.append(f"{case['name']}: cannot read series {item['series']!r}")
                continue
            name, matchers = match.groups()
            labels = {pair.split("=", 1)[0].strip() for pair in _STRINGS.sub('""', matchers).split(",") if pair.strip()}
            if name not in exported:
                problems.append(f"{case['name']}: {name} is not exported by monitor.metrics")
            elif labels != set(exported[name]):
                problems.append(
                    f"{case['name']}: {name} has labels {sorted(labels)}, the service {sorted(exported[name])}"
                )
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _unit_tests()["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {alert.name for alert in alerts()}
    assert names <= firing, f"{UNIT_TESTS_FILE.name}: no case where these fire: {sorted(names - firing)}"
    assert names <= quiet, f"{UNIT_TESTS_FILE.name}: no case where these stay quiet: {sorted(names - quiet)}"


# --- the real tools ---------------------------------------------------------------------------


def test_promtool_accepts_the_shipped_rules() -> None:
    result = _run(_tool("promtool", "prometheus"), "check", "rules", str(RULES_FILE))
    assert result.returncode == 0, _output(result)
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout, _output(result)


def test_promtool_unit_tests_pass() -> None:
    result = _run(_tool("promtool", "prometheus"), "test", "rules", str(UNIT_TESTS_FILE))
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout + result.stderr, _output(result)


def test_promtool_fails_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness can fail: one unit test copied as is passes, with one expected label changed it fails."""
    promtool = _tool("promtool", "prometheus")
    suite = _unit_tests()
    case = next(c for c in suite["tests"] if any(t.get("exp_alerts") for t in c["alert_rule_test"]))
    single = {**suite, "rule_files": [str(RULES_FILE)], "tests": [case]}
    copy = tmp_path / "one_test.yml"
    copy.write_text(yaml.safe_dump(single, sort_keys=False), encoding="utf-8")
    control = _run(promtool, "test", "rules", str(copy))
    assert control.returncode == 0, f"the unmodified copy should pass:\n{_output(control)}"

    expected = next(t for t in case["alert_rule_test"] if t.get("exp_alerts"))["exp_alerts"][0]["exp_labels"]
    expected["severity"] = {"warning": "critical", "critical": "warning"}[expected["severity"]]
    copy.write_text(yaml.safe_dump(single, sort_keys=False), encoding="utf-8")
    broken = _run(promtool, "test", "rules", str(copy))
    assert broken.returncode != 0, f"a wrong expected severity passed:\n{_output(broken)}"
    assert "FAILED" in broken.stderr + broken.stdout and case["name"] in broken.stderr + broken.stdout, _output(broken)


def test_amtool_accepts_the_alertmanager_example() -> None:
    result = _run(_tool("amtool", "prometheus-alertmanager"), "check-config", str(ALERTMANAGER_FILE))
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in result.stdout, _output(result)


def _expected_receivers(alert: str, severity: str) -> str:
    people = "on-call" if severity == "critical" else "model-owners"
    return f"retraining,{people}" if alert in ("ModelDatasetDrift", "ModelPerformanceDegraded") else people


@pytest.mark.parametrize("alert", [a.name for a in alerts()])
def test_alertmanager_example_routes_each_alert_by_severity(alert: str) -> None:
    severity = next(a.severity for a in alerts() if a.name == alert)
    result = _run(
        _tool("amtool", "prometheus-alertmanager"),
        "config", "routes", "test", f"--config.file={ALERTMANAGER_FILE}",
        f"alertname={alert}", f"severity={severity}", "model=fraud",
    )  # fmt: skip
    assert result.returncode == 0, _output(result)
    assert result.stdout.strip() == _expected_receivers(alert, severity), _output(result)


def test_alertmanager_example_groups_by_model_and_lets_dataset_drift_inhibit_feature_drift() -> None:
    config = yaml.safe_load(ALERTMANAGER_FILE.read_text(encoding="utf-8"))
    assert config["route"]["group_by"] == ["alertname", "model"]
    assert {
        "source_matchers": ['alertname="ModelDatasetDrift"'],
        "target_matchers": ['alertname="ModelFeatureDrift"'],
        "equal": ["model"],
    } in config["inhibit_rules"]
    names = {alert.name for alert in alerts()}
    assert {"ModelDatasetDrift", "ModelFeatureDrift"} <= names
