"""`monitor replay` in-process: the car-loan analysis file against its reference file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from support import CAR_LOAN_FEATURES, ROOT

from monitor.cli import main

DATA = ROOT / "tests" / "data" / "car_loan"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    model = {
        "features": CAR_LOAN_FEATURES,
        "reference": {"file": str(DATA / "synthetic_car_loan_reference.csv.gz"), "prediction_column": "y_pred_proba"},
        "window": {"size": 5000},
    }
    path.write_text(
        yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path / 'live.db'}"}, "models": {"car_loan": model}})
    )
    return path


def test_replay_table_and_json(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    analysis = str(DATA / "synthetic_car_loan_analysis.csv.gz")
    args = [
        "replay",
        analysis,
        "--model",
        "car_loan",
        "--config",
        str(config_file),
        "--prediction-column",
        "y_pred_proba",
    ]
    assert (
        main(
            [
                *args,
                "--json",
                "--labels",
                str(DATA / "synthetic_car_loan_analysis_target.csv.gz"),
                "--label-column",
                "repaid",
            ]
        )
        == 0
    )
    document = orjson.loads(capsys.readouterr().out)
    assert [w["n"] for w in document["windows"]] == [5000] * 10
    drifted = [sorted(f["feature"] for f in w["drift"]["features"] if f["drift"]) for w in document["windows"]]
    assert drifted == [[]] * 5 + [["car_value", "loan_length", "repaid_loan_on_prev_car", "salary_range"]] * 5
    assert [p["n"] for p in document["performance"]] == [5000] * 10
    assert not (config_file.parent / "live.db").exists()  # offline: the service's database is untouched
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["window", "records", "feature", "test", "p", "(adj)", "effect", "value", "verdict"]
    car_value = [line.split() for line in lines if " car_value " in line]
    assert [row[-1] for row in car_value] == ["ok"] * 5 + ["DRIFT"] * 5
    assert sum("4/7 features drifted (DATASET DRIFT)" in line for line in lines) == 5


def test_replay_errors(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "nope.csv", "--model", "car_loan", "--config", str(config_file)]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert (
        main(
            [
                "replay",
                str(DATA / "synthetic_car_loan_analysis.csv.gz"),
                "--model",
                "other",
                "--config",
                str(config_file),
            ]
        )
        == 2
    )
    assert "model 'other' is not in the config (models: car_loan)" in capsys.readouterr().err
