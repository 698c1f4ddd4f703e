"""A reference named by a registered model alias follows the alias, against the suite's real
``mlflow server``: the service resolves ``models:/alias_loan@live`` again every
``refresh_seconds``; when the alias moves from version 1 to version 2, version 2's
artifact becomes the model's reference (stored and activated as an upload is); with the
registry down the check fails visibly, is retried, and the reference in use stays."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow_server import MlflowServer
from pydantic import ValidationError
from support import ROOT, ServiceProcess, car_loan_record, config, wait_for

from monitor.model_config import MlflowReferenceConfig, ModelConfig
from monitor.reference_files import build_reference

BUNDLED = ROOT / "monitor" / "data" / "car_loan_reference.csv.gz"
ARTIFACT = "reference.parquet"
NAME = "alias_loan"  # a registered model of its own: the other MLflow tests use car_loan and rollout
ROWS = {"1": 1_500, "2": 3_500}  # each version's reference rows: the two differ in size and content


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(out, index=False)
    return out.getvalue()


def _service_config(tmp_path: Path, tracking_uri: str) -> dict[str, Any]:
    data = config(tmp_path)
    data["models"]["car_loan"]["reference"] = {
        "prediction_column": "y_pred",
        "label_column": "repaid",
        # Short waits: the test waits for a check after the alias moved and after the outage.
        "mlflow": {"model_uri": f"models:/{NAME}@live", "artifact_path": ARTIFACT, "tracking_uri": tracking_uri,
                   "refresh_seconds": 0.5, "retry_seconds": 0.2, "max_retry_seconds": 1.0},
    }  # fmt: skip
    return data


def _car_loan(url: str) -> dict[str, Any]:
    models = httpx.get(f"{url}/v1/models", timeout=30).json()["models"]
    return next(m for m in models if m["name"] == "car_loan")


def _active(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/models/car_loan/reference", timeout=30).json()


def _post(url: str, start: int, n: int) -> None:
    answer = httpx.post(f"{url}/v1/records", json=[car_loan_record(i) for i in range(start, start + n)], timeout=30)
    assert (answer.status_code, answer.json()["accepted"]) == (200, n)


def test_the_reference_follows_the_alias_and_survives_an_outage(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    frame = pd.read_csv(BUNDLED)
    files = {"1": _parquet(frame.iloc[: ROWS["1"]]), "2": _parquet(frame.iloc[ROWS["1"] :])}
    assert [mlflow_server.register(NAME, {ARTIFACT: files[v]}) for v in ("1", "2")] == ["1", "2"]
    from mlflow.tracking import MlflowClient

    registry = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    registry.set_registered_model_alias(NAME, "live", "1")
    data = _service_config(tmp_path, mlflow_server.url)
    model = ModelConfig.model_validate(data["models"]["car_loan"])
    hashes = {v: build_reference(files[v], "parquet", model, label_column="repaid")[0].content_hash for v in files}
    assert hashes["1"] != hashes["2"]  # the precondition: the two versions' references differ

    with ServiceProcess(tmp_path, data) as service:
        first = wait_for(lambda: (m := _car_loan(service.url))["reference_source"]["state"] == "ready" and m, 60, "v1")
        assert (first["reference"], first["reference_source"]["registry_version"]) == ("1", "1")
        active = _active(service.url)
        assert (active["content_hash"], active["summary"]["rows"], active["summary"]["mlflow"]["version"]) == (
            hashes["1"], ROWS["1"], "1",
        )  # fmt: skip
        _post(service.url, 0, 100)

        # The alias moves: the next check fetches version 2's artifact and activates it.
        moved_at = time.time()
        registry.set_registered_model_alias(NAME, "live", "2")
        second = wait_for(
            lambda: (m := _car_loan(service.url))["reference_source"]["registry_version"] == "2" and m, 60, "v2"
        )
        source = second["reference_source"]
        assert (second["reference"], second["detection"], source["state"], source["reference"]) == (
            "2", "active", "ready", "2",
        )  # fmt: skip
        assert (source["mlflow"], source["run_id"], source["last_error"]) == (
            f"models:/{NAME}@live", registry.get_model_version(NAME, "2").run_id, None,
        )  # fmt: skip
        assert source["last_checked"] >= moved_at and source["attempts"] >= 2
        active = _active(service.url)
        assert (active["version"], active["source"], active["content_hash"], active["summary"]["rows"]) == (
            "2", "mlflow", hashes["2"], ROWS["2"],
        )  # fmt: skip
        references = httpx.get(f"{service.url}/v1/models/car_loan/references", timeout=30).json()["references"]
        assert [(r["version"], r["content_hash"]) for r in references] == [("2", hashes["2"]), ("1", hashes["1"])]
        assert f"models:/{NAME}@live moved from registry version 1 to 2" in service.log()
        # Checked again while it stays: the same reference, no new version stored.
        checked = source["last_checked"]
        wait_for(lambda: _car_loan(service.url)["reference_source"]["last_checked"] > checked, 60, "another check")
        assert _car_loan(service.url)["reference"] == "2"

        mlflow_server.stop()
        try:
            # Down: the check fails visibly and is retried; version 2 stays in use, records go on.
            failed = wait_for(
                lambda: (m := _car_loan(service.url))["reference_source"]["state"] == "failed" and m, 60, "a failure"
            )
            source = failed["reference_source"]
            assert "Connection refused" in source["last_error"], source
            assert (failed["reference"], failed["detection"], source["registry_version"], source["reference"]) == (
                "2", "active", "2", "2",
            )  # fmt: skip
            attempts = source["attempts"]
            wait_for(lambda: _car_loan(service.url)["reference_source"]["attempts"] > attempts, 60, "a retry")
            _post(service.url, 100, 100)
            assert _car_loan(service.url)["records"] == 200
            assert _active(service.url)["content_hash"] == hashes["2"]
            assert "reference 2 stays active" in service.log()
        finally:
            mlflow_server.start()
        # Back: the next check succeeds, nothing moved, nothing fetched again.
        back = wait_for(
            lambda: (m := _car_loan(service.url))["reference_source"]["state"] == "ready" and m, 60, "the registry back"
        )
        assert (back["reference"], back["reference_source"]["last_error"]) == ("2", None)
        references = httpx.get(f"{service.url}/v1/models/car_loan/references", timeout=30).json()["references"]
        assert [r["version"] for r in references] == ["2", "1"]


def test_refresh_seconds_is_checked() -> None:
    """0 turns the checks off; a negative wait is refused, naming the field and the value."""
    base = {"model_uri": f"models:/{NAME}@live", "artifact_path": ARTIFACT}
    assert MlflowReferenceConfig.model_validate({**base, "refresh_seconds": 0}).refresh_seconds == 0
    assert MlflowReferenceConfig.model_validate(base).refresh_seconds == 300
    assert MlflowReferenceConfig.model_validate(base).alias == "live"
    assert MlflowReferenceConfig.model_validate({**base, "model_uri": f"models:/{NAME}/2"}).alias is None
    with pytest.raises(ValidationError, match=r"refresh_seconds\n  Input should be greater than or equal to 0"):
        MlflowReferenceConfig.model_validate({**base, "refresh_seconds": -1})
