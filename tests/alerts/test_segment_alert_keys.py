"""A slice's alert is keyed ``feature@key:value``; with a long feature name and a long tag
value that is over the alerts table's String(256) ``feature`` column, which PostgreSQL
refuses. The key is then bounded (head + hash): two long slices sharing a long prefix are
still two alerts, stored on SQLite and PostgreSQL alike, the detail keeping both whole."""

from __future__ import annotations

from alerts.engine import AlertEngine
from alerts.rules import ALERT_FEATURE_LENGTH, slice_feature
from detectors.decision import DatasetDecision, FeatureDrift
from detectors.evaluation import Evaluation
from detectors.quality import QualityReport
from detectors.stats.result import TestResult
from monitor.store.database import Store


def drifted(feature: str, segment: str) -> Evaluation:
    """A slice's window whose one feature drifted (1,000 reference rows, 500 current)."""
    test = TestResult("ks", 0.3, 0.001, 0.05, True, 1000, 500)
    effect = TestResult("wasserstein", 0.4, None, 0.1, True, 1000, 500)
    decision = DatasetDecision((FeatureDrift(feature, "numeric", test, effect, 0.001, True, False),), 1, 0, 1, 1.0,
                               0.5, True, "bh")  # fmt: skip
    report = QualityReport((), 500, 0)
    return Evaluation(0, 0.0, 60.0, 500, "1", decision, None, report, None, segment=segment, reference_slice="whole")


def test_long_slice_keys_are_bounded_and_stay_distinct(store: Store) -> None:
    engine = AlertEngine([{"name": "regions", "kind": "feature_drift", "segments": ["region:*"]}])
    feature = "f" * 200
    prefix = "v" * 900  # tag values of up to limits.max_string_length (1,024) pass validation
    results = [drifted(feature, f"region:{prefix}{tail}") for tail in ("a", "b")]
    assert len(f"{feature}@{results[0].segment}") == 1109 > ALERT_FEATURE_LENGTH  # precondition: too long whole
    transitions = [t for r in results for t in engine.observe("m", "1", r, 10.0)]
    assert [t.to_state for t in transitions] == ["firing", "firing"]
    keys = [t.feature for t in transitions]
    assert [len(k) for k in keys] == [ALERT_FEATURE_LENGTH] * 2 and keys[0] != keys[1]
    assert keys == [slice_feature(feature, r.segment) for r in results]
    assert keys[0].startswith(f"{feature}@region:vvv") and keys[0][-17] == "#"
    store.apply_alert_transitions(transitions, engine.to_dict())
    stored = sorted(store.alerts(model="m"), key=lambda a: a["feature"])
    assert [a["feature"] for a in stored] == sorted(keys)
    by_key = {a["feature"]: a["detail"] for a in stored}
    assert [(by_key[k]["segment"], by_key[k]["feature"]) for k in keys] == [(r.segment, feature) for r in results]


def test_a_short_slice_key_is_kept_as_it_is() -> None:
    assert slice_feature("age", "region:eu") == "age@region:eu"
    assert slice_feature("", "region:eu") == "@region:eu"
    exact = "x" * (ALERT_FEATURE_LENGTH - len("@region:eu"))
    assert slice_feature(exact, "region:eu") == f"{exact}@region:eu"  # at the bound: unchanged
