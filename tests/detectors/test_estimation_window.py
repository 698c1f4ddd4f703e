"""What a window samples for the estimates before labels come: a multiclass model's class
probabilities (CBPE on live windows) and the codes of categorical features (multivariate
drift on encoded categories), in the same bounded row sample, through a checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch
from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.fitting import fit_estimators
from detectors.estimation.metrics import multiclass_metrics
from detectors.estimation.multivariate import MultivariateDrift
from detectors.estimation.window import Estimators, class_probability_columns, one_hot, proba_channel
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import CategoricalProfile, ReferenceProfile
from detectors.schema import Schema
from detectors.windows.policies import WindowPolicy

CLASSES = ["a", "b", "c"]
MULTICLASS = Schema({"x": "numeric"}, prediction_kind="multiclass")
WINDOW = 5_000


def calibrated(rng: np.random.Generator, n: int, prior: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated 3-class model: labels drawn from the probabilities it states."""
    logits = rng.normal(size=(n, 3)) * 1.5 + np.log(prior)
    probas = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 4)
    labels = (rng.random(n)[:, None] > np.cumsum(probas, axis=1)).sum(axis=1).clip(0, 2)
    return probas, labels


def mappings(probas: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(CLASSES, row, strict=True)) for row in probas.tolist()]


def multiclass_batch(predictions: list[Any], x: np.ndarray, t0: int) -> Batch:
    """Records as the service turns them into columns (monitor.detection.batch_from_records)."""
    rows = [{"inputs": {"x": v}, "prediction": p, "timestamp": float(t0 + i)} for i, (v, p) in enumerate(zip(x.tolist(), predictions, strict=True))]  # fmt: skip
    batch = Batch.from_records(rows, MULTICLASS)
    batch.inputs.update(class_probability_columns(predictions, CLASSES))
    return batch


@pytest.fixture(scope="module")
def multiclass() -> tuple[ReferenceProfile, DetectorSettings]:
    rng = np.random.default_rng(31)
    probas, labels = calibrated(rng, 20_000, [1 / 3, 1 / 3, 1 / 3])
    frame = pd.DataFrame({"x": rng.normal(size=20_000), "prediction": mappings(probas)})
    frame["label"] = np.array(CLASSES)[labels]
    profile = ReferenceProfile.from_frame(frame, MULTICLASS, version="r1")
    estimators = fit_estimators(frame, MULTICLASS, label_column="label", classes=CLASSES, multivariate=False)
    assert estimators.extra_numeric == ("__proba__:a", "__proba__:b", "__proba__:c")
    policy = WindowPolicy("count", size=WINDOW)
    return profile, DetectorSettings(policy=policy, sample_size=WINDOW, estimators=estimators)


def test_a_multiclass_window_is_estimated_from_the_class_probabilities_it_samples(multiclass) -> None:
    profile, settings = multiclass
    rng = np.random.default_rng(32)
    probas, labels = calibrated(rng, WINDOW, [0.6, 0.3, 0.1])  # covariate shift: the class mix moves
    predictions: list[Any] = mappings(probas)
    predictions[7], predictions[4_000] = "a", {"a": "high", "b": 0.5, "c": 0.5}  # no probabilities to use
    x = rng.normal(size=WINDOW)
    detector = ModelDetector(profile, settings)
    assert detector.layout.extra_numeric == [proba_channel(c) for c in CLASSES]
    assert detector.close(multiclass_batch(predictions[:2_000], x[:2_000], 0)) == []
    # A checkpoint mid-window, restored: the window goes on with the same sample.
    restored = ModelDetector.from_bytes(detector.to_bytes(), profile, settings)
    [window] = restored.close(multiclass_batch(predictions[2_000:], x[2_000:], 2_000))
    [estimate] = restored.estimate(window)
    assert isinstance(estimate, EstimatedPerformance) and estimate.kind == "multiclass"
    usable = np.ones(WINDOW, dtype=bool)
    usable[[7, 4_000]] = False
    assert settings.estimators is not None and settings.estimators.cbpe is not None
    offline = settings.estimators.cbpe.estimate(probas[usable])
    assert offline is not None and estimate.n == offline.n == WINDOW - 2
    for name, metric in offline.metrics.items():
        assert estimate.metrics[name].value == pytest.approx(metric.value, abs=1e-9), name
        assert estimate.metrics[name].lower == pytest.approx(metric.lower, abs=1e-9), name
    assert estimate.confusion["matrix"] == offline.confusion["matrix"]
    # The model is calibrated: the estimate is the realized performance, within sampling error.
    realized, _ = multiclass_metrics(probas[usable], np.eye(3)[labels[usable]])
    for name in ("accuracy", "roc_auc", "f1"):
        assert abs(estimate.metrics[name].value - realized[name]) <= 0.02, name
    # Without a checkpoint: the same estimate, to the last bit.
    straight = ModelDetector(profile, settings)
    [whole] = straight.close(multiclass_batch(predictions, x, 0))
    [again] = straight.estimate(whole)
    assert isinstance(again, EstimatedPerformance) and again.metrics == estimate.metrics


