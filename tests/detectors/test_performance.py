"""Performance with delayed labels: metrics against hand / numpy / scipy, windows, merge and restore."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from detectors.performance import PerformanceSettings, binary_label
from detectors.windows.performance import PerformanceWindow, PerformanceWindows, performance_from_arrays

BIN1 = PerformanceSettings("binary", min_labels=1)


def _mann_whitney_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    return float(stats.mannwhitneyu(pos, neg).statistic / (pos.size * neg.size))


# ---- binary --------------------------------------------------------------------------------------
def test_binary_metrics_match_a_hand_calculation() -> None:
    scores = [0.9, 0.8, 0.3, 0.6, 0.2, 0.55, 0.4, 0.7, 0.5, 0.1]
    labels = [1, "yes", 0, "no", False, True, "1", 0, 1.0, "0"]
    # predicted positive (score >= 0.5): rows 0 1 3 5 7 8; actual positive: rows 0 1 5 6 8
    # tp = {0,1,5,8} = 4, fp = {3,7} = 2, fn = {6} = 1, tn = {2,4,9} = 3
    # AUC: positives 0.9, 0.8 beat all 5 negatives; 0.55, 0.5, 0.4 beat 0.3, 0.2, 0.1 -> 19 / 25
    # plus skipped pairs: null label, NaN score, a string score, a score above 1, an unhashable label
    scores += [0.9, float("nan"), "0.7", 1.5, 0.2]
    labels += [None, 1, 1, 0, {"a": 1}]
    r = performance_from_arrays(BIN1, np.array(scores, dtype=object), labels, np.arange(15.0))
    assert dict(r.confusion) == {"tp": 4, "fp": 2, "fn": 1, "tn": 3}
    assert (r.n, r.skipped, r.start, r.end) == (10, 5, 0.0, 14.0)
    assert r.metrics["accuracy"] == pytest.approx(7 / 10, abs=1e-15)
    assert r.metrics["precision"] == pytest.approx(4 / 6, abs=1e-15)
    assert r.metrics["recall"] == pytest.approx(4 / 5, abs=1e-15)
    assert r.metrics["f1"] == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5), abs=1e-15)
    assert r.metrics["roc_auc"] == pytest.approx(19 / 25, abs=1e-15)
    assert r.roc_auc_error == 0.0  # no positive shares a 0.001 bin with a negative


def test_binary_label_normalisation_and_positive_class() -> None:
    assert [binary_label(v) for v in (1, "1", True, "yes", " Yes ", 1.0, np.int64(1), np.bool_(True))] == ["1"] * 8
    assert [binary_label(v) for v in (0, "no", False, "F", 0.0)] == ["0"] * 5
    assert binary_label(None) is None and binary_label(float("nan")) is None
    s = PerformanceSettings("binary", binary_output="label", positive_class="Churn", min_labels=1)
    assert s.positive_class == "churn"
    r = performance_from_arrays(s, ["churn", "stay", "CHURN", "stay", None], ["Churn", "stay", "stay", "churn", "x"])
    # pairs: (churn, churn) tp, (stay, stay) tn, (churn, stay) fp, (stay, churn) fn; the None prediction is skipped
    assert dict(r.confusion) == {"tp": 1, "fp": 1, "fn": 1, "tn": 1} and r.skipped == 1
    assert r.metrics["roc_auc"] is None and r.roc_auc_error is None  # hard labels have no ranking
    assert PerformanceSettings("binary", positive_class=True).positive_class == "1"


def test_binary_metrics_match_numpy_on_large_random_arrays() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    y = rng.random(n) < 0.2
    s = np.clip(rng.normal(0.35 + 0.25 * y, 0.18), 0.0, 1.0)
    r = performance_from_arrays(PerformanceSettings("binary", threshold=0.45), s, y.astype(np.int64))
    p = s >= 0.45
    tp, fp, fn, tn = (int(np.sum(a & b)) for a, b in ((y, p), (~y, p), (y, ~p), (~y, ~p)))
    assert dict(r.confusion) == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    assert r.metrics["accuracy"] == pytest.approx(np.mean(y == p), rel=1e-12)
    assert r.metrics["precision"] == pytest.approx(tp / (tp + fp), rel=1e-12)
    assert r.metrics["recall"] == pytest.approx(tp / (tp + fn), rel=1e-12)
    assert r.metrics["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)


def test_histogram_auc_is_exact_on_a_grid_of_three_decimals() -> None:
    rng = np.random.default_rng(5)
    for decimals, n in ((2, 5_000), (3, 20_000)):
        y = rng.random(n) < 0.3
        s = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), decimals)  # many ties, like y_pred_proba
        r = performance_from_arrays("binary", s, y)
        # exact up to float summation: every score sits on a bin centre (bin = round(1000 s))
        assert abs(r.metrics["roc_auc"] - _mann_whitney_auc(s, y)) <= 1e-12


def test_histogram_auc_error_is_within_its_stated_bound_for_continuous_scores() -> None:
    rng = np.random.default_rng(11)
    n = 50_000
    y = rng.random(n) < 0.4
    s = 1 / (1 + np.exp(-rng.normal(1.0 * y, 1.0)))
    r = performance_from_arrays("binary", s, y)
    err = abs(r.metrics["roc_auc"] - _mann_whitney_auc(s, y))
    # bound = 0.5 * P(a positive and a negative share a bin) ~ 0.5 / 1000 * overlap of the densities
    assert 0 < r.roc_auc_error < 2e-3 and err <= r.roc_auc_error
    coarse = performance_from_arrays(PerformanceSettings("binary", auc_bins=10), s, y)
    assert abs(coarse.metrics["roc_auc"] - _mann_whitney_auc(s, y)) <= coarse.roc_auc_error


def test_undefined_binary_metrics_are_none() -> None:
    r = performance_from_arrays(BIN1, [0.1, 0.2, 0.3], [0, 0, 0])  # no positives at all
    assert r.metrics == {"accuracy": 1.0, "precision": None, "recall": None, "f1": None, "roc_auc": None}
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["metrics"]["precision"] is None


# ---- multiclass and regression ---------------------------------------------------------------------
def test_multiclass_matches_a_hand_calculation() -> None:
    s = PerformanceSettings("multiclass", classes=["a", "b", "c"], min_labels=1)
    preds = ["a", "a", "b", "c", "b", "z", "y", "a", None]
    labels = ["a", "b", "b", "c", "c", "z", "x", "a", "a"]
    r = performance_from_arrays(s, np.array(preds, dtype=object), labels)
    # correct: a/a twice, b/b, c/c, z/z (unknown but equal); y vs x are both 'other' yet wrong -> 5 of 8
    assert r.n == 8 and r.skipped == 1 and r.metrics["accuracy"] == pytest.approx(5 / 8)
    # a: tp 2, fp 1 (label b), fn 0; b: tp 1, fp 1 (label c), fn 1; c: tp 1, fp 0, fn 1
    prec, rec = [2 / 3, 1 / 2, 1.0], [1.0, 1 / 2, 1 / 2]
    f1 = [4 / 5, 2 / 4, 2 / 3]
    assert r.metrics["precision_macro"] == pytest.approx(np.mean(prec), abs=1e-15)
    assert r.metrics["recall_macro"] == pytest.approx(np.mean(rec), abs=1e-15)
    assert r.metrics["f1_macro"] == pytest.approx(np.mean(f1), abs=1e-15)
    assert r.confusion["classes"] == ["a", "b", "c", "other"]
    assert r.confusion["matrix"] == [[2, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 2]]


def test_multiclass_matches_numpy_on_random_labels_and_numeric_classes() -> None:
    rng = np.random.default_rng(2)
    n = 30_000
    y = rng.integers(0, 5, n)  # class 4 is not configured: it is "other"
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, 5, n))
    s = PerformanceSettings("multiclass", classes=[0, 1, 2, 3])
    assert s.classes == ("0", "1", "2", "3")
    r = performance_from_arrays(s, p.astype(np.float64), y)  # 1.0 and 1 are the same class
    assert r.metrics["accuracy"] == pytest.approx(np.mean(p == y), rel=1e-12)
    tp = np.array([np.sum((p == c) & (y == c)) for c in range(4)])
    fp = np.array([np.sum((p == c) & (y != c)) for c in range(4)])
    fn = np.array([np.sum((p != c) & (y == c)) for c in range(4)])
    assert r.metrics["precision_macro"] == pytest.approx(np.mean(tp / (tp + fp)), rel=1e-12)
    assert r.metrics["recall_macro"] == pytest.approx(np.mean(tp / (tp + fn)), rel=1e-12)
    assert r.metrics["f1_macro"] == pytest.approx(np.mean(2 * tp / (2 * tp + fp + fn)), rel=1e-12)


def test_regression_matches_numpy_and_skips_bad_pairs() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(10, 3, 10_000)
    p = y + rng.normal(0.2, 1.5, y.size)
    r = performance_from_arrays("regression", list(p) + [None, np.inf, 1.0], list(y) + [1.0, 1.0, "x"])
    e = p - y
    assert (r.n, r.skipped) == (10_000, 3)
    assert r.metrics["mae"] == pytest.approx(np.mean(np.abs(e)), rel=1e-12)
    assert r.metrics["rmse"] == pytest.approx(np.sqrt(np.mean(e**2)), rel=1e-12)
    assert r.metrics["mean_error"] == pytest.approx(np.mean(e), rel=1e-12)


# ---- comparison with the reference ------------------------------------------------------------------
def test_drop_and_degraded_against_reference_figures() -> None:
    rng = np.random.default_rng(8)
    y = rng.random(4_000) < 0.5
    good = np.where(y, rng.uniform(0.4, 1.0, y.size), rng.uniform(0.0, 0.6, y.size))
    ref = performance_from_arrays("binary", good, y)
    flipped = np.where(rng.random(y.size) < 0.15, 1 - good, good)  # ~15 % of the scores inverted
    cur = performance_from_arrays("binary", flipped, y, reference=ref)
    assert cur.reference == ref.metrics
    for m in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert cur.drop[m] == pytest.approx(ref.metrics[m] - cur.metrics[m], abs=1e-15)
    assert cur.drop["accuracy"] > 0.05 and cur.degraded and "accuracy" in cur.degraded_metrics
    same = performance_from_arrays("binary", good, y, reference=ref)
    assert not same.degraded and same.drop["accuracy"] == 0.0
    # regression drops are relative increases of the error
    s = PerformanceSettings("regression", min_labels=1, max_drop={"mae": 0.25})
    r = performance_from_arrays(s, [1.2, 2.2, 2.8], [1.0, 2.0, 3.0], reference={"mae": 0.15, "rmse": 0.2})
    assert r.drop["mae"] == pytest.approx((0.2 - 0.15) / 0.15) and r.degraded_metrics == ("mae",)
    assert "mean_error" not in r.drop and r.drop["rmse"] == pytest.approx(0.0, abs=1e-12)


def test_fewer_than_min_labels_gives_none() -> None:
    w = PerformanceWindow("binary")
    w.update(np.full(99, 0.7), np.ones(99))
    assert w.n == 99 and w.result() is None
    w.update([0.2], [0])
    assert w.result().n == 100


# ---- windows, restore, merge -------------------------------------------------------------------------
def _stream(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(float)
    labels[rng.random(n) < 0.1] = np.nan  # ~10 % pairs skipped
    scores = np.round(rng.random(n), 3)
    return scores, labels, np.arange(n, dtype=float)


def test_tumbling_windows_split_batches_exactly_at_used_pair_boundaries() -> None:
    s = PerformanceSettings("binary", min_labels=50)
    scores, labels, ts = _stream(0, 1_000)
    wins = PerformanceWindows(s, 200)
    closed = []
    for i in range(0, 1_000, 37):
        closed += wins.update(scores[i : i + 37], labels[i : i + 37], ts[i : i + 37])
    used = np.flatnonzero(~np.isnan(labels))
    cuts = [0] + [int(used[k * 200 - 1]) + 1 for k in range(1, len(closed) + 1)]
    assert len(closed) == used.size // 200 and [r.window_seq for r in closed] == list(range(len(closed)))
    for k, r in enumerate(closed):
        lo, hi = cuts[k], cuts[k + 1]
        whole = performance_from_arrays(s, scores[lo:hi], labels[lo:hi], ts[lo:hi])
        assert r.n == 200 and (r.start, r.end) == (lo, hi - 1)
        assert (r.metrics, r.confusion, r.skipped) == (whole.metrics, whole.confusion, whole.skipped)
    rest = wins.flush()
    assert rest.n == used.size % 200 and rest.start == cuts[-1] and wins.open_window is None
    with pytest.raises(ValueError, match="size must be >= min_labels"):
        PerformanceWindows(s, 49)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_restore_then_continue_equals_uninterrupted(kind: str) -> None:
    s = PerformanceSettings(kind, classes=["0", "1"] if kind == "multiclass" else None, min_labels=10)
    scores, labels, ts = _stream(1, 3_000)
    preds = (scores > 0.5).astype(float) if kind == "multiclass" else scores
    a, b = PerformanceWindows(s, 256, reference={"accuracy": 0.5}), None
    out_a: list = []
    out_b: list = []
    for k, i in enumerate(range(0, 3_000, 250)):
        args = (preds[i : i + 250], labels[i : i + 250], ts[i : i + 250])
        out_a += a.update(*args)
        if k == 5:
            b = PerformanceWindows.from_bytes(a.to_bytes())
            out_b = list(out_a)
        elif b is not None:
            out_b += b.update(*args)
    assert [r.to_dict() for r in out_a] == [r.to_dict() for r in out_b] and len(out_a) > 5
    assert a.open_window.to_bytes() == b.open_window.to_bytes()
    w = PerformanceWindow(s, seq=3)
    w.update(preds[:1_000], labels[:1_000], ts[:1_000])
    restored = PerformanceWindow.from_bytes(w.to_bytes())
    for x in (w, restored):
        x.update(preds[1_000:], labels[1_000:], ts[1_000:])
    assert restored.to_bytes() == w.to_bytes() and restored.seq == 3


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_merge_equals_the_union(kind: str) -> None:
    s = PerformanceSettings(kind, classes=["0", "1"] if kind == "multiclass" else None)
    scores, labels, ts = _stream(2, 5_000)
    preds = (scores > 0.5).astype(float) if kind == "multiclass" else scores
    a, b, u = PerformanceWindow(s), PerformanceWindow(s), PerformanceWindow(s)
    a.update(preds[:1_700], labels[:1_700], ts[:1_700])
    b.update(preds[1_700:], labels[1_700:], ts[1_700:])
    u.update(preds, labels, ts)
    m = a.merge(b)
    assert (m.n, m.skipped, m.min_ts, m.max_ts) == (u.n, u.skipped, u.min_ts, u.max_ts)
    for key in u.arrays:  # counts add exactly; float sums agree to rounding
        np.testing.assert_allclose(m.arrays[key], u.arrays[key], rtol=1e-12, atol=0)
    for key, value in u.metrics().items():
        assert m.metrics()[key] == pytest.approx(value, rel=1e-12)
    with pytest.raises(ValueError, match="different settings"):
        a.merge(PerformanceWindow(PerformanceSettings(kind, classes=s.classes, min_labels=99)))


def test_memory_is_bounded() -> None:
    w = PerformanceWindow("binary")
    scores, labels, ts = _stream(3, 2_000)
    w.update(scores, labels, ts)
    size = len(w.to_bytes())
    for _ in range(20):
        w.update(scores, labels, ts)
    assert len(w.to_bytes()) == size and w.arrays["hist"].shape == (2, 1_001)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "ranking"}, "kind must be one of"),
        ({"kind": "binary", "threshold": 1.5}, r"threshold must be a number in \[0.0, 1.0\], got 1.5"),
        ({"kind": "binary", "positive_class": None}, "positive_class must be a non-null str, int or bool, got None"),
        ({"kind": "multiclass"}, "classes must be a list of 1 to 1000 class names for multiclass, got None"),
        ({"kind": "multiclass", "classes": ["a", "a"]}, r"classes must be distinct and non-null, got \['a', 'a'\]"),
        ({"kind": "binary", "classes": ["a"]}, "classes is only for kind='multiclass'"),
        ({"kind": "binary", "auc_bins": 0}, "auc_bins must be a positive integer, got 0"),
        ({"kind": "binary", "min_labels": 0}, "min_labels must be a positive integer, got 0"),
        ({"kind": "regression", "max_drop": {"accuracy": 0.1}}, "max_drop names 'accuracy'"),
        ({"kind": "binary", "max_drop": {"f1": -1}}, r"max_drop\['f1'\] must be a number in \[0.0, inf\], got -1"),
    ],
)
def test_settings_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PerformanceSettings(**kwargs)


def test_reference_values_are_validated_and_settings_hash_like_they_compare() -> None:
    with pytest.raises(ValueError, match="reference\\['accuracy'\\] must be a number or None, got 'x'"):
        performance_from_arrays("binary", [0.1], [1], reference={"accuracy": "x"})  # even without a result
    with pytest.raises(ValueError, match="reference must be a mapping"):
        PerformanceWindows("binary", 100, reference=0.9)  # type: ignore[arg-type]
    a = PerformanceSettings("binary", max_drop={"accuracy": 0.1, "f1": 0.2})
    b = PerformanceSettings("binary", max_drop={"f1": 0.2, "accuracy": 0.1})
    assert a == b and hash(a) == hash(b) and a != PerformanceSettings("binary")


def test_to_dict_is_json_safe_and_bad_lengths_are_rejected() -> None:
    s = PerformanceSettings("regression", min_labels=1)
    r = performance_from_arrays(s, [1.0, 2.0], [1.0, 2.0], reference={"mae": 0.0})
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["drop"]["mae"] == 0.0 and d["degraded"] is False and math.isclose(d["metrics"]["rmse"], 0.0)
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        performance_from_arrays("binary", [0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="timestamps must have 2 entries, got 1"):
        performance_from_arrays("binary", [0.1, 0.2], [0, 1], [0.0])
