"""References of model versions from a real MLflow registry (the suite's ``mlflow server``):
a model whose ``reference.mlflow`` is the template ``models:/rollout/{version}`` and which
has per-version windows. Traffic of version 2 makes the service fetch registry version 2's
artifact in the background, store it for that version and compare the version's windows
with it; a version the registry lacks fails visibly while ingestion goes on; with the
registry down, the failure shows and the reference arrives once it is back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from mlflow_server import MlflowServer
from support import ServiceProcess, config, wait_for

ARTIFACT = "reference.parquet"
WINDOW = 500
MEANS = {"1": 0.0, "2": 3.0, "3": -3.0}  # each registered version's training data


def _parquet(rng: np.random.Generator, mean: float) -> bytes:
    x = rng.normal(mean, 1.0, size=(2_000, 2))
    out = io.BytesIO()
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "prediction": x[:, 0] / 2}).to_parquet(out, index=False)
    return out.getvalue()


def _records(rng: np.random.Generator, version: str, start: int, n: int) -> list[dict[str, Any]]:
    x = rng.normal(MEANS.get(version, 0.0), 1.0, size=(n, 2))
    return [
        {"model": "shop", "id": f"r{start + j}", "version": version, "timestamp": 1.7e9 + start + j,
         "inputs": {"a": float(x[j, 0]), "b": float(x[j, 1])}, "prediction": float(x[j, 0] / 2)}
        for j in range(n)
    ]  # fmt: skip


def _source(url: str) -> dict[str, Any]:
    models = httpx.get(f"{url}/v1/models", timeout=30).json()["models"]
    return next(m for m in models if m["name"] == "shop")["reference_source"]


def _version_state(url: str, version: str, state: str) -> dict[str, Any] | None:
    fetch = _source(url).get("versions", {}).get(version)
    return fetch if fetch is not None and fetch["state"] == state else None


def test_versions_seen_in_traffic_get_their_registry_reference(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    rng = np.random.default_rng(3)
    registered = [mlflow_server.register("rollout", {ARTIFACT: _parquet(rng, MEANS[v])}) for v in ("1", "2", "3")]
    assert registered == ["1", "2", "3"]
    model = {
        "features": {"a": {"type": "numeric"}, "b": {"type": "numeric"}},
        "prediction": {"kind": "regression"},
        "reference": {"mlflow": {"model_uri": "models:/rollout/{version}", "artifact_path": ARTIFACT,
                                 "tracking_uri": mlflow_server.url, "retry_seconds": 0.2, "max_retry_seconds": 1.0}},
        "window": {"size": WINDOW, "min_records": 100},
        "versions": {"max_active": 5},
    }  # fmt: skip
    data = config(tmp_path, models={"shop": model})
    sent = 0
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        assert http.post("/v1/records", json=_records(rng, "2", sent, 10)).json()["accepted"] == 10
        sent += 10
        fetch = wait_for(lambda: _version_state(service.url, "2", "ready"), 60, "version 2's reference")
        assert (fetch["mlflow"], fetch["registry_version"], fetch["reference"], fetch["last_error"]) == (
            "models:/rollout/2",
            "2",
            "1",
            None,
        )
        # A version the registry does not know: visible failure, retried; ingestion goes on.
        assert http.post("/v1/records", json=_records(rng, "9", sent, 10)).json()["accepted"] == 10
        sent += 10
        failed = wait_for(lambda: _version_state(service.url, "9", "failed"), 60, "version 9's failure")
        assert "rollout" in failed["last_error"] and failed["reference"] is None
        # Version 2's windows, against registry version 2's artifact (mean 3): no drift.
        assert http.post("/v1/records", json=_records(rng, "2", sent, 2 * WINDOW)).json()["accepted"] == 2 * WINDOW
        sent += 2 * WINDOW

        def v2_windows() -> list[dict] | None:
            rows = http.get("/v1/models/shop/results", params={"version": "2", "kind": "dataset_drift"}).json()
            return rows["results"] if len(rows["results"]) == 2 else None

        rows = wait_for(v2_windows, 60, "version 2's two windows")
        assert [(r["window_seq"], r["drift"], r["reference_version"], r["n_current"]) for r in rows] == [
            (0, False, "1", WINDOW),
            (1, False, "1", WINDOW),
        ]
        listing = http.get("/v1/models/shop/versions").json()
        assert listing["references"] == {"2": "1"}
        # The registry down: version 3's fetch fails (visible), records are still accepted ...
        mlflow_server.stop()
        try:
            assert http.post("/v1/records", json=_records(rng, "3", sent, 10)).json()["accepted"] == 10
            sent += 10
            down = wait_for(lambda: _version_state(service.url, "3", "failed"), 60, "version 3's failure")
            assert "Connection refused" in down["last_error"], down
            assert "version 3: could not fetch its reference from MLflow" in service.log()
        finally:
            mlflow_server.start()
        # ... and once it is back, the retry brings version 3's reference.
        back = wait_for(lambda: _version_state(service.url, "3", "ready"), 60, "version 3's reference")
        assert (back["registry_version"], back["reference"]) == ("3", "2")
        assert http.get("/v1/models/shop/versions").json()["references"] == {"2": "1", "3": "2"}
    # Stored for their versions: back after a restart, nothing fetched again for them.
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        assert http.get("/v1/models/shop/versions").json()["references"] == {"2": "1", "3": "2"}
        assert http.post("/v1/records", json=_records(rng, "2", sent, WINDOW)).json()["accepted"] == WINDOW
        assert "2" not in _source(service.url).get("versions", {})