def test_class_probabilities_of_records_missing_classes_and_bad_values() -> None:
    columns = class_probability_columns([{"a": 0.2, "b": 0.8}, "b", None, {"a": 0.1, "b": [1], "c": 0.9}], CLASSES)
    assert list(columns) == ["__proba__:a", "__proba__:b", "__proba__:c"]
    table = np.column_stack(list(columns.values()))
    np.testing.assert_array_equal(table[0], [0.2, 0.8, 0.0])  # a class missing from a mapping: probability 0
    assert np.isnan(table[1:]).all()  # a label, a null, a value that is no number: nothing to estimate from


# ---- categorical features in the multivariate methods -----------------------------------------
MIXED = Schema({"x": "numeric", "z": "numeric", "c": "categorical"})


def mixed(rng: np.random.Generator, n: int, linked: bool) -> pd.DataFrame:
    """x, z standard normal and independent; c is "hi" or "lo" half the time each, and, when
    ``linked``, "hi" mostly where x is high (the marginals do not depend on ``linked``)."""
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    driver = x + 0.5 * rng.standard_normal(n) if linked else rng.standard_normal(n)
    return pd.DataFrame({"x": x, "z": z, "c": np.where(driver > 0, "hi", "lo")})


def mixed_batch(frame: pd.DataFrame) -> Batch:
    return Batch.from_frame(frame, MIXED, default_timestamp=0.0)


@pytest.fixture(scope="module")
def categorical() -> tuple[ReferenceProfile, DetectorSettings]:
    rng = np.random.default_rng(41)
    reference = mixed(rng, 20_000, linked=True)
    profile = ReferenceProfile.from_frame(reference, MIXED, version="r1")
    estimators = fit_estimators(reference, MIXED, domain_classifier=True, seed=3)
    counts = reference["c"].value_counts()
    assert dict(estimators.categorical) == {"c": tuple(counts.index)} and estimators.columns == ("x", "z")
    assert estimators.pca is not None
    assert estimators.pca.columns == ["x", "z", *(f"c={c}" for c in counts.index), "c=(other)"]
    policy = WindowPolicy("count", size=WINDOW)
    return profile, DetectorSettings(policy=policy, sample_size=WINDOW, estimators=estimators)


def verdicts(profile: ReferenceProfile, settings: DetectorSettings, frame: pd.DataFrame) -> dict[str, Any]:
    detector = ModelDetector(profile, settings)
    assert detector.layout.coded_categorical == ["c"]
    [window] = detector.close(mixed_batch(frame))
    evaluation = detector.evaluate(window)
    out: dict[str, Any] = {e.method: e for e in detector.estimate(window) if isinstance(e, MultivariateDrift)}
    out["univariate"] = evaluation.drift.dataset_drift or evaluation.drift.n_drifted > 0
    return out


