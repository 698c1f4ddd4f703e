"""The drift decision: which features of a model drifted, and did the dataset drift.

Rule. A feature drifts when its change is *significant* after multiple-testing
correction across the model's features (Benjamini-Hochberg by default) AND its
*effect size* is at least a minimum. The p-value alone would flag every tiny,
harmless change once windows are large (a 0.05-SD shift is "significant" at a
million rows); the effect size alone would flag noise in small windows. The
dataset drifts when the share of drifted features among those with enough data
is >= ``dataset_drift_share``. Prediction drift is the same rule on one column
(:func:`decide_prediction`).

Methods (automatic, overridable via :class:`DriftSettings`):

* numeric (``numeric_test="auto"``): two-sample KS on the bounded reference and
  current samples (exact/asymptotic p-value as scipy's "auto"), effect =
  Wasserstein-1 normed by the reference standard deviation (unit: reference
  SDs; a mean shift of d SDs gives d). Alternatives: ``"anderson"``,
  ``"cramervonmises"``, or ``"chi2"`` on the bin counts; count-based effects
  (``"jensenshannon"``, ``"psi"``, ``"hellinger"``) use the bin counts and their
  own units for ``min_effect_numeric``.
* categorical (``categorical_test="auto"``): the 2 x K chi-square test of the
  aligned counts; with exactly 2 non-empty categories the pooled two-proportion
  z-test (same p-value, signed statistic). Effect = Jensen-Shannon distance
  (base 2, in [0, 1]), bias-corrected (``debias_js``).
* A feature with fewer than ``min_samples`` observations on either side is
  reported ``insufficient``: not tested, not part of the correction family,
  not counted in the share.

Defaults, and why (see ``benchmarks/detection_quality.py`` for the numbers):

* ``alpha=0.05`` with ``correction="bh"``: the usual level; BH controls the
  share of false flags among flagged features without Bonferroni's loss of
  power on models with many features.
* ``min_effect_numeric=0.1`` reference SDs: below a tenth of a standard
  deviation a shift rarely matters for a model. With the 10,000-value bounded
  samples the Wasserstein estimate has a noise of about 0.015 SD (about 0.035 SD
  for a 1,000-row window), so a 0.05-SD shift is essentially never flagged from
  10k rows on (a few % of 1k windows), while 0.25 SD always is, at any window
  size. 0.1 SD itself is the boundary (about half the trials).
* ``min_effect_categorical=0.045`` Jensen-Shannon distance: for small changes
  JS ~ w / 2.355 (Cohen's w), and w is the categorical analogue of a shift in
  SDs, so 0.045 ~ w 0.106 ~ the numeric 0.1 SD. Bias correction (``debias_js``)
  removes the upward bias of the plug-in estimate, which at 1,000 rows and 4
  categories is ~0.024, half the threshold: without it the benchmark's false
  alarms at 1k rows are 1.2 % (3.4 % with a 0.04 threshold) instead of 0.3 %.
* ``min_samples=100``: below that KS cannot see less than ~0.35 SD at alpha
  0.05 and chi-square expected counts get small; report "insufficient" instead.
* ``dataset_drift_share=0.5``: half of the features, a common default.

Inputs are plain (:class:`NumericEvidence`, :class:`CategoricalEvidence`); the
caller turns a reference profile and a window into them. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detectors import stats as st
from detectors.stats._validation import as_counts, check_alpha, check_threshold
from detectors.stats.ks import KsMethod
from detectors.stats.multiple_testing import CORRECTIONS, Correction
from detectors.stats.result import TestResult
from detectors.threads import Workers, map_columns

# The exact KS p-value costs time in proportion to n_ref * n_cur (~120 ms at 10k x 5k);
# past a million pairs the asymptotic distribution (scipy's kstwo with the effective n)
# agrees with it to well under the p-values that matter, at a fraction of a millisecond.
MAX_EXACT_KS_PAIRS = 1_000_000

Kind = Literal["numeric", "categorical"]
NumericTest = Literal["auto", "ks", "anderson", "cramervonmises", "chi2"]
NumericEffect = Literal["wasserstein", "jensenshannon", "psi", "hellinger"]
CategoricalTest = Literal["auto", "chi2", "z"]
CategoricalEffect = Literal["jensenshannon", "psi", "hellinger"]


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """Every knob of the decision; defaults are explained in the module docstring.

    ``correction`` and ``dataset_drift_share`` are model-level: in per-feature
    overrides they are ignored (the correction family is the model's features).
    ``min_effect_*`` are in the unit of the chosen effect (reference SDs for
    ``"wasserstein"``, distance units otherwise).
    """

    alpha: float = 0.05
    correction: Correction = "bh"
    min_effect_numeric: float = 0.1
    min_effect_categorical: float = 0.045
    numeric_test: NumericTest = "auto"
    numeric_effect: NumericEffect = "wasserstein"
    categorical_test: CategoricalTest = "auto"
    categorical_effect: CategoricalEffect = "jensenshannon"
    debias_js: bool = True
    min_samples: int = 100
    dataset_drift_share: float = 0.5

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        check_threshold(self.min_effect_numeric, "min_effect_numeric")
        check_threshold(self.min_effect_categorical, "min_effect_categorical")
        for name, value, allowed in (
            ("correction", self.correction, CORRECTIONS),
            ("numeric_test", self.numeric_test, get_args(NumericTest)),
            ("numeric_effect", self.numeric_effect, get_args(NumericEffect)),
            ("categorical_test", self.categorical_test, get_args(CategoricalTest)),
            ("categorical_effect", self.categorical_effect, get_args(CategoricalEffect)),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not isinstance(self.debias_js, bool):
            raise ValueError(f"debias_js must be a bool, got {self.debias_js!r}")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {self.min_samples!r}")
        share = self.dataset_drift_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < share <= 1.0:
            raise ValueError(f"dataset_drift_share must be in (0, 1], got {share!r}")


@dataclass(frozen=True, slots=True, eq=False)
class NumericEvidence:
    """A numeric feature: bounded samples (NaN removed by the caller; +-inf allowed),
    optional aligned bin counts, and optionally the std of the full reference
    (used to norm Wasserstein instead of the sample's std). Empty samples are
    allowed here: the decision reports them as insufficient."""

    reference_sample: NDArray[np.float64]
    current_sample: NDArray[np.float64]
    reference_counts: NDArray[np.float64] | None = None
    current_counts: NDArray[np.float64] | None = None
    reference_spread: float | None = None

    def __post_init__(self) -> None:
        for name in ("reference_sample", "current_sample"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
            if np.isnan(arr).any():
                raise ValueError(f"{name} contains NaN; drop and count missing values first")
            object.__setattr__(self, name, arr)
        if (self.reference_counts is None) != (self.current_counts is None):
            raise ValueError("reference_counts and current_counts must be given together")
        if self.reference_counts is not None and self.current_counts is not None:  # both or neither (above)
            object.__setattr__(self, "reference_counts", _counts(self.reference_counts, "reference_counts"))
            object.__setattr__(self, "current_counts", _counts(self.current_counts, "current_counts"))
            if self.reference_counts.size != self.current_counts.size:
                raise ValueError("reference_counts and current_counts must have the same length")


@dataclass(frozen=True, slots=True, eq=False)
class CategoricalEvidence:
    """A categorical feature: counts per category, aligned (same order, unseen
    categories appended with a 0 on the side that lacks them)."""

    reference_counts: NDArray[np.float64]
    current_counts: NDArray[np.float64]

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference_counts", _counts(self.reference_counts, "reference_counts"))
        object.__setattr__(self, "current_counts", _counts(self.current_counts, "current_counts"))
        if self.reference_counts.size != self.current_counts.size:
            raise ValueError(
                "reference_counts and current_counts must have the same length, got "
                f"{self.reference_counts.size} and {self.current_counts.size}"
            )


FeatureEvidence = NumericEvidence | CategoricalEvidence


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Verdict for one feature. ``test`` is the p-value test, ``effect`` the distance;
    both None when ``insufficient`` (``detail`` then says why)."""

    feature: str
    kind: Kind
    test: TestResult | None
    effect: TestResult | None
    adjusted_pvalue: float | None
    drift: bool
    insufficient: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["test"] = None if self.test is None else self.test.to_dict()
        out["effect"] = None if self.effect is None else self.effect.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class DatasetDecision:
    """Verdict for a model: per-feature results (input order) and the dataset flag.

    ``share = n_drifted / n_evaluated`` (0 when nothing could be evaluated).
    """

    features: tuple[FeatureDrift, ...]
    n_evaluated: int
    n_insufficient: int
    n_drifted: int
    share: float
    threshold: float
    dataset_drift: bool
    correction: Correction

    def feature(self, name: str) -> FeatureDrift:
        """The result of one feature by name (KeyError if unknown)."""
        for result in self.features:
            if result.feature == name:
                return result
        raise KeyError(name)

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.drift)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["features"] = [f.to_dict() for f in self.features]
        return out


def decide(
    features: Mapping[str, FeatureEvidence],
    settings: DriftSettings | None = None,
    overrides: Mapping[str, DriftSettings] | None = None,
    workers: Workers | None = None,
) -> DatasetDecision:
    """Apply the rule to all features of one model (one correction family); ``workers``:
    the features are tested on several threads (the same decision)."""
    settings = settings or DriftSettings()
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(features))
    if unknown:
        raise ValueError(f"overrides name unknown features: {unknown}")

    def evaluate_one(name: str) -> FeatureDrift:
        return _evaluate(name, features[name], overrides.get(name, settings))

    staged = map_columns(workers, evaluate_one, features)
    tested = [i for i, f in enumerate(staged) if not f.insufficient]
    outcomes = [_outcome(staged[i]) for i in tested]
    adjusted = st.adjust_pvalues([pvalue for pvalue, _ in outcomes], settings.correction)
    results = list(staged)
    for i, (_, effect_drift), p_adj in zip(tested, outcomes, adjusted, strict=True):
        f, s = staged[i], overrides.get(staged[i].feature, settings)
        drift = bool(p_adj < s.alpha) and effect_drift
        results[i] = replace(f, adjusted_pvalue=float(p_adj), drift=drift)
    n_drifted = sum(f.drift for f in results)
    share = n_drifted / len(tested) if tested else 0.0
    return DatasetDecision(
        features=tuple(results),
        n_evaluated=len(tested),
        n_insufficient=len(results) - len(tested),
        n_drifted=n_drifted,
        share=share,
        threshold=float(settings.dataset_drift_share),
        dataset_drift=bool(tested) and share >= settings.dataset_drift_share,
        correction=settings.correction,
    )


