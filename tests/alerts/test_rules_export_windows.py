"""Issue 17, item 7: ``monitor rules export --window-period 5m --for-windows N`` sets the
``for:`` of the alerts on detector verdicts to N windows, checked by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts.prometheus_rules import duration_seconds, duration_text, windows_for
from monitor.cli import main

RESULT_ALERTS = [
    "ModelFeatureDrift", "ModelDatasetDrift", "ModelPredictionDrift", "ModelDataQualityBreach",
    "ModelLatencySLOBreach", "ModelPerformanceDegraded", "ModelSegmentFeatureDrift", "ModelSegmentPredictionDrift",
    "ModelVersionFeatureDrift", "ModelVersionPredictionDrift",
]  # fmt: skip


def export(tmp_path: Path, *args: str) -> dict[str, dict]:
    path = tmp_path / "rules.yml"
    assert main(["rules", "export", "--output", str(path), *args]) == 0
    return {rule["alert"]: rule for rule in yaml.safe_load(path.read_text())["groups"][0]["rules"]}


def test_for_windows_sets_the_for_of_the_result_alerts_only(tmp_path: Path) -> None:
    shipped = export(tmp_path)
    rules = export(tmp_path, "--window-period", "5m", "--for-windows", "3")
    assert {name: rules[name]["for"] for name in RESULT_ALERTS} == dict.fromkeys(RESULT_ALERTS, "15m")
    assert "in every window evaluated for 15m" in rules["ModelFeatureDrift"]["annotations"]["description"]
    others = [name for name in shipped if name not in RESULT_ALERTS]
    assert [rules[name] for name in others] == [shipped[name] for name in others]
    assert shipped["ModelFeatureDrift"]["for"] == "30m"


def test_durations() -> None:
    assert [duration_seconds(text) for text in ("5m", "90s", "1h30m", "1d", "2w")] == [300, 90, 5400, 86400, 1209600]
    assert [windows_for(p, n) for p, n in (("5m", 6), ("30s", 3), ("45m", 2), ("1h", 1))] == [
        "30m",
        "1m30s",
        "1h30m",
        "1h",
    ]
    assert duration_text(0) == "0s"
    for bad in ("", "5", "5x", "m", "-5m", "5m3"):
        with pytest.raises(ValueError, match="not a Prometheus duration"):
            duration_seconds(bad)


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--window-period", "5m"], "error: give --window-period and --for-windows together\n"),
        (["--for-windows", "2"], "error: give --window-period and --for-windows together\n"),
        (["--window-period", "5 minutes", "--for-windows", "2"],
         "error: not a Prometheus duration such as 5m, 1h or 90s: '5 minutes'\n"),
        (["--window-period", "0m", "--for-windows", "2"], "error: the window period must be longer than 0s, got '0m'\n"),
        (["--window-period", "5m", "--for-windows", "0"], "error: for_windows must be an integer >= 1, got 0\n"),
    ]  # fmt: skip
    for args, message in cases:
        assert main(["rules", "export", *args]) == 2
        assert capsys.readouterr() == ("", message)


def test_promtool_fires_after_n_windows(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: apt-get install --no-install-recommends prometheus", pytrace=False)
    rules = export(tmp_path, "--window-period", "5m", "--for-windows", "3")
    annotations = {
        key: value.replace("{{ $labels.feature }}", "f").replace("{{ $labels.model }}", "m")
        for key, value in rules["ModelFeatureDrift"]["annotations"].items()
    }
    # Windows close every 5 minutes; three drifted ones in a row: pending through 15m, then firing.
    unit = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": 'monitor_feature_drift{model="m",feature="f"}', "values": "1x40"}],
            "alert_rule_test": [
                {"eval_time": "14m", "alertname": "ModelFeatureDrift", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "ModelFeatureDrift", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "model": "m", "feature": "f"},
                    "exp_annotations": annotations,
                }]},
            ],
        }],
    }  # fmt: skip
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(unit))
    for args in (["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"]):
        done = subprocess.run([promtool, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