def test_a_correlation_change_between_a_categorical_and_a_numeric_feature_is_seen(categorical) -> None:
    profile, settings = categorical
    seen = verdicts(profile, settings, mixed(np.random.default_rng(42), WINDOW, linked=False))
    assert not seen["univariate"]  # the marginals are the reference's
    pca, domain = seen["pca_reconstruction"], seen["domain_classifier"]
    assert (pca.n, domain.n) == (WINDOW, WINDOW)
    assert pca.drift and pca.statistic > pca.upper
    assert domain.drift and domain.statistic > domain.upper
    same = verdicts(profile, settings, mixed(np.random.default_rng(43), WINDOW, linked=True))
    assert not same["univariate"] and not same["pca_reconstruction"].drift and not same["domain_classifier"].drift
    # The numeric features alone hold no correlation to lose: fitted on them, PCA sees nothing.
    numeric = fit_estimators(
        mixed(np.random.default_rng(41), 20_000, linked=True).drop(columns="c"),
        Schema({"x": "numeric", "z": "numeric"}),
    )
    assert numeric.pca is not None
    frame = mixed(np.random.default_rng(42), WINDOW, linked=False)
    verdict = numeric.pca.evaluate(frame[["x", "z"]].to_numpy())
    assert verdict is not None and not verdict.drift


def test_the_window_samples_category_codes_and_restores_them_identically(categorical) -> None:
    profile, settings = categorical
    frame = mixed(np.random.default_rng(44), WINDOW, linked=False)
    frame.loc[[3, 9], "c"] = ["new", None]  # unseen: one-hot as other; null: missing (NaN)
    detector = ModelDetector(profile, settings)
    assert detector.close(mixed_batch(frame.iloc[:1_234])) == []
    stored = settings.estimators
    assert stored is not None
    restored_settings = DetectorSettings(
        policy=settings.policy, sample_size=WINDOW, estimators=Estimators.from_bytes(stored.to_bytes())
    )
    restored = ModelDetector.from_bytes(detector.to_bytes(), profile, restored_settings)
    [window] = restored.close(mixed_batch(frame.iloc[1_234:]))
    straight = ModelDetector(profile, settings)
    [whole] = straight.close(mixed_batch(frame))
    np.testing.assert_array_equal(window.reservoir.sample, whole.reservoir.sample)
    codes = whole.reservoir.sample[:, whole.layout.sample_index["c"]]
    channel = profile.channels["c"]
    assert isinstance(channel, CategoricalProfile)
    top = list(channel.categories)
    assert codes[3] == len(top) + 1 and codes[9] == len(top) + 2  # unseen, null slots
    expected = one_hot(np.array(frame["c"].tolist(), dtype=object), ["hi", "lo"])
    from detectors.estimation.window import window_rows

    np.testing.assert_array_equal(window_rows(whole, [], {"c": ["hi", "lo"]})[[0, 1, 3]], expected[[0, 1, 3]])
    assert np.isnan(window_rows(whole, [], {"c": ["hi", "lo"]})[9]).all()
    assert [e.to_dict() for e in restored.estimate(window)] == [e.to_dict() for e in straight.estimate(whole)]


def test_the_categorical_features_keep_their_order_through_storage() -> None:
    rng = np.random.default_rng(45)
    frame = pd.DataFrame(
        {"x": rng.normal(size=500), "zz": rng.choice(["p", "q"], 500), "aa": rng.choice(["r", "s"], 500)}
    )
    schema = Schema({"x": "numeric", "zz": "categorical", "aa": "categorical"})
    fitted = fit_estimators(frame, schema)
    assert fitted.coded_categorical == ("zz", "aa")  # the schema's order: the PCA's columns follow it
    restored = Estimators.from_bytes(fitted.to_bytes())
    assert restored.coded_categorical == ("zz", "aa") and restored.categorical == fitted.categorical
