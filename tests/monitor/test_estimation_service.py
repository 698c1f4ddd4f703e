"""Estimates before labels come, through a real ``monitor serve``.

The car-loan reference (labels ``repaid``, scores ``y_pred_proba``; the model predicts
"repaid" at score >= 0.65) is the model's ``reference.file``; the 50,000 analysis records
are posted WITHOUT labels, in windows of 5,000. Every window gets estimated-performance
rows (CBPE) and a PCA reconstruction-error row (numeric features and one-hot categorical
ones) equal to the same estimators fitted offline on the reference file and applied to the
same 5,000 rows (a window of 5,000 keeps every
row in its 10,000-row sample), the estimates are within 0.02 of the realized ROC AUC and
accuracy (from the delayed labels, never sent), and the estimated-performance-drop rule
fires on window 5, where the realized accuracy drops. The service is stopped after six
windows (SIGTERM) and the reference file deleted: restarted, it restores the estimators
from the store and gives the same estimates for windows 6-9.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from support import CAR_LOAN_FEATURES, ROOT, ServiceProcess, config, scrape, wait_for

from detectors.columns import Batch
from detectors.estimation.fitting import fit_estimators
from detectors.estimation.window import Estimators, one_hot
from detectors.schema import Schema
from monitor.detection import schema_for
from monitor.settings import settings_from_mapping

DATA = ROOT / "tests" / "data" / "car_loan"
WINDOW = 5_000
THRESHOLD = 0.65
NUMERIC = [name for name, f in CAR_LOAN_FEATURES.items() if f["type"] == "numeric"]
CBPE_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
FEATURES = Schema({name: f["type"] for name, f in CAR_LOAN_FEATURES.items()})


def _pca_rows(chunk: pd.DataFrame, offline: Estimators) -> np.ndarray:
    """The rows PCA sees: the numeric features, then each categorical one one-hot encoded."""
    batch = Batch.from_frame(chunk.drop(columns=["timestamp"]), FEATURES, default_timestamp=0.0)
    parts = [chunk[NUMERIC].to_numpy(dtype=np.float64)]
    parts += [one_hot(batch.inputs[name], categories) for name, categories in offline.categorical.items()]
    return np.hstack(parts)


def _config(tmp_path: Path, reference: Path | None) -> dict[str, Any]:
    """The model's config; without ``reference`` (the file is gone), only the stored reference."""
    files = {} if reference is None else {"file": str(reference)}
    model = {
        "features": CAR_LOAN_FEATURES,
        "prediction": {"kind": "binary"},
        "reference": {**files, "prediction_column": "y_pred_proba", "label_column": "repaid"},
        "window": {"kind": "count", "size": WINDOW},
        "performance": {"threshold": THRESHOLD, "positive_class": "1"},
    }
    rules = [{"name": "estimated-accuracy", "kind": "estimated_performance_drop", "metrics": ["accuracy"]}]
    return config(tmp_path, models={"car_loan": model}, alerts={"rules": rules})


@pytest.fixture(scope="module")
def analysis() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    return frame.merge(pd.read_csv(DATA / "synthetic_car_loan_analysis_target.csv.gz"), on="id")


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Estimators:
    """The estimators fitted offline on the reference file, as the config asks (seed 0)."""
    settings = settings_from_mapping(_config(tmp_path_factory.mktemp("offline"), None))
    reference = pd.read_csv(DATA / "synthetic_car_loan_reference.csv.gz").drop(columns=["timestamp"])
    schema = schema_for(settings.models["car_loan"])
    return fit_estimators(reference, schema, label_column="repaid", threshold=THRESHOLD, positive_class="1", seed=0)


