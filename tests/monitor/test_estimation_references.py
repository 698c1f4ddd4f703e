"""Estimators fitted wherever a reference file comes in (upload, ``monitor reference set``),
stored with the reference, shown by ``GET /v1/models``; a reference they cannot be
fitted on is still the reference, with the reason shown; every part of
:class:`Estimators` survives ``to_bytes`` / ``from_bytes`` (the restore needs no file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from support import config, settings

from detectors.estimation.cbpe import CBPE
from detectors.estimation.loss import DirectLossEstimator
from detectors.estimation.multivariate import DomainClassifier, PCAReconstruction
from detectors.estimation.window import Estimators
from monitor.api.app import create_app
from monitor.cli import main
from monitor.store.database import Store

CSV = {"content-type": "text/csv"}


def labelled_frame(n: int = 3_000, seed: int = 0, *, score_scale: float = 1.0) -> pd.DataFrame:
    """car_loan rows with a calibrated score and its label (``score_scale`` > 1 puts
    scores outside [0, 1], which CBPE refuses)."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0, 1, n)
    return pd.DataFrame(
        {
            "car_value": rng.lognormal(10, 0.4, n).round(2),
            "salary_range": rng.choice(["20K - 40K €", "40K - 60K €"], n),
            "debt_to_income_ratio": rng.beta(2, 5, n),
            "loan_length": rng.integers(12, 84, n),
            "repaid_loan_on_prev_car": rng.choice([True, False], n),
            "size_of_downpayment": rng.choice(["10%", "20%"], n),
            "driver_tenure": rng.exponential(4, n).round(1),
            "prediction": score * score_scale,
            "repaid": (rng.uniform(0, 1, n) < score).astype(int),
        }
    )


def _models(client: TestClient) -> dict[str, dict]:
    return {m["name"]: m for m in client.get("/v1/models").json()["models"]}


def test_upload_fits_stores_and_shows_the_estimators(tmp_path: Path) -> None:
    test_settings = settings(tmp_path)
    with TestClient(create_app(test_settings, registry=CollectorRegistry())) as client:
        assert _models(client)["car_loan"]["estimation"] == {"methods": [], "error": None}
        body = labelled_frame().to_csv(index=False).encode()
        response = client.put("/v1/models/car_loan/reference?label_column=repaid", content=body, headers=CSV)
        assert response.status_code == 201, response.text
        assert _models(client)["car_loan"]["estimation"] == {"methods": ["cbpe", "pca_reconstruction"], "error": None}
        # Without labels: the multivariate method only.
        unlabelled = labelled_frame(seed=1).drop(columns=["repaid"]).to_csv(index=False).encode()
        assert client.put("/v1/models/car_loan/reference", content=unlabelled, headers=CSV).status_code == 201
        assert _models(client)["car_loan"]["estimation"] == {"methods": ["pca_reconstruction"], "error": None}
        # Scores outside [0, 1]: the reference is taken, the estimators are not, and /v1/models says why.
        bad = labelled_frame(seed=2, score_scale=5.0).to_csv(index=False).encode()
        response = client.put("/v1/models/car_loan/reference?label_column=repaid", content=bad, headers=CSV)
        assert response.status_code == 201, response.text
        shown = _models(client)["car_loan"]
        assert (shown["reference"], shown["detection"], shown["estimation"]["methods"]) == ("3", "active", [])
        assert "scores must be probabilities in [0, 1]" in shown["estimation"]["error"]
        listed = client.get("/v1/models/car_loan/references").json()["references"]
        assert [r["version"] for r in listed] == ["3", "2", "1"] and all("estimators" not in r for r in listed)
        assert listed[0]["summary"]["estimation"]["error"] == shown["estimation"]["error"]
    with Store(test_settings.storage.url) as store:
        assert store.reference_estimators("car_loan", "3") is None
        stored = Estimators.from_bytes(store.reference_estimators("car_loan", "1") or b"")
        assert stored.methods == ["cbpe", "pca_reconstruction"]
        assert Estimators.from_bytes(store.reference_estimators("car_loan", "2") or b"").methods == [
            "pca_reconstruction"
        ]


def test_cli_reference_set_stores_the_estimators(tmp_path: Path) -> None:
    path = tmp_path / "reference.csv"
    labelled_frame().to_csv(path, index=False)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config(tmp_path), sort_keys=False))
    assert (
        main(["reference", "set", "car_loan", str(path), "--config", str(config_path), "--label-column", "repaid"]) == 0
    )
    with Store(settings(tmp_path).storage.url) as store:
        row = store.references("car_loan")[0]
        assert row["summary"]["estimation"] == {
            "methods": ["cbpe", "pca_reconstruction"], "label_column": "repaid", "error": None,
        }  # fmt: skip
        assert Estimators.from_bytes(store.reference_estimators("car_loan", "1") or b"").methods == [
            "cbpe", "pca_reconstruction",
        ]  # fmt: skip


def test_every_part_of_the_estimators_survives_bytes() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3_000, 3))
    x[:, 1] += 0.8 * x[:, 0]
    prediction = x @ np.array([1.0, 0.5, -0.2])
    truth = prediction + rng.normal(scale=0.2 + 0.2 * np.abs(x[:, 0]))
    scores = rng.uniform(0, 1, 3_000)
    rows = np.column_stack([x, prediction])
    estimators = Estimators(
        cbpe=CBPE.fit_binary(scores, rng.uniform(0, 1, 3_000) < scores, chunk_size=500),
        pca=PCAReconstruction.fit(x, columns=["a", "b", "c"]),
        domain=DomainClassifier(x, max_rows=1_000, seed=2),
        columns=("a", "b", "c"),
        loss=DirectLossEstimator(rows, truth, chunk_size=500, max_rows=2_000, seed=4),
    )
    restored = Estimators.from_bytes(estimators.to_bytes())
    assert restored.methods == ["cbpe", "direct_loss", "pca_reconstruction", "domain_classifier"]
    assert restored.to_bytes() == estimators.to_bytes()
    assert estimators.loss is not None and estimators.loss.rows.shape == (2_000, 4)  # bounded training sample
    assert estimators.domain is not None and estimators.domain.reference.shape == (1_000, 3)
    shifted = x[:600] * np.array([1.0, -1.0, 1.0])  # the correlation of a and b reversed
    window = np.column_stack([shifted, shifted @ np.array([1.0, 0.5, -0.2])])
    assert restored.cbpe is not None and restored.pca is not None
    assert restored.domain is not None and restored.loss is not None
    assert estimators.cbpe is not None and estimators.pca is not None
    assert restored.cbpe.estimate(scores[:600]) == estimators.cbpe.estimate(scores[:600])
    assert restored.pca.evaluate(shifted) == estimators.pca.evaluate(shifted)
    assert restored.domain.evaluate(shifted) == estimators.domain.evaluate(shifted)
    assert restored.loss.estimate(window) == estimators.loss.estimate(window)
    assert estimators.domain.evaluate(shifted).drift  # type: ignore[union-attr]


def test_estimators_of_another_format_are_refused() -> None:
    with pytest.raises(ValueError, match="not estimators of format 1"):
        Estimators.from_bytes(PCAReconstruction.fit(np.random.default_rng(0).normal(size=(50, 2))).to_bytes())
