"""Regression before labels come: direct loss estimation through a model's detector, on a
model whose error grows with |x1| (so moving x1 moves the error)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch
from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.fitting import fit_estimators
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.windows.policies import WindowPolicy

SCHEMA = Schema({"x1": "numeric", "x2": "numeric", "x3": "numeric"}, prediction_kind="regression")


def table(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    """Inputs N(shift, 1); the model predicts the conditional mean; noise sd 0.5 + |x1|."""
    x = rng.normal(shift, 1.0, size=(n, 3))
    mean = x[:, 0] + 0.5 * x[:, 1]
    frame = pd.DataFrame(x, columns=["x1", "x2", "x3"])
    frame["prediction"] = mean
    frame["label"] = mean + rng.normal(size=n) * (0.5 + np.abs(x[:, 0]))
    return frame


def test_direct_loss_estimation_follows_the_realized_error() -> None:
    rng = np.random.default_rng(31)
    reference = table(rng, 20_000, 0.0)
    profile = ReferenceProfile.from_frame(reference.drop(columns="label"), SCHEMA, version="r1")
    estimators = fit_estimators(reference, SCHEMA, label_column="label", multivariate=False, seed=2)
    assert estimators.loss is not None and estimators.columns == ("x1", "x2", "x3")
    settings = DetectorSettings(policy=WindowPolicy("count", size=5_000), sample_size=5_000, estimators=estimators)
    detector = ModelDetector(profile, settings)
    for shift, alert in ((0.0, False), (1.0, True)):
        window = table(rng, 5_000, shift)
        [closed] = detector.close(Batch.from_frame(window.drop(columns="label"), SCHEMA, default_timestamp=0.0))
        [estimate] = detector.estimate(closed)
        assert isinstance(estimate, EstimatedPerformance) and (estimate.kind, estimate.n) == ("regression", 5_000)
        error = window["prediction"] - window["label"]
        realized = {"mae": float(error.abs().mean()), "rmse": float(np.sqrt((error**2).mean()))}
        # Squared errors of this model have heavy tails: RMSE scatters more than MAE.
        assert estimate.metrics["mae"].value == pytest.approx(realized["mae"], rel=0.05), shift
        assert estimate.metrics["rmse"].value == pytest.approx(realized["rmse"], rel=0.10), shift
        if not shift:  # the band is the reference's sampling error: it holds where the reference is
            for name, value in realized.items():
                assert estimate.metrics[name].lower <= value <= estimate.metrics[name].upper, name
        assert estimate.alert is alert, (shift, estimate.alert_metrics)
    # With x1 shifted by one SD the realized MAE is ~30 % above the reference's: a real rise.
    assert realized["mae"] > 1.2 * estimate.metrics["mae"].reference
