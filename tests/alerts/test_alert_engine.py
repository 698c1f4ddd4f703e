"""Alert rules and the alert state machine on scripted result sequences, with exact transitions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from alerts.config import AlertsConfig
from alerts.engine import AlertEngine, AlertState
from alerts.rules import AlertRuleConfig, signals, validate_rules
from alerts.transition import Transition
from detectors.decision import DatasetDecision, FeatureDrift
from detectors.evaluation import Evaluation
from detectors.latency import LatencyResult
from detectors.performance import PerformanceResult, PerformanceSettings
from detectors.quality import QualityCheck, QualityReport
from detectors.schema import LATENCY, PREDICTION
from detectors.stats.result import TestResult
from detectors.windows.performance import performance_from_arrays

B, C, X = True, False, None  # a feature breaching, clean, insufficient (no verdict)


# ---- factories: real result objects with exactly the verdicts a test needs ------------------------
def drift_of(name: str, verdict: bool | None, effect: float | None = None) -> FeatureDrift:
    if verdict is None:
        return FeatureDrift(name, "numeric", None, None, None, False, True, "fewer than min_samples")
    test = TestResult("ks", 0.3 if verdict else 0.01, 0.001 if verdict else 0.6, 0.05, verdict, 1000, 500)
    size = effect if effect is not None else (0.4 if verdict else 0.02)
    dist = TestResult("wasserstein", size, None, 0.1, verdict, 1000, 500)
    return FeatureDrift(name, "numeric", test, dist, test.pvalue, verdict, False)


def check_of(
    channel: str, check: str, rate: float, threshold: float = 0.05, insufficient: bool = False
) -> QualityCheck:
    breached = rate > threshold and not insufficient
    return QualityCheck(channel, check, rate, round(rate * 500), 500, threshold, breached, insufficient=insufficient)


def latency_of(value: float, slo_ms: float | None = 200.0) -> LatencyResult:
    breached = slo_ms is not None and value > slo_ms
    return LatencyResult(value / 3, value / 2, value, 500, slo_ms, 0.99, value, breached, 0.01)


def evaluation(
    seq: int,
    features: Mapping[str, bool | None] | None = None,
    *,
    prediction: bool | None | str = "absent",
    quality: Sequence[QualityCheck] = (),
    latency: LatencyResult | None = None,
    share: float = 0.5,
) -> Evaluation:
    feats = tuple(drift_of(n, v) for n, v in (features or {}).items())
    tested = [f for f in feats if not f.insufficient]
    drifted = sum(f.drift for f in feats)
    frac = drifted / len(tested) if tested else 0.0
    decision = DatasetDecision(
        feats, len(tested), len(feats) - len(tested), drifted, frac, share, bool(tested) and frac >= share, "bh"
    )
    pred = None if prediction == "absent" else drift_of("prediction", prediction)  # type: ignore[arg-type]
    report = QualityReport(tuple(quality), 500, seq)
    return Evaluation(seq, 60.0 * seq, 60.0 * seq + 60, 500, "1", decision, pred, report, latency)


def performance(
    seq: int, drop: Mapping[str, float | None] | None, max_drop: Mapping[str, float] | None = None
) -> PerformanceResult:
    limits = dict(max_drop if max_drop is not None else {"accuracy": 0.05, "roc_auc": 0.05})
    degraded = tuple(m for m, lim in limits.items() if (drop or {}).get(m) is not None and drop[m] > lim)  # type: ignore[index, operator]
    return PerformanceResult(
        "binary", 200, 0, {"accuracy": 0.8}, {}, None, None if drop is None else {"accuracy": 0.9},
        drop, limits, bool(degraded), degraded, seq, None, None,
    )  # fmt: skip


def rule(name: str = "r", kind: str = "feature_drift", **kw: Any) -> AlertRuleConfig:
    return AlertRuleConfig(name=name, kind=kind, **kw)


def run(engine: AlertEngine, script: Sequence[tuple[str, Any, float]]) -> list[tuple[Any, ...]]:
    """Observe (model, result, now) in order; transitions as (id, from, to, at, window_seq)."""
    out = []
    for model, result, now in script:
        for t in engine.observe(model, "1", result, now):
            out.append((t.alert_id, t.from_state, t.to_state, t.at, t.window_seq))
    return out


def feature_script(
    verdicts: Sequence[bool | None], feature: str = "a", model: str = "m"
) -> list[tuple[str, Any, float]]:
    return [(model, evaluation(i, {feature: v}), 60.0 * i) for i, v in enumerate(verdicts)]


# ---- the state machine ----------------------------------------------------------------------------
def test_pending_then_firing_after_for_windows() -> None:
    engine = AlertEngine([rule(for_windows=3)])
    assert run(engine, feature_script([B, B, B, B])) == [
        ("r:m:a:1", "inactive", "pending", 0.0, 0),
        ("r:m:a:1", "pending", "firing", 120.0, 2),
    ]
    state = engine.get("r", "m", "a")
    assert state is not None and (state.state, state.since, state.breaching_windows) == ("firing", 120.0, 4)


def test_for_windows_one_fires_at_once_in_one_transition() -> None:
    assert run(AlertEngine([rule()]), feature_script([C, B])) == [("r:m:a:1", "inactive", "firing", 60.0, 1)]


def test_pending_interrupted_by_a_clean_window_returns_to_inactive_without_firing() -> None:
    engine = AlertEngine([rule(for_windows=2)])
    assert run(engine, feature_script([B, C, C, B, B])) == [
        ("r:m:a:1", "inactive", "pending", 0.0, 0),
        ("r:m:a:1", "pending", "inactive", 60.0, 1),
        ("r:m:a:2", "inactive", "pending", 180.0, 3),  # a new episode, a new id
        ("r:m:a:2", "pending", "firing", 240.0, 4),
    ]


def test_firing_resolves_after_resolve_windows_consecutive_clean_windows() -> None:
    engine = AlertEngine([rule(resolve_windows=2)])
    assert run(engine, feature_script([B, C, B, C, C, C])) == [
        ("r:m:a:1", "inactive", "firing", 0.0, 0),
        ("r:m:a:1", "firing", "resolved", 240.0, 4),  # the breach at 2 restarted the clean run
    ]
    state = engine.get("r", "m", "a")
    assert state is not None and (state.state, state.resolved_at, state.clean_windows) == ("resolved", 240.0, 3)


def test_cooldown_suppresses_a_refire_within_the_period_and_allows_it_after() -> None:
    engine = AlertEngine([rule(cooldown_seconds=100)])
    script = [
        ("m", evaluation(s, {"a": v}), t) for s, (v, t) in enumerate([(B, 0), (C, 10), (B, 50), (B, 109.9), (B, 110)])
    ]
    assert run(engine, script) == [
        ("r:m:a:1", "inactive", "firing", 0.0, 0),
        ("r:m:a:1", "firing", "resolved", 10.0, 1),
        ("r:m:a:2", "resolved", "firing", 110.0, 4),
    ]
    state = engine.get("r", "m", "a")
    assert state is not None and (state.suppressed, state.alerts) == (2, 2)


def test_cooldown_then_pending_counts_only_breaches_after_the_cooldown() -> None:
    engine = AlertEngine([rule(for_windows=2, cooldown_seconds=100)])
    script = [
        ("m", evaluation(s, {"a": v}), t)
        for s, (v, t) in enumerate([(B, 0), (B, 1), (C, 2), (B, 50), (B, 102), (B, 103)])
    ]
    assert run(engine, script) == [
        ("r:m:a:1", "inactive", "pending", 0.0, 0),
        ("r:m:a:1", "pending", "firing", 1.0, 1),
        ("r:m:a:1", "firing", "resolved", 2.0, 2),
        ("r:m:a:2", "resolved", "pending", 102.0, 4),
        ("r:m:a:2", "pending", "firing", 103.0, 5),
    ]


def test_repeated_breaches_while_firing_give_no_new_transitions() -> None:
    engine = AlertEngine([rule()])
    assert run(engine, feature_script([B] * 6)) == [("r:m:a:1", "inactive", "firing", 0.0, 0)]
    assert [s.alert_id for s in engine.alerts(state="firing")] == ["r:m:a:1"]


def test_two_features_of_one_model_are_independent_keys() -> None:
    engine = AlertEngine([rule(for_windows=2)])
    script = [("m", evaluation(i, {"a": a, "b": b}), 60.0 * i) for i, (a, b) in enumerate([(B, C), (B, B), (C, B)])]
    assert run(engine, script) == [
        ("r:m:a:1", "inactive", "pending", 0.0, 0),
        ("r:m:a:1", "pending", "firing", 60.0, 1),
        ("r:m:b:1", "inactive", "pending", 60.0, 1),
        ("r:m:a:1", "firing", "resolved", 120.0, 2),
        ("r:m:b:1", "pending", "firing", 120.0, 2),
    ]
    assert [(s.feature, s.state) for s in engine.alerts(model="m")] == [("a", "resolved"), ("b", "firing")]


def test_models_star_covers_every_model_and_a_list_only_its_own() -> None:
    engine = AlertEngine([rule("all"), rule("only", models=["m1"]), rule("feat", features=["b"])])
    script = [("m1", evaluation(0, {"a": B, "b": B}), 0.0), ("m2", evaluation(0, {"a": B}), 1.0)]
    assert run(engine, script) == [
        ("all:m1:a:1", "inactive", "firing", 0.0, 0),
        ("all:m1:b:1", "inactive", "firing", 0.0, 0),
        ("only:m1:a:1", "inactive", "firing", 0.0, 0),
        ("only:m1:b:1", "inactive", "firing", 0.0, 0),
        ("feat:m1:b:1", "inactive", "firing", 0.0, 0),
        ("all:m2:a:1", "inactive", "firing", 1.0, 0),
    ]


def test_insufficient_features_neither_advance_nor_resolve() -> None:
    engine = AlertEngine([rule(for_windows=2, resolve_windows=2)])
    # pending survives insufficient windows and fires on the next breach (they are skipped) ...
    assert run(engine, feature_script([B, X, X, B, X, C])) == [
        ("r:m:a:1", "inactive", "pending", 0.0, 0),
        ("r:m:a:1", "pending", "firing", 180.0, 3),
    ]
    # ... and the clean run towards resolve_windows is not broken by them either.
    state = engine.get("r", "m", "a")
    assert state is not None and (state.state, state.clean_windows, state.last_seq) == ("firing", 1, 5)
    assert run(engine, [("m", evaluation(6, {"a": X}), 360.0), ("m", evaluation(7, {"a": C}), 420.0)]) == [
        ("r:m:a:1", "firing", "resolved", 420.0, 7)
    ]
    # A firing alert with resolve_windows=1 stays firing through insufficient windows.
    assert run(AlertEngine([rule()]), feature_script([B, X, X, X])) == [("r:m:a:1", "inactive", "firing", 0.0, 0)]
    assert AlertEngine([rule()]).observe("m", "1", evaluation(0, {"a": X}), 0.0) == []


def test_transition_carries_rule_and_signal_details() -> None:
    engine = AlertEngine([rule("drift-a", severity="critical")])
    (t,) = engine.observe("m", "7", evaluation(3, {"a": B}), 42.0)
    assert t == Transition(
        "drift-a:m:a:1", "drift-a", "m", "a", "critical", "inactive", "firing", 42.0, 3, 0.4,
        {"kind": "feature_drift", "effect": "wasserstein", "test": "ks", "pvalue": 0.001, "reference_version": "7"},
    )  # fmt: skip
    assert json.loads(json.dumps(t.to_dict()))["detail"]["reference_version"] == "7"


# ---- rule kinds -----------------------------------------------------------------------------------
def test_dataset_drift_uses_the_detector_flag_or_min_share() -> None:
    result = evaluation(0, {"a": B, "b": C, "c": C, "d": X})  # share 1/3, detector threshold 0.5
    (flag,) = signals(rule(kind="dataset_drift"), "m", result)
    (share,) = signals(rule(kind="dataset_drift", min_share=0.3), "m", result)
    assert (flag.feature, flag.breaching, share.breaching) == ("", False, True)
    assert share.value == pytest.approx(1 / 3) and share.detail["drifted"] == ["a"]
    assert signals(rule(kind="dataset_drift"), "m", evaluation(0, {"a": X})) == []  # nothing tested


def test_prediction_drift_signals_only_with_a_sufficient_prediction_verdict() -> None:
    r = rule(kind="prediction_drift")
    assert [s.breaching for s in signals(r, "m", evaluation(0, prediction=B))] == [True]
    assert signals(r, "m", evaluation(0, prediction=X)) == []
    assert signals(r, "m", evaluation(0)) == []


def test_data_quality_gives_one_signal_per_channel_over_the_chosen_checks() -> None:
    quality = [
        check_of("a", "out_of_range", 0.2),
        check_of("a", "non_finite", 0.0),
        check_of("b", "out_of_range", 0.0),
        check_of("c", "out_of_range", 0.0, insufficient=True),
        check_of(PREDICTION, "unseen", 0.5),
        check_of(LATENCY, "non_finite", 0.0),
    ]
    result = evaluation(0, quality=quality)
    got = {s.feature: (s.breaching, s.value) for s in signals(rule(kind="data_quality"), "m", result)}
    assert got == {"a": (True, 0.2), "b": (False, 0.0), "prediction": (True, 0.5), "latency_ms": (False, 0.0)}
    only = rule(kind="data_quality", features=["a", "c"], checks=["non_finite"])
    assert [(s.feature, s.breaching) for s in signals(only, "m", result)] == [("a", False)]


def test_latency_slo_uses_the_detector_slo_or_the_rule_slo() -> None:
    assert [s.breaching for s in signals(rule(kind="latency_slo"), "m", evaluation(0, latency=latency_of(250.0)))] == [
        True
    ]
    assert signals(rule(kind="latency_slo"), "m", evaluation(0, latency=latency_of(250.0, slo_ms=None))) == []
    (s,) = signals(rule(kind="latency_slo", slo_ms=300), "m", evaluation(0, latency=latency_of(250.0, slo_ms=None)))
    assert (s.breaching, s.value, s.detail["slo_ms"]) == (False, 250.0, 300.0)
    assert signals(rule(kind="latency_slo"), "m", evaluation(0)) == []


def test_performance_drop_by_detector_limits_metrics_and_max_drop() -> None:
    result = performance(4, {"accuracy": 0.03, "roc_auc": 0.08, "f1": 0.2})
    assert [(s.breaching, s.value) for s in signals(rule(kind="performance_drop"), "m", result)] == [(True, 0.08)]
    only = rule(kind="performance_drop", metrics=["accuracy"])
    assert [s.breaching for s in signals(only, "m", result)] == [False]
    tight = rule(kind="performance_drop", metrics=["accuracy", "f1"], max_drop=0.01)
    assert [(s.breaching, s.detail["degraded"]) for s in signals(tight, "m", result)] == [(True, ["accuracy", "f1"])]
    assert signals(rule(kind="performance_drop"), "m", performance(4, None)) == []  # no reference metrics
    assert signals(rule(kind="performance_drop"), "m", evaluation(0, {"a": B})) == []
    assert signals(rule(), "m", result) == []


def test_performance_drop_on_a_real_performance_result() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = np.where(rng.random(400) < 0.6, labels, 1 - labels) * 0.8 + 0.1  # 60 % right
    result = performance_from_arrays(
        PerformanceSettings("binary", min_labels=100), scores, labels, reference={"accuracy": 0.9, "roc_auc": 0.9}
    )
    assert result is not None and result.degraded
    engine = AlertEngine([rule("perf", kind="performance_drop")])
    (t,) = engine.observe("m", "1", result, 5.0)
    assert (t.alert_id, t.to_state, t.window_seq, t.detail["degraded"]) == (
        "perf:m::1",
        "firing",
        0,
        ["accuracy", "roc_auc"],
    )


# ---- persistence ----------------------------------------------------------------------------------
def _mixed_script() -> list[tuple[str, Any, float]]:
    rng = np.random.default_rng(7)
    script: list[tuple[str, Any, float]] = []
    for i in range(40):
        for model in ("m1", "m2"):
            v = [bool(rng.random() < 0.5) if rng.random() > 0.15 else None for _ in range(3)]
            quality = [check_of("a", "out_of_range", float(rng.random() * 0.1))]
            result = evaluation(
                i, {"a": v[0], "b": v[1], "c": v[2]}, quality=quality, latency=latency_of(150.0 + 100 * rng.random())
            )
            script.append((model, result, 30.0 * i))
        if i % 4 == 3:
            script.append(("m1", performance(i // 4, {"accuracy": float(rng.random() * 0.1)}), 30.0 * i + 1))
    return script


MIXED_RULES = [
    rule("feat", for_windows=2, resolve_windows=2, cooldown_seconds=90),
    rule("ds", kind="dataset_drift", for_windows=3, models=["m1"]),
    rule("dq", kind="data_quality", resolve_windows=3, severity="info"),
    rule("lat", kind="latency_slo", for_windows=2, cooldown_seconds=60, severity="critical"),
    rule("perf", kind="performance_drop"),
]


def test_serialise_restore_continue_equals_uninterrupted() -> None:
    script = _mixed_script()
    whole = AlertEngine(MIXED_RULES)
    expected = [whole.observe(m, "1", r, t) for m, r, t in script]
    assert sum(len(ts) for ts in expected) > 20  # the script exercises the machine
    for cut in (0, 1, 17, 40, len(script) - 1):
        first = AlertEngine(MIXED_RULES)
        got = [first.observe(m, "1", r, t) for m, r, t in script[:cut]]
        restored = AlertEngine.from_dict(json.loads(json.dumps(first.to_dict(), allow_nan=False)))
        got += [restored.observe(m, "1", r, t) for m, r, t in script[cut:]]
        assert got == expected
        assert restored.to_dict() == whole.to_dict()


def test_restore_with_new_rules_drops_states_of_removed_rules() -> None:
    engine = AlertEngine([rule("a"), rule("b", for_windows=3)])
    engine.observe("m", "1", evaluation(0, {"x": B}), 0.0)
    restored = AlertEngine.from_dict(engine.to_dict(), [rule("b", for_windows=1)])
    assert [(s.rule, s.state) for s in restored.alerts()] == [("b", "pending")]
    (t,) = restored.observe("m", "1", evaluation(1, {"x": B}), 60.0)  # fires under the new for_windows
    assert (t.alert_id, t.from_state, t.to_state) == ("b:m:x:1", "pending", "firing")
    with pytest.raises(ValueError, match="format_version must be 1, got 2"):
        AlertEngine.from_dict({**engine.to_dict(), "format_version": 2})
    with pytest.raises(ValueError, match="alert state must be one of .* got 'open'"):
        AlertState.from_dict({**engine.alerts()[0].to_dict(), "state": "open"})


def test_alerts_filters_and_rejects_unknown_states_and_bad_times() -> None:
    engine = AlertEngine([rule(for_windows=2)])
    engine.observe("m1", "1", evaluation(0, {"a": B, "b": C}), 0.0)
    engine.observe("m2", "1", evaluation(0, {"a": C}), 0.0)
    assert [(s.model, s.feature, s.state) for s in engine.alerts()] == [
        ("m1", "a", "pending"), ("m1", "b", "inactive"), ("m2", "a", "inactive"),
    ]  # fmt: skip
    assert [s.feature for s in engine.alerts(state="inactive", model="m1")] == ["b"]
    with pytest.raises(ValueError, match="state must be one of .* got 'open'"):
        engine.alerts(state="open")
    with pytest.raises(ValueError, match="now must be a finite number .* got nan"):
        engine.observe("m1", "1", evaluation(1, {"a": B}), float("nan"))


# ---- config validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "drift"}, "kind must be one of feature_drift, .* got 'drift'"),
        ({"for_windows": 0}, "for_windows must be an integer >= 1, got 0"),
        ({"resolve_windows": True}, "resolve_windows must be an integer >= 1, got True"),
        ({"cooldown_seconds": -1}, "cooldown_seconds must be a finite number >= 0.0, got -1"),
        ({"severity": "page"}, "severity must be one of info, warning, critical, got 'page'"),
        ({"name": "a:b"}, "name must be .* got 'a:b'"),
        ({"models": []}, r"models must be a non-empty list of names or \['\*'\], got \[\]"),
        ({"models": ["*", "m"]}, r"models: '\*' means all and must be the only entry, got \['\*', 'm'\]"),
        ({"kind": "data_quality", "checks": ["nulls"]}, r"checks must name entries of .* got unknown \['nulls'\]"),
        (
            {"kind": "latency_slo", "features": ["a"]},
            r"features applies only to kind feature_drift or data_quality, got features=\['a'\] with kind='latency_slo'",
        ),
        ({"kind": "dataset_drift", "min_share": 0}, "min_share must be a finite number > 0.0 and <= 1.0, got 0"),
        (
            {"kind": "performance_drop", "metrics": ["mean_error"]},
            r"metrics must name entries of .* got unknown \['mean_error'\]",
        ),
        ({"window": 3}, "window"),
    ],
)
def test_rule_validation_messages_name_the_field_and_value(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertRuleConfig.model_validate({"name": "r", "kind": "feature_drift", **fields})


def test_duplicate_rule_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="alert rule names must be unique, got 'x' twice"):
        validate_rules([{"name": "x", "kind": "feature_drift"}, {"name": "x", "kind": "latency_slo"}])
    with pytest.raises(ValidationError, match="got 'x' twice"):
        AlertsConfig.model_validate({"rules": [{"name": "x", "kind": "feature_drift"}] * 2})
    with pytest.raises(ValueError, match="got 'x' twice"):
        AlertEngine([rule("x"), rule("x")])


def test_rules_round_trip_through_their_dump() -> None:
    r = rule("q", kind="data_quality", features=["a"], checks=["unseen"], severity="critical", for_windows=2)
    assert AlertRuleConfig.model_validate(r.model_dump(mode="json")) == r
    assert [x.name for x in validate_rules([r.model_dump()])] == ["q"]
