"""Issue 17, item 1: the example config compares from its first window (a bundled
reference); a model without one says so at start-up, in ``/v1/models`` and hourly in the
log; ``monitor replay --reference FILE``."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from support import CAR_LOAN_FEATURES, ROOT, car_loan_record, client, config, settings, wait_for

from monitor.cli import main
from monitor.reference_startup import log_waiting
from monitor.settings import load_settings

EXAMPLE = ROOT / "monitor" / "example.yaml"
BUNDLED = ROOT / "monitor" / "data" / "car_loan_reference.csv.gz"
ANALYSIS = ROOT / "tests" / "data" / "car_loan" / "synthetic_car_loan_analysis.csv.gz"


def test_the_bundled_reference_is_a_sample_of_the_car_loan_reference() -> None:
    table = pd.read_csv(BUNDLED)
    assert table.shape == (5000, 9)
    assert list(table.columns) == [*CAR_LOAN_FEATURES, "y_pred", "repaid"]
    assert round(float((table["y_pred"] == table["repaid"]).mean()), 4) == 0.944  # as monitor/data/README.md says
    assert len(gzip.decompress(BUNDLED.read_bytes())) == 388_789


def test_the_example_config_compares_car_loan_and_says_iris_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MONITOR_STORAGE__URL", f"sqlite:///{tmp_path / 'monitor.db'}")
    example = load_settings(EXAMPLE)
    assert example.models["car_loan"].reference.file == str(BUNDLED)
    caplog.set_level(logging.INFO, logger="monitor")
    with client(example) as (http, _):
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        assert (models["car_loan"]["reference"], models["car_loan"]["detection"]) == ("1", "active")
        assert (models["iris"]["reference"], models["iris"]["detection"]) == (None, "waiting for a reference")
        # The Quick start's three records close the example's first window.
        body = [car_loan_record(i) for i in range(3)]
        assert http.post("/v1/records", json=body).json()["accepted"] == 3
        wait_for(lambda: car_loan(http)["windows_evaluated"] == 1, 60, "the first window's evaluation")
        assert car_loan(http)["open_window_records"] == 0
        summary = http.get("/v1/models/car_loan/reference").json()["summary"]
        assert (summary["rows"], round(summary["performance"]["accuracy"], 4)) == (5000, 0.944)
    waiting = [r.getMessage() for r in caplog.records if "waiting for a reference" in r.getMessage()]
    assert waiting == [
        "model iris: waiting for a reference: its records are counted but not compared with anything; give it one "
        "with reference.file or reference.from_first_records in the config, PUT /v1/models/iris/reference or "
        "`monitor reference set iris FILE`"
    ]


def car_loan(http: TestClient) -> dict[str, Any]:
    return next(m for m in http.get("/v1/models").json()["models"] if m["name"] == "car_loan")


def test_from_first_records_is_shown_as_building(tmp_path: Path) -> None:
    model = {"features": CAR_LOAN_FEATURES, "reference": {"from_first_records": 10}}
    with client(settings(tmp_path, models={"car_loan": model})) as (http, _):
        assert (car_loan(http)["reference"], car_loan(http)["detection"]) == (
            None, "building a reference from the first 10 records",
        )  # fmt: skip
        assert http.post("/v1/records", json=[car_loan_record(i) for i in range(10)]).json()["accepted"] == 10
        wait_for(lambda: car_loan(http)["detection"] == "active", 60, "the reference from the first records")
        assert car_loan(http)["reference"] == "1"


def test_the_hourly_reminder_names_only_models_still_waiting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with client(settings(tmp_path)) as (http, _):
        pipeline = http.app.state.pipeline  # type: ignore[attr-defined]
        assert log_waiting(pipeline) == ["car_loan", "iris"]
        csv = pd.read_csv(BUNDLED).rename(columns={"y_pred": "prediction"}).to_csv(index=False)
        put = http.put("/v1/models/car_loan/reference", content=csv, headers={"content-type": "text/csv"})
        assert put.status_code == 201
        caplog.clear()
        assert log_waiting(pipeline) == ["iris"]
    assert [r.levelname for r in caplog.records if "waiting for a reference" in r.getMessage()] == ["WARNING"]


def test_replay_takes_a_reference_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "analysis.csv"
    pd.read_csv(ANALYSIS).head(12).to_csv(rows, index=False)
    bare = tmp_path / "bare.yaml"
    data = config(tmp_path, models={"car_loan": {"features": CAR_LOAN_FEATURES, "window": {"size": 6}}})
    bare.write_text(yaml.safe_dump(data))
    args = ["replay", str(rows), "--model", "car_loan", "--prediction-column", "y_pred", "--json", "--no-progress"]
    assert main([*args, "--config", str(bare)]) == 2
    assert capsys.readouterr().err == (
        "monitor replay: model 'car_loan' has no reference: give one with --reference FILE, set reference.file in "
        "the config, or upload one to the service\n"
    )
    reference = tmp_path / "reference.csv"
    pd.read_csv(BUNDLED).rename(columns={"y_pred": "prediction"}).to_csv(reference, index=False)
    assert main([*args, "--config", str(bare), "--reference", str(reference)]) == 0
    assert [w["n"] for w in orjson.loads(capsys.readouterr().out)["windows"]] == [6, 6]
    # The README's example: the example config's bundled reference, windows of 3.
    assert main([*args, "--config", str(EXAMPLE)]) == 0
    assert [w["n"] for w in orjson.loads(capsys.readouterr().out)["windows"]] == [3, 3, 3, 3]
    assert main([*args, "--config", str(EXAMPLE), "--window-size", "6"]) == 0
    assert [w["n"] for w in orjson.loads(capsys.readouterr().out)["windows"]] == [6, 6]
    assert not (tmp_path / "monitor.db").exists()
