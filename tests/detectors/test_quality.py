"""Data-quality checks: exact counts and rates on hand-built windows, thresholds, significance, overrides."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from detectors.columns import NULL, VALID, Batch
from detectors.profiles import ReferenceProfile
from detectors.quality import QualitySettings, check_quality
from detectors.schema import PREDICTION, Schema
from detectors.windows.state import WindowLayout, WindowState

SCHEMA = Schema({"x": "numeric", "c": "categorical"}, prediction_kind="binary", latency_column="latency_ms")


def _reference() -> ReferenceProfile:
    # x: 0..99 with rows 0-4 null (5 % nulls): values 5..99, so the bounds are [5 - 9.4, 99 + 9.4] (10 % of 94);
    # c: 'a' x 60, 'b' x 30, 'tail' x 10 (kept as top-2 + remembered tail), no nulls.
    n = 100
    x = np.arange(n, dtype=float)
    x[:5] = np.nan
    status = np.zeros(n, dtype=np.int8)
    status[:5] = NULL
    c = np.array(["a"] * 60 + ["b"] * 30 + ["tail"] * 10, dtype=object)
    batch = Batch(
        timestamps=np.zeros(n),
        inputs={"x": x, "c": c},
        prediction=np.linspace(0, 1, n),
        latency_ms=np.full(n, 10.0),
        status={"x": status},
    )
    return ReferenceProfile.from_batch(batch, SCHEMA, version="r1", top_k=2)


REF = _reference()
LAYOUT = WindowLayout(REF)


def _window(rows: list[dict]) -> WindowState:
    w = WindowState(LAYOUT)
    w.update(Batch.from_records(rows, SCHEMA, default_timestamp=0.0))
    return w


def _row(x, c, p=0.5) -> dict:
    return {"inputs": {"x": x, "c": c}, "prediction": p, "latency_ms": 5}


HAND_ROWS = [
    _row(1.0, "a"),
    _row(None, None),  # null x, null c
    _row(float("nan"), "b"),  # a genuine NaN: non-finite, not null
    _row(float("inf"), "tail"),  # non-finite; 'tail' is rare but known
    _row("3.5", {"k": 1}),  # strings are the wrong type for numbers; a dict for a category
    _row(150.0, "zzz"),  # above 108.4; unseen category
    _row(-20.0, "zzz"),  # below -4.4; unseen
    _row(50.0, "a", p=1.5),  # score above [0, 1]
    _row(108.0, "b", p=None),  # inside the widened bounds; null prediction
    _row(-4.0, "a"),  # inside too
]


def test_rates_and_counts_match_a_hand_count() -> None:
    rep = check_quality(_window(HAND_ROWS), QualitySettings(null_alpha=None))
    assert rep.n == 10 and rep.window_seq == 0
    got = {(c.channel, c.check): (c.count, c.rate) for c in rep.checks}
    assert got == {
        ("x", "out_of_range"): (2, 0.2),
        ("x", "null_increase"): (1, 0.1),
        ("x", "non_finite"): (2, 0.2),
        ("x", "wrong_type"): (1, 0.1),
        ("c", "null_increase"): (1, 0.1),
        ("c", "wrong_type"): (1, 0.1),
        ("c", "unseen"): (2, 0.2),
        (PREDICTION, "out_of_range"): (1, 0.1),
        (PREDICTION, "null_increase"): (1, 0.1),
        (PREDICTION, "non_finite"): (0, 0.0),
        (PREDICTION, "wrong_type"): (0, 0.0),
    }  # latency is not checked here (detectors.latency)
    assert rep.check("x", "null_increase").reference_rate == 0.05
    assert rep.check("c", "null_increase").reference_rate == 0.0
    assert rep.check("x", "out_of_range").reference_rate is None
    assert rep.check("x", "out_of_range").detail == "1 below -4.4, 1 above 108.4"
    # x's null rate rose by only 0.05 (not > 0.05); everything else is over its threshold
    breached = {(c.channel, c.check) for c in rep.breached}
    assert breached == set(got) - {("x", "null_increase"), (PREDICTION, "non_finite"), (PREDICTION, "wrong_type")}


def test_thresholds_are_strict_and_zero_means_any() -> None:
    rows = [_row(float(i), "a") for i in range(19)] + [_row(500.0, "a")]  # 1 of 20 out of range = 0.05
    w = _window(rows)
    assert not check_quality(w).check("x", "out_of_range").breached  # 0.05 is not > 0.05
    assert check_quality(w, QualitySettings(out_of_range=0.0)).check("x", "out_of_range").breached
    assert check_quality(w, QualitySettings(out_of_range=0.049)).check("x", "out_of_range").breached


def test_null_increase_needs_significance_in_a_small_window() -> None:
    # Reference null rate of x is 5/100. Window A: 3 nulls of 20 (15 %): +0.10 but Fisher p = 0.128.
    small = _window([_row(None, "a")] * 3 + [_row(1.0, "a")] * 17)
    chk = check_quality(small).check("x", "null_increase")
    expected_p = stats.fisher_exact([[3, 17], [5, 95]], alternative="greater").pvalue
    assert chk.pvalue == pytest.approx(expected_p, rel=1e-9) and 0.01 < chk.pvalue < 0.2
    assert chk.rate == 0.15 and not chk.breached
    assert check_quality(small, QualitySettings(null_alpha=None)).check("x", "null_increase").breached
    # Window B: 30 nulls of 200 (15 %): the same increase is now significant (p = 0.0068).
    large = _window([_row(None, "a")] * 30 + [_row(1.0, "a")] * 170)
    chk = check_quality(large).check("x", "null_increase")
    assert chk.pvalue == pytest.approx(stats.fisher_exact([[30, 170], [5, 95]], alternative="greater").pvalue)
    assert chk.pvalue < 0.01 and chk.breached


def test_empty_window_is_insufficient_and_never_breached() -> None:
    rep = check_quality(WindowState(LAYOUT), QualitySettings(out_of_range=0.0, non_finite=0.0))
    assert rep.checks and rep.breached == []
    for c in rep.checks:
        assert c.insufficient and c.n == 0 and c.count == 0 and math.isnan(c.rate)
        assert c.to_dict()["rate"] is None
    # min_samples above the window size: reported, with rates, but not breached
    rep = check_quality(_window(HAND_ROWS), QualitySettings(min_samples=11))
    assert rep.breached == [] and rep.check("x", "out_of_range").rate == 0.2
    assert all(c.insufficient for c in rep.checks)


def test_overrides_and_switched_off_checks() -> None:
    base = QualitySettings(null_alpha=None)
    rep = check_quality(
        _window(HAND_ROWS),
        base,
        overrides={"x": replace(base, out_of_range=None, non_finite=0.5), "c": replace(base, unseen=0.25)},
        channels=["x", "c"],
    )
    assert {c.check for c in rep.checks if c.channel == "x"} == {"null_increase", "non_finite", "wrong_type"}
    assert not rep.check("x", "non_finite").breached and rep.check("x", "non_finite").threshold == 0.5
    assert not rep.check("c", "unseen").breached  # 0.2 <= 0.25
    assert rep.check("c", "wrong_type").breached  # the default for c otherwise
    with pytest.raises(KeyError):
        rep.check(PREDICTION, "out_of_range")  # not among the requested channels
    with pytest.raises(ValueError, match=r"unknown channels \['nope'\]"):
        check_quality(_window(HAND_ROWS), overrides={"nope": base})


def test_to_dict_is_json_safe() -> None:
    rep = check_quality(_window(HAND_ROWS))
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert d["n"] == 10 and ["c", "unseen"] in d["breached"]
    assert {"channel", "check", "rate", "count", "n", "threshold", "breached", "pvalue"} <= set(d["checks"][0])


def test_status_valid_nan_counts_as_non_finite_not_null() -> None:
    # Same encoding as detectors.columns: with a status array, a VALID NaN is a genuine NaN.
    n = 4
    batch = Batch(
        timestamps=np.zeros(n),
        inputs={"x": np.array([np.nan, np.nan, 1.0, 2.0]), "c": np.array(["a"] * n, dtype=object)},
        prediction=np.full(n, 0.5),
        latency_ms=np.full(n, 1.0),
        status={"x": np.array([VALID, NULL, VALID, VALID], dtype=np.int8)},
    )
    w = WindowState(LAYOUT)
    w.update(batch)
    rep = check_quality(w)
    assert rep.check("x", "non_finite").count == 1 and rep.check("x", "null_increase").count == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"out_of_range": 1.5}, "out_of_range must be a rate in [0, 1] or None, got 1.5"),
        ({"unseen": True}, "unseen must be a rate in [0, 1] or None, got True"),
        ({"null_alpha": 0.0}, "null_alpha must be in (0, 1) or None, got 0.0"),
        ({"min_samples": 0}, "min_samples must be an integer >= 1, got 0"),
    ],
)
def test_settings_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        QualitySettings(**kwargs)
