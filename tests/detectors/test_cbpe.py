"""CBPE: isotonic calibration against scikit-learn, estimates against the car-loan labels
(the "Done when" of issue 21), multiclass one-vs-rest, determinism and storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.estimation.calibration import IsotonicCalibrator
from detectors.estimation.cbpe import CBPE
from detectors.estimation.metrics import binary_metrics, weighted_auc

DATA = Path(__file__).resolve().parents[1] / "data" / "car_loan"
CAR_LOAN_THRESHOLD = 0.65  # the car-loan model's y_pred is y_pred_proba >= 0.65 in all 100,000 rows


@pytest.fixture(scope="module")
def car_loan() -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = pd.read_csv(DATA / "synthetic_car_loan_reference.csv.gz")
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    target = pd.read_csv(DATA / "synthetic_car_loan_analysis_target.csv.gz")
    return reference, analysis.merge(target, on="id", validate="one_to_one")


def test_isotonic_calibration_matches_scikit_learn() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(3)
    scores = np.round(rng.uniform(size=5_000), 3)  # ties, as real model scores have
    labels = rng.uniform(size=5_000) < scores**2
    ours = IsotonicCalibrator.fit(scores, labels)
    theirs = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(scores, labels)
    grid = np.linspace(-0.1, 1.1, 1_201)
    np.testing.assert_allclose(ours(grid), theirs.predict(grid), atol=1e-12)
    assert np.all(np.diff(ours(grid)) >= 0)


def test_expected_metrics_with_certain_labels_are_the_realized_ones() -> None:
    # With calibrated probabilities of exactly 0 or 1 the expectation is the realized metric:
    # scores 0.9 0.8 0.3 0.6 0.2 0.55 0.4 0.7, labels 1 1 0 0 0 1 1 0 -> tp 3 fp 2 fn 1 tn 2,
    # AUC: 0.9, 0.8 beat all 4 negatives (0.3 0.6 0.2 0.7), 0.55 and 0.4 beat 2 each -> 12 / 16.
    s = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.55, 0.4, 0.7])
    y = np.array([1, 1, 0, 0, 0, 1, 1, 0], dtype=float)
    metrics, confusion = binary_metrics(s, y, 0.5)
    assert confusion == {"tp": 3.0, "fp": 2.0, "fn": 1.0, "tn": 2.0}
    assert metrics["roc_auc"] == pytest.approx(12 / 16, abs=1e-15)
    assert metrics["accuracy"] == pytest.approx(5 / 8, abs=1e-15)
    assert metrics["f1"] == pytest.approx(6 / 9, abs=1e-15)
    # A tie between a positive and a negative counts half.
    assert weighted_auc(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 0.5


def car_loan_table(reference: pd.DataFrame, analysis: pd.DataFrame, seed: int = 0) -> list[dict[str, float]]:
    """Per 5,000-row window: estimated and realized ROC AUC and accuracy, and the alert."""
    from sklearn.metrics import roc_auc_score

    model = CBPE.fit_binary(
        reference["y_pred_proba"], reference["repaid"] == 1, threshold=CAR_LOAN_THRESHOLD, seed=seed
    )
    rows = []
    for i in range(10):
        chunk = analysis.iloc[i * 5_000 : (i + 1) * 5_000]
        estimate = model.estimate(chunk["y_pred_proba"].to_numpy(), window_seq=i)
        assert estimate is not None and estimate.n == 5_000
        rows.append(
            {
                "estimated_roc_auc": estimate.metrics["roc_auc"].value,
                "realized_roc_auc": roc_auc_score(chunk["repaid"], chunk["y_pred_proba"]),
                "estimated_accuracy": estimate.metrics["accuracy"].value,
                "realized_accuracy": float(np.mean(chunk["y_pred"] == chunk["repaid"])),
                "alert": estimate.alert,
            }
        )
    return rows


def test_car_loan_estimates_follow_the_realized_performance_without_labels(car_loan) -> None:
    reference, analysis = car_loan
    assert bool(((reference["y_pred_proba"] >= CAR_LOAN_THRESHOLD) == (reference["y_pred"] == 1)).all())
    table = car_loan_table(reference, analysis)
    for i, row in enumerate(table):
        assert abs(row["estimated_roc_auc"] - row["realized_roc_auc"]) <= 0.02, (i, row)
        assert abs(row["estimated_accuracy"] - row["realized_accuracy"]) <= 0.02, (i, row)
    accuracy = [row["estimated_accuracy"] for row in table]
    assert max(accuracy[5:]) < min(accuracy[:5])  # the drop of windows 5-9, seen without labels
    # The realized drop is real, and the alert (reference - 3 sampling errors) fires on it only.
    realized = [row["realized_accuracy"] for row in table]
    assert max(realized[5:]) < min(realized[:5])
    assert [row["alert"] for row in table] == [False] * 5 + [True] * 5


def test_estimates_carry_a_band_from_the_reference_variation(car_loan) -> None:
    reference, analysis = car_loan
    model = CBPE.fit_binary(reference["y_pred_proba"], reference["repaid"], threshold=CAR_LOAN_THRESHOLD)
    e5k = model.estimate(analysis["y_pred_proba"].to_numpy()[:5_000])
    e20k = model.estimate(analysis["y_pred_proba"].to_numpy()[:20_000])
    assert e5k is not None and e20k is not None
    m5k, m20k = e5k.metrics["accuracy"], e20k.metrics["accuracy"]
    # The sampling error at 5,000 rows is measured on the reference; a window 4x larger has half of it.
    assert m20k.sampling_error == pytest.approx(m5k.sampling_error / 2, rel=1e-12)
    assert m5k.lower == pytest.approx(m5k.value - 3 * m5k.sampling_error, abs=1e-15)
    assert m5k.threshold == pytest.approx(m5k.reference - 3 * m5k.sampling_error, abs=1e-15)
    # Accuracy of a 5,000-row chunk: binomial standard error sqrt(a (1 - a) / n), within 15 %.
    a = m5k.reference
    assert m5k.sampling_error == pytest.approx(np.sqrt(a * (1 - a) / 5_000), rel=0.15)


def test_estimates_are_deterministic_for_a_seed_and_survive_storage(car_loan) -> None:
    reference, analysis = car_loan
    scores = analysis["y_pred_proba"].to_numpy()[25_000:30_000]
    fit = dict(threshold=CAR_LOAN_THRESHOLD, seed=7)
    a = CBPE.fit_binary(reference["y_pred_proba"], reference["repaid"], **fit)
    b = CBPE.fit_binary(reference["y_pred_proba"], reference["repaid"], **fit)
    restored = CBPE.from_bytes(a.to_bytes())
    assert a.to_bytes() == b.to_bytes() == restored.to_bytes()
    assert a.estimate(scores) == b.estimate(scores) == restored.estimate(scores)
    other_seed = CBPE.fit_binary(reference["y_pred_proba"], reference["repaid"], threshold=CAR_LOAN_THRESHOLD, seed=8)
    assert other_seed.chunk_error != a.chunk_error  # the seed only moves the resampled sampling error
    assert other_seed.estimate(scores).metrics["accuracy"].value == a.estimate(scores).metrics["accuracy"].value


def _multiclass(rng: np.random.Generator, n: int, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated 3-class model: labels drawn from the probabilities it states."""
    logits = rng.normal(size=(n, 3)) * 1.5 + np.log(prior)
    probas = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in probas])
    return np.round(probas, 3), labels


