"""The drift decision: significance after correction AND minimum effect, per feature and per dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from detectors.decision import (
    CategoricalEvidence,
    DatasetDecision,
    DriftSettings,
    NumericEvidence,
    decide,
    decide_prediction,
)
from detectors.stats import adjust_pvalues, chi_square_test, jensen_shannon_distance, ks_test, proportions_ztest

# Deterministic "samples": normal quantiles, so test outcomes do not depend on a seed.
GRID = stats.norm.ppf((np.arange(10_000) + 0.5) / 10_000)
SMALL_GRID = stats.norm.ppf((np.arange(150) + 0.5) / 150)


def _numeric(shift: float, ref: np.ndarray = GRID) -> NumericEvidence:
    return NumericEvidence(ref, ref + shift * np.std(ref))


def test_default_settings() -> None:
    s = DriftSettings()
    assert (s.alpha, s.correction, s.min_effect_numeric, s.min_effect_categorical) == (0.05, "bh", 0.1, 0.045)
    assert (s.numeric_test, s.numeric_effect, s.categorical_test, s.categorical_effect) == (
        "auto",
        "wasserstein",
        "auto",
        "jensenshannon",
    )
    assert (s.debias_js, s.min_samples, s.dataset_drift_share) == (True, 100, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.5}, r"alpha must be in \(0, 1\), got 1.5"),
        ({"correction": "holm"}, "correction must be one of"),
        ({"min_effect_numeric": -1}, "min_effect_numeric must be a finite number >= 0, got -1"),
        ({"min_effect_categorical": float("inf")}, "min_effect_categorical must be a finite number >= 0"),
        ({"numeric_test": "t"}, "numeric_test must be one of"),
        ({"numeric_effect": "kl"}, "numeric_effect must be one of"),
        ({"categorical_test": "g"}, "categorical_test must be one of"),
        ({"categorical_effect": "cramer"}, "categorical_effect must be one of"),
        ({"debias_js": 1}, "debias_js must be a bool, got 1"),
        ({"min_samples": 0}, "min_samples must be an integer >= 1, got 0"),
        ({"min_samples": 10.0}, "min_samples must be an integer >= 1, got 10.0"),
        ({"dataset_drift_share": 0}, r"dataset_drift_share must be in \(0, 1\], got 0"),
        ({"dataset_drift_share": 1.5}, r"dataset_drift_share must be in \(0, 1\], got 1.5"),
    ],
)
def test_settings_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftSettings(**kwargs)


def test_numeric_large_shift_drifts_with_ks_and_wasserstein() -> None:
    result = decide_prediction(_numeric(0.3), name="x")
    assert result.feature == "x" and result.kind == "numeric" and not result.insufficient
    # 10k x 10k pairs: past MAX_EXACT_KS_PAIRS the decision uses the asymptotic p-value
    assert result.test == ks_test(GRID, GRID + 0.3 * np.std(GRID), method="asymp")
    assert result.effect.method == "wasserstein_normed"  # type: ignore[union-attr]
    assert result.effect.statistic == pytest.approx(0.3, rel=1e-9)  # type: ignore[union-attr]
    assert result.adjusted_pvalue == result.test.pvalue  # type: ignore[union-attr]
    assert result.drift


def test_significant_but_small_effect_is_not_drift() -> None:
    result = decide_prediction(_numeric(0.06))
    assert result.test.pvalue < 0.01  # type: ignore[union-attr]
    assert result.effect.statistic == pytest.approx(0.06, rel=1e-9)  # type: ignore[union-attr]
    assert not result.drift


def test_large_effect_but_not_significant_is_not_drift() -> None:
    result = decide_prediction(_numeric(0.15, SMALL_GRID))
    assert result.effect.drift and result.test.pvalue > 0.05  # type: ignore[union-attr]
    assert not result.drift


def test_reference_spread_from_profile_is_used() -> None:
    ev = NumericEvidence(GRID, GRID + 0.2, reference_spread=2.0)
    assert decide_prediction(ev).effect.statistic == pytest.approx(0.1, rel=1e-9)  # type: ignore[union-attr]
    ev0 = NumericEvidence(GRID, GRID + 0.2, reference_spread=0.0)  # unknown/constant: fall back to the sample std
    assert decide_prediction(ev0).effect.statistic == pytest.approx(0.2 / np.std(GRID), rel=1e-9)  # type: ignore[union-attr]


def test_constant_numeric_columns() -> None:
    same = decide_prediction(NumericEvidence(np.full(500, 3.0), np.full(200, 3.0)))
    assert (same.test.statistic, same.test.pvalue, same.effect.statistic, same.drift) == (0.0, 1.0, 0.0, False)  # type: ignore[union-attr]
    different = decide_prediction(NumericEvidence(np.full(500, 3.0), np.full(200, 4.0)))
    assert different.test.statistic == 1.0 and different.drift  # type: ignore[union-attr]


def test_infinities_go_to_the_test_and_are_dropped_from_the_effect() -> None:
    ref = np.concatenate([SMALL_GRID, [np.inf]])
    cur = np.concatenate([SMALL_GRID + 0.5, [np.inf, -np.inf]])
    result = decide_prediction(NumericEvidence(ref, cur))
    assert result.test.n_current == 152  # type: ignore[union-attr]
    assert result.effect.n_current == 150  # type: ignore[union-attr]
    all_inf = decide_prediction(NumericEvidence(SMALL_GRID, np.full(150, np.inf)))
    assert all_inf.effect.statistic == float("inf") and all_inf.drift  # type: ignore[union-attr]


def test_numeric_alternative_tests_and_count_effects() -> None:
    ref_counts, cur_counts = np.array([1000, 1000, 1000, 1000]), np.array([700, 900, 1100, 1300])
    ev = NumericEvidence(GRID, GRID + 0.3, ref_counts, cur_counts)
    chi = decide_prediction(ev, DriftSettings(numeric_test="chi2", numeric_effect="psi", min_effect_numeric=0.05))
    assert chi.test == chi_square_test(ref_counts, cur_counts)
    assert chi.effect.method == "psi" and chi.drift  # type: ignore[union-attr]
    for name, method in (("anderson", "anderson_darling"), ("cramervonmises", "cramer_von_mises")):
        assert decide_prediction(ev, DriftSettings(numeric_test=name)).test.method == method  # type: ignore[arg-type, union-attr]
    with pytest.raises(ValueError, match="'x': chi2/wasserstein needs bin counts"):
        decide({"x": _numeric(0.1)}, DriftSettings(numeric_test="chi2"))


def test_categorical_chi_square_and_debiased_js() -> None:
    ref, cur = np.array([5000, 3000, 2000]), np.array([400, 350, 250])
    result = decide_prediction(CategoricalEvidence(ref, cur))
    assert result.kind == "categorical"
    assert result.test == chi_square_test(ref, cur)
    assert result.effect == jensen_shannon_distance(ref, cur, threshold=0.045, debias=True)
    assert result.drift == (result.test.pvalue < 0.05 and result.effect.drift)  # type: ignore[union-attr]
    raw = decide_prediction(CategoricalEvidence(ref, cur), DriftSettings(debias_js=False))
    assert raw.effect.method == "jensen_shannon"  # type: ignore[union-attr]


def test_two_categories_use_the_z_test_for_the_second_category() -> None:
    result = decide_prediction(CategoricalEvidence([600, 0, 400], [500, 0, 500]))
    assert result.test == proportions_ztest(400, 1000, 500, 1000)
    with pytest.raises(ValueError, match="z-test needs exactly 2 non-empty categories, got 3"):
        decide_prediction(CategoricalEvidence([100, 200, 300], [300, 200, 100]), DriftSettings(categorical_test="z"))


def test_single_category_is_no_drift() -> None:
    result = decide_prediction(CategoricalEvidence([0, 500], [0, 300]))
    assert (result.test.pvalue, result.effect.statistic, result.drift) == (1.0, 0.0, False)  # type: ignore[union-attr]


def test_insufficient_data_is_reported_not_tested() -> None:
    features = {
        "few": NumericEvidence(GRID, GRID[:50]),
        "empty": NumericEvidence(GRID, np.array([])),
        "no_rows": CategoricalEvidence([10, 90], [0, 0]),
        "small_ref": CategoricalEvidence([10, 20], [500, 500]),
        "ok": _numeric(0.5),
    }
    decision = decide(features)
    assert [f.insufficient for f in decision.features] == [True, True, True, True, False]
    assert decision.feature("few").detail == "current has 50 observations, min_samples is 100"
    assert decision.feature("small_ref").detail == "reference has 30 observations, min_samples is 100"
    assert decision.feature("empty").test is None and decision.feature("empty").adjusted_pvalue is None
    assert (decision.n_evaluated, decision.n_insufficient, decision.n_drifted) == (1, 4, 1)
    assert decision.share == 1.0 and decision.dataset_drift
    nothing = decide({"few": NumericEvidence(GRID, GRID[:50])})
    assert (nothing.share, nothing.dataset_drift, nothing.n_evaluated) == (0.0, False, 0)


def _binary(cur_second: int) -> CategoricalEvidence:
    return CategoricalEvidence([500, 500], [1000 - cur_second, cur_second])


def test_benjamini_hochberg_across_features() -> None:
    # "a": z = 2.24, p = 0.025 on its own; four unchanged features have p = 1.
    features = {"a": _binary(550), **{f"same{i}": _binary(500) for i in range(4)}}
    loose = DriftSettings(min_effect_categorical=0.0)
    raw = proportions_ztest(500, 1000, 550, 1000).pvalue
    bh = decide(features, loose)
    assert bh.feature("a").adjusted_pvalue == pytest.approx(raw * 5, rel=1e-12)  # rank 1 of 5
    assert not bh.feature("a").drift
    none = decide(features, DriftSettings(min_effect_categorical=0.0, correction="none"))
    assert none.feature("a").adjusted_pvalue == raw and none.feature("a").drift
    bonf = decide(features, DriftSettings(min_effect_categorical=0.0, correction="bonferroni"))
    assert bonf.feature("a").adjusted_pvalue == pytest.approx(min(1.0, raw * 5), rel=1e-12)


def test_adjusted_pvalues_are_the_family_adjustment() -> None:
    features = {"n1": _numeric(0.3), "n2": _numeric(0.02), "c1": _binary(560), "c2": _binary(505)}
    decision = decide(features)
    raw = [decision.feature(n).test.pvalue for n in features]  # type: ignore[union-attr]
    np.testing.assert_allclose([f.adjusted_pvalue for f in decision.features], adjust_pvalues(raw, "bh"), rtol=1e-12)
    for f in decision.features:
        assert f.drift == (f.adjusted_pvalue < 0.05 and f.effect.drift)  # type: ignore[union-attr, operator]


def test_dataset_drift_share_and_overrides() -> None:
    features = {"a": _numeric(0.5), "b": _numeric(0.5), "c": _numeric(0.0), "d": _numeric(0.0)}
    decision = decide(features)
    assert isinstance(decision, DatasetDecision)
    assert decision.drifted_features == ("a", "b")
    assert (decision.n_drifted, decision.share, decision.threshold, decision.dataset_drift) == (2, 0.5, 0.5, True)
    assert not decide(features, DriftSettings(dataset_drift_share=0.6)).dataset_drift
    # Per-feature override: "b" only counts shifts of at least 1 SD.
    strict = decide(features, overrides={"b": DriftSettings(min_effect_numeric=1.0)})
    assert strict.drifted_features == ("a",) and not strict.dataset_drift
    with pytest.raises(ValueError, match=r"overrides name unknown features: \['zz'\]"):
        decide(features, overrides={"zz": DriftSettings()})
    with pytest.raises(KeyError):
        decision.feature("zz")


def test_to_dict_is_json_serialisable() -> None:
    decision = decide({"a": _numeric(0.5), "few": NumericEvidence(GRID, GRID[:5]), "c": _binary(600)})
    payload = json.loads(json.dumps(decision.to_dict()))
    assert payload["n_drifted"] == 2 and payload["features"][1]["insufficient"]
    assert payload["features"][0]["effect"]["method"] == "wasserstein_normed"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: NumericEvidence(np.array([1.0, np.nan]), GRID), "reference_sample contains NaN"),
        (lambda: NumericEvidence(GRID, np.ones((2, 2))), r"current_sample must be 1-D, got shape \(2, 2\)"),
        (lambda: NumericEvidence(GRID, GRID, np.ones(3)), "must be given together"),
        (lambda: NumericEvidence(GRID, GRID, np.ones(3), np.ones(4)), "same length"),
        (lambda: CategoricalEvidence([1, 2], [1, 2, 3]), "same length, got 2 and 3"),
        (lambda: CategoricalEvidence([1, -2], [1, 2]), "reference_counts must be >= 0"),
        (lambda: decide({"x": object()}), "expected NumericEvidence or CategoricalEvidence, got object"),  # type: ignore[dict-item]
    ],
)
def test_invalid_evidence(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        build()