def _outcome(f: FeatureDrift) -> tuple[float, bool]:
    """(p-value, effect's verdict) of a feature :func:`_evaluate` did not find insufficient:
    it then has both results, and its test is a p-value test."""
    assert f.test is not None and f.test.pvalue is not None and f.effect is not None
    return f.test.pvalue, f.effect.drift


def decide_prediction(
    evidence: FeatureEvidence, settings: DriftSettings | None = None, name: str = "prediction"
) -> FeatureDrift:
    """Prediction drift: the same rule on a single column (no correction needed)."""
    return decide({name: evidence}, settings).features[0]


def _evaluate(name: str, ev: FeatureEvidence, s: DriftSettings) -> FeatureDrift:
    """Test + effect without the multiple-testing step (adjusted p-value left None)."""
    if isinstance(ev, NumericEvidence):
        kind: Kind = "numeric"
        test_name = "ks" if s.numeric_test == "auto" else s.numeric_test
        needs_counts = test_name == "chi2" or s.numeric_effect != "wasserstein"
        if needs_counts and ev.reference_counts is None:
            raise ValueError(f"feature {name!r}: {test_name}/{s.numeric_effect} needs bin counts")
        if test_name == "chi2":
            ref_counts, cur_counts = _bin_counts(ev)
            sizes = (ref_counts.sum(), cur_counts.sum())
        else:
            sizes = (ev.reference_sample.size, ev.current_sample.size)
    elif isinstance(ev, CategoricalEvidence):
        kind = "categorical"
        sizes = (ev.reference_counts.sum(), ev.current_counts.sum())
    else:
        raise ValueError(f"feature {name!r}: expected NumericEvidence or CategoricalEvidence, got {type(ev).__name__}")
    if min(sizes) < s.min_samples:
        side = "reference" if sizes[0] < s.min_samples else "current"
        detail = f"{side} has {int(min(sizes))} observations, min_samples is {s.min_samples}"
        return FeatureDrift(name, kind, None, None, None, False, True, detail)
    if isinstance(ev, NumericEvidence):
        test, effect = _numeric(ev, test_name, s)
    else:
        test, effect = _categorical(name, ev, s)
    return FeatureDrift(name, kind, test, effect, None, False, False, "")