def test_multiclass_one_vs_rest_estimates_realized_metrics() -> None:
    rng = np.random.default_rng(11)
    classes = ["a", "b", "c"]
    ref_p, ref_y = _multiclass(rng, 20_000, np.array([1 / 3, 1 / 3, 1 / 3]))
    model = CBPE.fit_multiclass(ref_p, np.array(classes)[ref_y], classes)
    from detectors.estimation.metrics import multiclass_metrics

    for prior in ([1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1]):  # covariate shift: the class mix moves
        p, y = _multiclass(rng, 5_000, np.array(prior))
        estimate = model.estimate(p)
        assert estimate is not None
        realized, _ = multiclass_metrics(p, np.eye(3)[y])
        for name in ("roc_auc", "accuracy", "f1"):
            assert abs(estimate.metrics[name].value - realized[name]) <= 0.02, (prior, name)
        assert np.sum(estimate.confusion["matrix"]) == pytest.approx(5_000, rel=1e-9)


def test_bad_input_is_refused_with_what_and_where() -> None:
    with pytest.raises(ValueError, match=r"scores must be probabilities in \[0, 1\]: 1 are not, the first at row 2"):
        CBPE.fit_binary([0.1, 0.2, 1.5, 0.3], [0, 1, 1, 0])
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        CBPE.fit_binary([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match=r"labels hold classes not in classes: \['z'\]"):
        CBPE.fit_multiclass([[0.5, 0.5]] * 4, ["a", "b", "z", "a"], ["a", "b"])
    with pytest.raises(ValueError, match=r"probas must be an n x 2 array .* got shape \(4, 3\)"):
        CBPE.fit_multiclass([[0.2, 0.3, 0.5]] * 4, ["a", "b", "a", "a"], ["a", "b"])
    model = CBPE.fit_binary(np.linspace(0, 1, 400), np.arange(400) % 2, min_rows=100)
    assert model.estimate(np.full(99, 0.5)) is None  # under min_rows: no estimate, not a noisy one


def test_multiclass_reference_probabilities_from_prefixed_columns_or_mappings() -> None:
    from detectors.estimation.fitting import class_probabilities, fit_estimators
    from detectors.schema import Schema

    rng = np.random.default_rng(12)
    classes = ["a", "b", "c"]
    probas, labels = _multiclass(rng, 3_000, np.array([1 / 3, 1 / 3, 1 / 3]))
    frame = pd.DataFrame({f"y_pred_proba_{c}": probas[:, k] for k, c in enumerate(classes)})
    frame["prediction"] = [dict(zip(classes, row, strict=True)) for row in probas.tolist()]
    frame["x"], frame["label"] = rng.normal(size=3_000), np.array(classes)[labels]
    from_columns = class_probabilities(frame, "prediction", classes, "y_pred_proba_")
    from_mappings = class_probabilities(frame, "prediction", classes, None)
    np.testing.assert_array_equal(from_columns, probas)
    np.testing.assert_array_equal(from_mappings, probas)
    schema = Schema({"x": "numeric"}, prediction_kind="multiclass")
    fitted = fit_estimators(frame, schema, label_column="label", classes=classes, proba_prefix="y_pred_proba_")
    assert fitted.cbpe is not None and fitted.cbpe.classes == classes and fitted.pca is None  # one numeric feature
    with pytest.raises(ValueError, match=r"no probability columns \['p_a', 'p_b', 'p_c'\]"):
        class_probabilities(frame, "prediction", classes, "p_")
    with pytest.raises(ValueError, match="row 0: column 'x' must hold {class: probability} mappings"):
        class_probabilities(frame, "x", classes, None)
