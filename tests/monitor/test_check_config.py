"""``monitor check-config``: every problem a config can have that would stop or mislead
``serve``, found in one pass (issue 17, item 2), and ``serve`` refusing such a config
with the same lines and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import PYTHON, ROOT

from monitor.cli import main

Edit = Callable[[dict[str, Any], Path], None]


def base(tmp_path: Path) -> dict[str, Any]:
    """A valid config: one model with a reference file (with labels), a rule, a webhook."""
    (tmp_path / "reference.csv").write_text("x,colour,prediction,truth\n1.5,red,1,1\n2.5,blue,0,0\n3.5,red,1,0\n")
    return {
        "storage": {"url": f"sqlite:///{tmp_path / 'monitor.db'}"},
        "models": {
            "scorer": {
                "features": {"x": {"type": "numeric"}, "colour": {"type": "categorical"}},
                "reference": {"file": "reference.csv", "label_column": "truth"},
            }
        },
        "alerts": {
            "rules": [{"name": "drift", "kind": "feature_drift", "models": ["scorer"], "features": ["x"]}],
            "webhooks": [{"name": "retrain", "url": "http://127.0.0.1:9/hook", "rules": ["drift"]}],
        },
    }


def model(data: dict[str, Any]) -> dict[str, Any]:
    return data["models"]["scorer"]


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return name


def set_file(name: str, text: str | None = None) -> Edit:
    def edit(data: dict[str, Any], tmp_path: Path) -> None:
        if text is not None:
            write(tmp_path, name, text)
        model(data)["reference"]["file"] = name

    return edit


def folder(name: str) -> Edit:
    def edit(data: dict[str, Any], tmp_path: Path) -> None:
        (tmp_path / name).mkdir()
        model(data)["reference"]["file"] = name

    return edit


CASES: list[tuple[str, Edit, list[str]]] = [
    ("reference file missing", set_file("absent.csv"),
     ["models.scorer.reference.file: {tmp}/absent.csv: no such file"]),
    ("reference file is a folder", folder("refs"),
     ["models.scorer.reference.file: {tmp}/refs: not a file"]),
    ("reference lacks a feature", set_file("lacking.csv", "x,prediction,truth\n1,1,1\n"),
     ["models.scorer.reference.file: {tmp}/lacking.csv: missing column 'colour' (the file has: x, prediction, truth)"]),
    ("reference lacks the prediction", set_file("nopred.csv", "x,colour,truth\n1,red,1\n"),
     ["models.scorer.reference.file: {tmp}/nopred.csv: missing column 'prediction' (the file has: x, colour, truth)"]),
    ("reference lacks the label column", set_file("nolabel.csv", "x,colour,prediction\n1,red,1\n"),
     ["models.scorer.reference.file: {tmp}/nolabel.csv: missing label column 'truth' (reference.label_column)"]),
    ("numeric feature holds text", set_file("text.csv", "x,colour,prediction,truth\nlow,red,1,1\nhigh,blue,0,0\n"),
     ["models.scorer.reference.file: {tmp}/text.csv: column 'x' is declared numeric but 100.0% of its values "
      "are not numbers"]),
    ("reference of an unknown type", set_file("reference.xlsx", "PK"),
     ["models.scorer.reference.file: {tmp}/reference.xlsx: unknown file type (expected .csv, .parquet or .jsonl, "
      "optionally .gz)"]),
    ("empty reference", set_file("empty.csv", ""),
     ["models.scorer.reference.file: {tmp}/empty.csv: the reference file is empty"]),
    ("broken JSONL reference", set_file("broken.jsonl", '{"inputs": {"x": 1}}\n{oops\n'),
     ["models.scorer.reference.file: {tmp}/broken.jsonl: line 2 is not valid JSON: unexpected character, "
      "expected a string key "
      "(column 2)"]),
    ("rule names an unknown model", lambda d, t: d["alerts"]["rules"][0].update(models=["scorr"]),
     ["alerts.rules.0.models: unknown model 'scorr' (models: scorer)"]),
    ("rule names an unknown feature", lambda d, t: d["alerts"]["rules"][0].update(features=["y"]),
     ["alerts.rules.0.features: no covered model has feature 'y'"]),
    ("webhook names an unknown rule", lambda d, t: d["alerts"]["webhooks"][0].update(rules=["drfit"]),
     ["alerts.webhooks.0.rules: unknown rule 'drfit' (rules: drift)"]),
    ("webhook names an unknown model", lambda d, t: d["alerts"]["webhooks"][0].update(models=["other"]),
     ["alerts.webhooks.0.models: unknown model 'other'"]),
    ("bad webhook URL does not hide its unknown rule",
     lambda d, t: d["alerts"]["webhooks"][0].update(url="ftp://host/x", rules=["drfit"]),
     ["alerts.webhooks.0.url: url must be an http:// or https:// URL without spaces",
      "alerts.webhooks.0.rules: unknown rule 'drfit' (rules: drift)"]),
    ("unknown feature type", lambda d, t: model(d)["features"]["x"].update(type="float"),
     ["models.scorer.features.x.type: must be one of numeric, categorical, boolean, got 'float'"]),
    ("unknown prediction kind", lambda d, t: model(d).update(prediction={"kind": "ranking"}),
     ["models.scorer.prediction.kind: must be one of binary, multiclass, regression, got 'ranking'"]),
    ("min above max", lambda d, t: model(d)["features"]["x"].update(min=5, max=1),
     ["models.scorer.features.x: min (5.0) must not exceed max (1.0)"]),
    ("unknown top-level key", lambda d, t: d.update(modles={}), ["modles: unknown key"]),
    ("unknown model key", lambda d, t: model(d).update(window_size=10),
     ["models.scorer.window_size: unknown key"]),
    ("time window without seconds", lambda d, t: model(d).update(window={"kind": "time"}),
     ["models.scorer.window: a time window needs seconds"]),
    ("port out of range", lambda d, t: d.update(server={"port": 70000}),
     ["server.port: input should be less than or equal to 65535, got 70000"]),
    ("unknown rule kind", lambda d, t: d["alerts"]["rules"][0].update(kind="drift"),
     ["alerts.rules.0.kind: kind must be one of feature_drift, dataset_drift, prediction_drift, data_quality, "
      "latency_slo, performance_drop, estimated_performance_drop, multivariate_drift, version_divergence, got 'drift'"]),
    ("token without a secret", lambda d, t: d.update(auth={"tokens": [{"name": "ci"}]}),
     ["auth.tokens.0: give exactly one of token or token_env"]),
    ("token from an unset variable", lambda d, t: d.update(auth={"tokens": [{"name": "ci", "token_env": "H4_UNSET"}]}),
     ["auth.tokens.0: environment variable H4_UNSET (token 'ci') is not set"]),
    ("in-flight budget below one body",
     lambda d, t: d.update(limits={"max_body_bytes": 4096, "max_inflight_body_bytes": 2048}),
     ["limits: max_inflight_body_bytes (2048) must be at least max_body_bytes (4096): a body of the largest "
      "size could never be read"]),
]  # fmt: skip


def check(tmp_path: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_the_base_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(tmp_path, base(tmp_path), capsys)
    assert (code, err) == (0, "")
    assert out == [
        f"{tmp_path / 'config.yaml'}: OK (1 model(s), 2 feature(s), storage sqlite:///{tmp_path}/monitor.db)"
    ]


@pytest.mark.parametrize(("edit", "expected"), [(e, x) for _, e, x in CASES], ids=[c[0] for c in CASES])
def test_each_broken_config_is_reported_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Edit, expected: list[str]
) -> None:
    data = base(tmp_path)
    edit(data, tmp_path)
    code, out, err = check(tmp_path, data, capsys)
    assert code == 1
    assert out == [line.format(tmp=tmp_path) for line in expected]
    assert err == f"{tmp_path / 'config.yaml'}: {len(expected)} problem(s)\n"


def test_independent_problems_are_all_found_in_one_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(CASES) >= 20
    data = base(tmp_path)
    # One mistake per section, each independent of the others.
    set_file("absent.csv")(data, tmp_path)
    model(data)["features"]["colour"]["type"] = "text"
    data["alerts"]["rules"].append({"name": "stale", "kind": "dataset_drift", "models": ["ghost"]})
    data["alerts"]["webhooks"][0].update(url="not a url", rules=["drfit"])
    data["server"] = {"port": -1}
    data["unknown_models"] = "accept"
    code, out, _ = check(tmp_path, data, capsys)
    assert code == 1
    assert sorted(out) == sorted([
        "server.port: input should be greater than or equal to 0, got -1",
        "unknown_models: must be 'reject' or 'register', got 'accept'",
        "models.scorer.features.colour.type: must be one of numeric, categorical, boolean, got 'text'",
        "alerts.webhooks.0.url: url must be an http:// or https:// URL without spaces",
        "alerts.rules.1.models: unknown model 'ghost' (models: scorer)",
        "alerts.webhooks.0.rules: unknown rule 'drfit' (rules: drift, stale)",
    ])  # fmt: skip
    # The broken feature type makes the model invalid, so its reference is not opened; with
    # the type fixed, the missing file is reported (every other problem still is too).
    model(data)["features"]["colour"]["type"] = "categorical"
    code, out, _ = check(tmp_path, data, capsys)
    assert f"models.scorer.reference.file: {tmp_path}/absent.csv: no such file" in out
    assert len(out) == 6


def test_rules_may_name_models_that_arrive_by_traffic_when_unknown_models_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base(tmp_path)
    data["unknown_models"] = "register"
    data["alerts"]["rules"][0]["models"] = ["later"]
    assert check(tmp_path, data, capsys)[0] == 0


def test_serve_refuses_a_broken_config_with_one_line_per_problem_and_exit_2(tmp_path: Path) -> None:
    data = base(tmp_path)
    set_file("absent.csv")(data, tmp_path)
    data["alerts"]["rules"][0]["models"] = ["scorr"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    for command in (["serve", "--config", str(path)], ["consume", "--config", str(path)]):
        done = subprocess.run(
            [PYTHON, "-m", "monitor.cli", *command], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"{path}: invalid configuration (2 problem(s))",
            "  alerts.rules.0.models: unknown model 'scorr' (models: scorer)",
            f"  models.scorer.reference.file: {tmp_path}/absent.csv: no such file",
        ]
    assert not (tmp_path / "monitor.db").exists()