def _post(url: str, rows: pd.DataFrame) -> None:
    """The rows as labelless records, 1,000 a request, in order."""
    for start in range(0, len(rows), 1_000):
        chunk = rows.iloc[start : start + 1_000]
        inputs = chunk[list(CAR_LOAN_FEATURES)].to_dict("records")
        records = [
            {"model": "car_loan", "id": str(i), "inputs": x, "prediction": p}
            for i, x, p in zip(chunk["id"].tolist(), inputs, chunk["y_pred_proba"].tolist(), strict=True)
        ]
        response = httpx.post(f"{url}/v1/records", json=records, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(records)


def _results(url: str, kind: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/v1/models/car_loan/results", params={"kind": kind, "limit": 10_000}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _wait_for_windows(url: str, windows: int) -> list[dict[str, Any]]:
    """The estimated-performance and multivariate rows, once ``windows`` windows have both."""

    def ready() -> list[dict[str, Any]] | None:
        rows = _results(url, "estimated_performance") + _results(url, "multivariate_drift")
        # Both kinds: the two reads are apart, and a window's rows may land between them.
        seqs = [{row["window_seq"] for row in rows if row["kind"] == kind} for kind in ("estimated_performance", "multivariate_drift")]  # fmt: skip
        return rows if min(len(s) for s in seqs) >= windows else None

    return wait_for(ready, 120, f"estimates of {windows} windows")


def _check_windows(rows: list[dict[str, Any]], seqs: range, analysis: pd.DataFrame, offline: Estimators) -> None:
    """Each window's rows equal the offline estimators on the same rows, and the estimates
    are within 0.02 of the realized ROC AUC and accuracy."""
    from sklearn.metrics import roc_auc_score

    assert offline.cbpe is not None and offline.pca is not None
    for seq in seqs:
        chunk = analysis.iloc[seq * WINDOW : (seq + 1) * WINDOW]
        mine = {(r["kind"], r["method"]): r for r in rows if r["window_seq"] == seq}
        assert sorted(mine) == sorted(
            [("estimated_performance", m) for m in CBPE_METRICS] + [("multivariate_drift", "pca_reconstruction")]
        ), seq
        expected = offline.cbpe.estimate(chunk["y_pred_proba"].to_numpy())
        assert expected is not None
        for metric in CBPE_METRICS:
            row, want = mine[("estimated_performance", metric)], expected.metrics[metric]
            assert row["n_current"] == WINDOW
            assert row["statistic"] == pytest.approx(want.value, abs=1e-9), (seq, metric)
            assert row["threshold"] == pytest.approx(want.threshold, abs=1e-9), (seq, metric)
            assert row["detail"]["lower"] == pytest.approx(want.lower, abs=1e-9)
            assert row["detail"]["upper"] == pytest.approx(want.upper, abs=1e-9)
            assert row["drift"] is want.alert
        assert sorted(offline.categorical) == ["repaid_loan_on_prev_car", "salary_range", "size_of_downpayment"]
        pca = offline.pca.evaluate(_pca_rows(chunk, offline))
        assert pca is not None
        row = mine[("multivariate_drift", "pca_reconstruction")]
        assert row["statistic"] == pytest.approx(pca.statistic, abs=1e-9)
        assert row["threshold"] == pytest.approx(pca.upper, abs=1e-9)
        assert (row["drift"], row["n_current"]) == (pca.drift, WINDOW)
        realized_auc = roc_auc_score(chunk["repaid"], chunk["y_pred_proba"])
        realized_accuracy = float(np.mean((chunk["y_pred_proba"] >= THRESHOLD) == (chunk["repaid"] == 1)))
        assert abs(mine[("estimated_performance", "roc_auc")]["statistic"] - realized_auc) <= 0.02, seq
        assert abs(mine[("estimated_performance", "accuracy")]["statistic"] - realized_accuracy) <= 0.02, seq


def test_estimates_published_restored_and_alerted(tmp_path: Path, analysis: pd.DataFrame, offline: Estimators) -> None:
    reference = tmp_path / "reference.csv.gz"
    shutil.copy(DATA / "synthetic_car_loan_reference.csv.gz", reference)
    service = ServiceProcess(tmp_path, _config(tmp_path, reference))
    first = analysis.iloc[: 6 * WINDOW]
    with service:
        models = httpx.get(f"{service.url}/v1/models", timeout=30).json()["models"]
        assert models[0]["estimation"] == {"methods": ["cbpe", "pca_reconstruction"], "error": None}
        _post(service.url, first)
        rows = _wait_for_windows(service.url, 6)
        _check_windows(rows, range(6), analysis, offline)
        accuracy = {r["window_seq"]: r for r in rows if r["method"] == "accuracy"}
        assert [accuracy[s]["drift"] for s in range(6)] == [False] * 5 + [True]  # the drop, without labels
        assert max(accuracy[s]["statistic"] for s in range(5)) > accuracy[5]["statistic"]
        metrics = scrape(service.url)
        estimate = 'monitor_estimated_performance{bound="estimate",metric="accuracy",model="car_loan"}'
        assert metrics[estimate] == pytest.approx(accuracy[5]["statistic"], abs=1e-9)
        assert metrics['monitor_windows_evaluated_total{kind="estimated_performance",model="car_loan"}'] == 6
        assert metrics['monitor_windows_evaluated_total{kind="pca_reconstruction",model="car_loan"}'] == 6
        assert metrics['monitor_estimated_performance_drop{model="car_loan"}'] == 1
        alerts = httpx.get(f"{service.url}/v1/alerts", timeout=30).json()["alerts"]
        assert [(a["rule"], a["state"], a["window_seq"]) for a in alerts] == [("estimated-accuracy", "firing", 5)]
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn may re-raise the signal
    assert service.log().count("estimators fitted on the reference: cbpe, pca_reconstruction") == 1

    reference.unlink()  # the restart must not need the file (nor may its config name a missing one)
    restarted = ServiceProcess(tmp_path, _config(tmp_path, None))
    with restarted:
        models = httpx.get(f"{restarted.url}/v1/models", timeout=30).json()["models"]
        assert models[0]["estimation"] == {"methods": ["cbpe", "pca_reconstruction"], "error": None}
        assert models[0]["reference"] == "1"  # the stored reference, not a new one
        _post(restarted.url, analysis.iloc[6 * WINDOW :])
        try:
            rows = _wait_for_windows(restarted.url, 10)
        except AssertionError as exc:  # say what the service said
            raise AssertionError(f"{exc}\n{restarted.log()[-4000:]}") from None
        _check_windows(rows, range(10), analysis, offline)
        accuracy = {r["window_seq"]: r for r in rows if r["method"] == "accuracy"}
        assert sorted(accuracy) == list(range(10))
        assert max(accuracy[s]["statistic"] for s in range(5, 10)) < min(accuracy[s]["statistic"] for s in range(5))
        assert [accuracy[s]["drift"] for s in range(10)] == [False] * 5 + [True] * 5
        metrics = scrape(restarted.url)
        assert metrics['monitor_windows_evaluated_total{kind="estimated_performance",model="car_loan"}'] == 4
        alerts = httpx.get(f"{restarted.url}/v1/alerts", timeout=30).json()["alerts"]
        assert [(a["rule"], a["state"], a["window_seq"]) for a in alerts] == [
            ("estimated-accuracy", "firing", 5)
        ]  # still the one episode
    assert "estimators fitted" not in restarted.log()
