"""A multiclass model's estimated performance through a real ``monitor serve``.

A calibrated 3-class model (labels drawn from the probabilities it states): its reference
file has the class probabilities as ``p_<class>`` columns and the labels; live records
carry ``{class: probability}`` predictions and no labels, in two windows of 5,000 whose
class mix moves away from the reference's. Each window's estimated performance equals CBPE
fitted offline on the same file and applied to the same rows' probabilities (a window of
5,000 keeps every row in its sample), and is within 0.02 of the realized accuracy and
ROC AUC (from the labels, never sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from support import ServiceProcess, config, wait_for

from detectors.estimation.fitting import fit_estimators
from detectors.estimation.metrics import multiclass_metrics
from detectors.schema import Schema

CLASSES = ["a", "b", "c"]
WINDOW = 5_000
METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")


def calibrated(rng: np.random.Generator, n: int, prior: list[float]) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, 3)) * 1.5 + np.log(prior)
    probas = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 4)
    labels = (rng.random(n)[:, None] > np.cumsum(probas, axis=1)).sum(axis=1).clip(0, 2)
    return probas, labels


def table(rng: np.random.Generator, n: int, prior: list[float]) -> pd.DataFrame:
    probas, labels = calibrated(rng, n, prior)
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    frame["prediction"] = np.array(CLASSES)[probas.argmax(axis=1)]
    for k, c in enumerate(CLASSES):
        frame[f"p_{c}"] = probas[:, k]
    frame["label"] = np.array(CLASSES)[labels]
    return frame


def _results(url: str) -> list[dict[str, Any]]:
    params = {"kind": "estimated_performance", "limit": 10_000}
    response = httpx.get(f"{url}/v1/models/triage/results", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _windows(url: str, windows: int) -> list[dict[str, Any]] | None:
    rows = _results(url)
    return rows if len(rows) >= windows * len(METRICS) else None


def test_a_multiclass_model_gets_estimated_performance_in_serve(tmp_path: Path) -> None:
    rng = np.random.default_rng(51)
    reference = table(rng, 20_000, [1 / 3, 1 / 3, 1 / 3])
    reference.to_csv(tmp_path / "reference.csv", index=False)
    model = {
        "features": {"x1": {"type": "numeric"}, "x2": {"type": "numeric"}},
        "prediction": {"kind": "multiclass", "classes": CLASSES},
        "reference": {"file": str(tmp_path / "reference.csv"), "label_column": "label"},
        "window": {"kind": "count", "size": WINDOW},
        "estimation": {"proba_prefix": "p_", "multivariate": False},
    }
    live = table(rng, 2 * WINDOW, [0.6, 0.3, 0.1])
    schema = Schema({"x1": "numeric", "x2": "numeric"}, prediction_kind="multiclass")
    offline = fit_estimators(reference, schema, label_column="label", classes=CLASSES, proba_prefix="p_")
    assert offline.cbpe is not None
    probas = live[[f"p_{c}" for c in CLASSES]].to_numpy()
    with ServiceProcess(tmp_path, config(tmp_path, models={"triage": model})) as service:
        models = {m["name"]: m for m in httpx.get(f"{service.url}/v1/models", timeout=30).json()["models"]}
        assert models["triage"]["estimation"] == {"methods": ["cbpe"], "error": None}
        for start in range(0, len(live), 1_000):
            records = [
                {"model": "triage", "id": str(start + i), "inputs": {"x1": x1, "x2": x2},
                 "prediction": dict(zip(CLASSES, p, strict=True))}
                for i, (x1, x2, p) in enumerate(zip(live["x1"].iloc[start : start + 1_000].tolist(),
                    live["x2"].iloc[start : start + 1_000].tolist(), probas[start : start + 1_000].tolist(), strict=True))
            ]  # fmt: skip
            response = httpx.post(f"{service.url}/v1/records", json=records, timeout=60)
            assert response.status_code == 200 and response.json()["accepted"] == 1_000, response.text
        rows = wait_for(lambda: _windows(service.url, 2), 120, "estimates of two windows")
    assert sorted((r["window_seq"], r["method"]) for r in rows) == sorted((s, m) for s in (0, 1) for m in METRICS)
    for seq in (0, 1):
        rows_of = slice(seq * WINDOW, (seq + 1) * WINDOW)
        expected = offline.cbpe.estimate(probas[rows_of])
        assert expected is not None
        realized, _ = multiclass_metrics(probas[rows_of], np.eye(3)[[CLASSES.index(v) for v in live["label"][rows_of]]])
        for row in (r for r in rows if r["window_seq"] == seq):
            want = expected.metrics[row["method"]]
            assert row["n_current"] == WINDOW
            assert row["statistic"] == pytest.approx(want.value, abs=1e-9), (seq, row["method"])
            assert row["detail"]["lower"] == pytest.approx(want.lower, abs=1e-9)
            assert row["threshold"] == pytest.approx(want.threshold, abs=1e-9)
            if row["method"] in ("accuracy", "roc_auc"):
                assert abs(row["statistic"] - realized[row["method"]]) <= 0.02, (seq, row["method"])
