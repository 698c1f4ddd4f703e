"""Multivariate drift and estimates through a model's detector: a change of correlation
only (marginals identical) that per-feature tests cannot see, the PCA statistic against
numpy, and estimates that survive a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch
from detectors.estimation.fitting import fit_estimators
from detectors.estimation.multivariate import DomainClassifier, MultivariateDrift, PCAReconstruction
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.windows.policies import WindowPolicy

SCHEMA = Schema({"x1": "numeric", "x2": "numeric", "x3": "numeric"})
WINDOW = 5_000


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """n rows of (x1, x2, x3): standard normal marginals, corr(x1, x2) = rho, x3 independent."""
    z = rng.standard_normal((n, 3))
    z[:, 1] = rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]
    return z


def frame(rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["x1", "x2", "x3"])


def batch(rows: np.ndarray, t0: float = 0.0) -> Batch:
    return Batch(
        timestamps=t0 + np.arange(rows.shape[0], dtype=float),
        inputs={"x1": rows[:, 0], "x2": rows[:, 1], "x3": rows[:, 2]},
    )


def test_pca_reconstruction_error_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    ref = correlated(rng, 20_000, 0.8) * [1.0, 3.0, 0.5] + [10.0, -2.0, 0.0]
    model = PCAReconstruction.fit(ref)
    z = (ref - ref.mean(axis=0)) / ref.std(axis=0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(z, rowvar=False, ddof=0))
    order = np.argsort(eigenvalues)[::-1]
    share = np.cumsum(eigenvalues[order]) / eigenvalues.sum()
    k = int(np.searchsorted(share, 0.65) + 1)
    assert model.n_components == k == 2  # 1.8 / 3 = 60 % for the first component, then 1 / 3 more
    kept = vectors[:, order[:k]]
    expected = np.linalg.norm(z - z @ kept @ kept.T, axis=1)
    np.testing.assert_allclose(model.errors(ref), expected, rtol=1e-9, atol=1e-12)
    # The one direction left out is x1 - x2 (variance 1 - 0.8), so the error is |N(0, 0.2)|.
    assert model.error_mean == pytest.approx(np.sqrt(2 * 0.2 / np.pi), rel=0.02)
    assert PCAReconstruction.from_bytes(model.to_bytes()).errors(ref[:100]).tolist() == model.errors(ref[:100]).tolist()


@pytest.fixture(scope="module")
def detector() -> ModelDetector:
    rng = np.random.default_rng(21)
    reference = frame(correlated(rng, 20_000, 0.8))
    profile = ReferenceProfile.from_frame(reference, SCHEMA, version="r1")
    estimators = fit_estimators(reference, SCHEMA, domain_classifier=True, seed=3)
    policy = WindowPolicy("count", size=WINDOW)
    return ModelDetector(profile, DetectorSettings(policy=policy, sample_size=WINDOW, estimators=estimators))


def window_verdicts(detector: ModelDetector, rows: np.ndarray) -> tuple[bool, dict[str, MultivariateDrift]]:
    """(univariate dataset drift or any feature drifted, multivariate verdicts by method) of one window."""
    [window] = detector.close(batch(rows))
    evaluation = detector.evaluate(window)
    univariate = evaluation.drift.dataset_drift or evaluation.drift.n_drifted > 0
    estimates = detector.estimate(window)
    assert all(isinstance(e, MultivariateDrift) for e in estimates)
    return univariate, {e.method: e for e in estimates if isinstance(e, MultivariateDrift)}


def test_a_change_of_correlation_alone_is_seen_by_the_multivariate_methods_only(detector) -> None:
    rng = np.random.default_rng(22)
    univariate, verdicts = window_verdicts(detector, correlated(rng, WINDOW, 0.2))
    assert not univariate  # marginals are the reference's: no feature drifts
    pca, domain = verdicts["pca_reconstruction"], verdicts["domain_classifier"]
    assert (pca.n, domain.n, pca.n_reference) == (WINDOW, WINDOW, 20_000)
    assert pca.drift and pca.statistic > pca.upper
    # The error of rows off the x1 = x2 line: |N(0, 1 - 0.2)| instead of |N(0, 1 - 0.8)|, on average.
    assert pca.statistic == pytest.approx(np.sqrt(2 * 0.8 / np.pi), rel=0.05)
    assert domain.drift and domain.statistic > domain.upper


def test_no_change_is_not_flagged(detector) -> None:
    rng = np.random.default_rng(23)
    univariate, verdicts = window_verdicts(detector, correlated(rng, WINDOW, 0.8))
    assert not univariate
    pca, domain = verdicts["pca_reconstruction"], verdicts["domain_classifier"]
    assert not pca.drift and pca.lower <= pca.statistic <= pca.upper
    assert not domain.drift and abs(domain.statistic - 0.5) < 0.05


def test_the_domain_classifier_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(24)
    ref, cur = correlated(rng, 2_000, 0.8), correlated(rng, 2_000, 0.5)
    a = DomainClassifier(ref, seed=1).evaluate(cur)
    b = DomainClassifier(ref, seed=1).evaluate(cur)
    assert a == b and a is not None and a.n == 2_000


def test_bad_rows_are_refused_with_what_and_where() -> None:
    with pytest.raises(ValueError, match=r"rows must be an n x 3 array .* got shape \(4, 2\)"):
        PCAReconstruction.fit(correlated(np.random.default_rng(0), 100, 0.5)).errors(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="PCA needs at least 10 reference rows and 2 columns"):
        PCAReconstruction.fit(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="infinite values"):
        PCAReconstruction.fit(np.full((20, 2), np.inf))


# ---- estimates through a checkpoint ------------------------------------------------------------
CAR_LOAN = Path(__file__).resolve().parents[1] / "data" / "car_loan"
CAR_SCHEMA = Schema(
    {
        "car_value": "numeric", "salary_range": "categorical", "debt_to_income_ratio": "numeric",
        "loan_length": "numeric", "repaid_loan_on_prev_car": "categorical", "size_of_downpayment": "categorical",
        "driver_tenure": "numeric",
    },
    prediction_kind="binary",
    prediction_column="y_pred_proba",
)  # fmt: skip


def test_estimates_survive_a_checkpoint_identically() -> None:
    reference = pd.read_csv(CAR_LOAN / "synthetic_car_loan_reference.csv.gz")
    analysis = pd.read_csv(CAR_LOAN / "synthetic_car_loan_analysis.csv.gz").iloc[20_000:35_000]
    profile = ReferenceProfile.from_frame(reference, CAR_SCHEMA, version="r1")
    estimators = fit_estimators(reference, CAR_SCHEMA, label_column="repaid", threshold=0.65, seed=4)
    # Windows of 7,000 with a 5,000-row sample: the estimates work on the reservoir's sample.
    settings = DetectorSettings(policy=WindowPolicy("count", size=7_000), sample_size=5_000, estimators=estimators)
    rows = Batch.from_frame(analysis, CAR_SCHEMA, default_timestamp=0.0)

    straight = ModelDetector(profile, settings)
    expected = [e for w in straight.close(rows) for e in straight.estimate(w)]
    first = ModelDetector(profile, settings)
    assert first.close(rows.select(slice(0, 9_500)))  # the checkpoint lands mid-way through window 1
    assert first.open_records == 2_500
    restored = ModelDetector.from_bytes(first.to_bytes(), profile, settings)
    windows = restored.close(rows.select(slice(9_500, 15_000)))
    assert [w.seq for w in windows] == [1]
    got = [e for e in restored.estimate(windows[0])]
    assert [e.to_dict() for e in got] == [e.to_dict() for e in expected[2:]]
    assert [e.to_dict()["result"] for e in expected] == ["estimated_performance", "multivariate_drift"] * 2