def _numeric(ev: NumericEvidence, test_name: str, s: DriftSettings) -> tuple[TestResult, TestResult]:
    ref, cur = ev.reference_sample, ev.current_sample
    # A profile that stores its sample sorted saves a sort per window (O(n) check).
    ref_sorted = bool(np.all(ref[1:] >= ref[:-1]))
    method: KsMethod = "auto" if ref.size * cur.size <= MAX_EXACT_KS_PAIRS else "asymp"
    if test_name == "ks" and s.numeric_effect == "wasserstein" and np.isfinite(ref).all() and np.isfinite(cur).all():
        # The default pair, from one pass over the two ECDFs (same numbers, half the work).
        spread = ev.reference_spread if ev.reference_spread and ev.reference_spread > 0 else None
        return st.ks_and_wasserstein(
            ref if ref_sorted else np.sort(ref),
            cur,
            alpha=s.alpha,
            threshold=s.min_effect_numeric,
            spread=spread,
            method=method,
        )
    if test_name == "ks":
        test = st.ks_test(ref, cur, alpha=s.alpha, method=method, reference_sorted=ref_sorted)
    elif test_name == "anderson":
        test = st.anderson_darling_test(ref, cur, alpha=s.alpha)
    elif test_name == "cramervonmises":
        test = st.cramer_von_mises_test(ref, cur, alpha=s.alpha)
    else:
        test = st.chi_square_test(*_bin_counts(ev), alpha=s.alpha)
    if s.numeric_effect != "wasserstein":
        effect = _count_effect(s.numeric_effect, *_bin_counts(ev), s.min_effect_numeric, s)
        return test, effect
    # Wasserstein is undefined with infinite values: use the finite part; a side
    # that is entirely infinite is as far as it gets (the test still decides).
    ref_f, cur_f = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref_f.size == 0 or cur_f.size == 0:
        effect = TestResult(
            "wasserstein_normed", float("inf"), None, s.min_effect_numeric, True, ref_f.size, cur_f.size
        )
        return test, effect
    spread = ev.reference_spread if ev.reference_spread and ev.reference_spread > 0 else None
    return test, st.wasserstein_normed(
        ref_f, cur_f, threshold=s.min_effect_numeric, spread=spread, reference_sorted=ref_sorted
    )


