"""Issue 17, item 6: a replay evaluates the last partial performance window, as it does the
last partial drift window."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml
from support import CAR_LOAN_FEATURES, ROOT

from monitor.cli import main

DATA = ROOT / "tests" / "data" / "car_loan"


def test_the_last_labels_form_a_partial_performance_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz").head(1300)
    truth = pd.read_csv(DATA / "synthetic_car_loan_analysis_target.csv.gz")
    truth = truth[truth["id"].isin(analysis["id"])]
    analysis.to_csv(tmp_path / "analysis.csv", index=False)
    truth.to_csv(tmp_path / "labels.csv", index=False)
    model = {
        "features": CAR_LOAN_FEATURES,
        "reference": {"file": str(DATA / "synthetic_car_loan_reference.csv.gz"), "prediction_column": "y_pred"},
        "window": {"size": 1000},
        "performance": {"window_size": 500, "min_labels": 100},
    }
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path / 'live.db'}"}, "models": {"car_loan": model}})
    )
    args = ["replay", str(tmp_path / "analysis.csv"), "--model", "car_loan", "--config", str(config),
            "--prediction-column", "y_pred", "--labels", str(tmp_path / "labels.csv"), "--label-column", "repaid"]  # fmt: skip
    assert len(truth) == 1300
    assert main([*args, "--json"]) == 0
    document = orjson.loads(capsys.readouterr().out)
    assert [w["n"] for w in document["windows"]] == [1000, 300]
    assert [p["n"] for p in document["performance"]] == [500, 500, 300]
    last = truth.tail(300).merge(analysis, on="id")
    accuracy = float((last["y_pred"] == last["repaid"]).mean())
    assert document["performance"][2]["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert main(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("performance window")]
    assert [line.split(" (")[1].split(")")[0] for line in lines] == ["500 labels", "500 labels", "300 labels"]
