"""Alert rules over segment results: ``segments:`` selects slices (exact or ``key:*``), a
rule without it covers the whole population only, each slice is its own alert."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError
from window_results import drift_evaluation as evaluation

from alerts.engine import AlertEngine
from alerts.rules import AlertRuleConfig


def test_segment_rules_select_their_slices_and_whole_rules_ignore_them() -> None:
    engine = AlertEngine(
        [
            {"name": "whole", "kind": "feature_drift"},
            {"name": "regions", "kind": "feature_drift", "segments": ["region:*"]},
            {"name": "eu", "kind": "dataset_drift", "segments": ["region:eu"], "min_share": 0.5},
        ]
    )
    drifted = evaluation(0, {"f0": True, "f1": False})
    eu = replace(drifted, segment="region:eu", reference_slice="region:eu")
    us = replace(drifted, segment="region:us", reference_slice="whole")
    device = replace(drifted, segment="device:kiosk", reference_slice="whole")
    fired = [(t.rule, t.feature, t.to_state) for r in (eu, us, device) for t in engine.observe("m", "1", r, 10.0)]
    assert fired == [
        ("regions", "f0@region:eu", "firing"),
        ("eu", "@region:eu", "firing"),
        ("regions", "f0@region:us", "firing"),
    ]
    assert engine.get("regions", "m", "f0@region:eu").last_detail["segment"] == "region:eu"
    # the whole population's result reaches only the rule without segments
    assert [(t.rule, t.feature) for t in engine.observe("m", "1", replace(drifted, window_seq=1), 11.0)] == [
        ("whole", "f0")
    ]


@pytest.mark.parametrize("entry", ["region", "*", "*:eu", ":eu", "region:"])
def test_a_malformed_segment_selection_is_refused_with_the_entry(entry: str) -> None:
    with pytest.raises(ValidationError, match="segments entries are 'key:value' or 'key:\\*'"):
        AlertRuleConfig(name="r", kind="feature_drift", segments=[entry])


def test_segments_do_not_apply_to_estimated_performance() -> None:
    # Estimation is whole-population only (measured performance_drop has slices).
    with pytest.raises(ValidationError, match="segments applies only to kind"):
        AlertRuleConfig(name="r", kind="estimated_performance_drop", segments=["region:*"])