def _categorical(name: str, ev: CategoricalEvidence, s: DriftSettings) -> tuple[TestResult, TestResult]:
    ref, cur = ev.reference_counts, ev.current_counts
    present = (ref > 0) | (cur > 0)
    test_name = s.categorical_test
    if test_name == "auto":
        test_name = "z" if int(present.sum()) == 2 else "chi2"
    if test_name == "z":
        if int(present.sum()) != 2:
            raise ValueError(
                f"feature {name!r}: the z-test needs exactly 2 non-empty categories, got {int(present.sum())}"
            )
        # Rate of the second non-empty category (e.g. 'true' / class 1 for a binary feature).
        r, c = ref[present], cur[present]
        test = st.proportions_ztest(r[1], r.sum(), c[1], c.sum(), alpha=s.alpha)
    else:
        test = st.chi_square_test(ref, cur, alpha=s.alpha)
    return test, _count_effect(s.categorical_effect, ref, cur, s.min_effect_categorical, s)


def _bin_counts(ev: NumericEvidence) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The bin counts of evidence whose test or effect needs them: :func:`_evaluate` checked
    that they were given (and :class:`NumericEvidence` takes both or neither)."""
    assert ev.reference_counts is not None and ev.current_counts is not None
    return ev.reference_counts, ev.current_counts


def _count_effect(effect: str, ref: ArrayLike, cur: ArrayLike, threshold: float, s: DriftSettings) -> TestResult:
    if effect == "jensenshannon":
        return st.jensen_shannon_distance(ref, cur, threshold=threshold, debias=s.debias_js)
    if effect == "psi":
        return st.psi(ref, cur, threshold=threshold)
    return st.hellinger_distance(ref, cur, threshold=threshold)


def _counts(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """Counts that may be empty or all zero (an empty window is 'insufficient', not an error)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        return arr
    return as_counts(arr, name)
