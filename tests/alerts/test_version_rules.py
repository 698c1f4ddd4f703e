"""Alert rules over model versions' own windows: ``versions:`` selects versions (exact or
``["*"]``), a rule without it covers the whole population only, each version is its own
alert (``a@version:2``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError
from window_results import drift_evaluation as evaluation

from alerts.engine import AlertEngine
from alerts.rules import AlertRuleConfig


def test_version_rules_select_their_versions_and_other_rules_ignore_them() -> None:
    engine = AlertEngine(
        [
            {"name": "whole", "kind": "feature_drift"},
            {"name": "v2", "kind": "feature_drift", "versions": ["2"]},
            {"name": "every-version", "kind": "dataset_drift", "versions": ["*"], "min_share": 0.5},
            {"name": "regions", "kind": "feature_drift", "segments": ["region:*"]},
        ]
    )
    drifted = evaluation(0, {"f0": True, "f1": False})
    v1, v2 = replace(drifted, model_version="1"), replace(drifted, model_version="2")
    fired = [(t.rule, t.feature, t.to_state) for r in (v1, v2) for t in engine.observe("m", "1", r, 10.0)]
    assert fired == [
        ("every-version", "@version:1", "firing"),
        ("v2", "f0@version:2", "firing"),
        ("every-version", "@version:2", "firing"),
    ]
    state = engine.get("v2", "m", "f0@version:2")
    assert state is not None and (state.last_detail["model_version"], state.last_detail["feature"]) == ("2", "f0")
    # The whole population's result reaches only the rule without a selection; a slice's only
    # the segment rule.
    whole = [(t.rule, t.feature) for t in engine.observe("m", "1", replace(drifted, window_seq=1), 11.0)]
    assert whole == [("whole", "f0")]
    eu = replace(drifted, window_seq=2, segment="region:eu", reference_slice="region:eu")
    assert [(t.rule, t.feature) for t in engine.observe("m", "1", eu, 12.0)] == [("regions", "f0@region:eu")]
    # Version 2's clean window resolves its alert, version 1's stays.
    clean = replace(evaluation(1, {"f0": False, "f1": False}), model_version="2")
    resolved = [(t.rule, t.feature, t.to_state) for t in engine.observe("m", "1", clean, 13.0)]
    assert resolved == [("v2", "f0@version:2", "resolved"), ("every-version", "@version:2", "resolved")]
    state = engine.get("every-version", "m", "@version:1")
    assert state is not None and state.state == "firing"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "feature_drift", "versions": []}, "versions must be a non-empty list"),
        ({"kind": "feature_drift", "versions": ["*", "2"]}, "'\\*' means all and must be the only entry"),
        ({"kind": "feature_drift", "versions": ["2", "2"]}, "versions lists a name twice"),
        ({"kind": "performance_drop", "versions": ["2"]}, "versions applies only to kind"),
        ({"kind": "version_divergence", "versions": ["*"]}, "versions applies only to kind"),
        (
            {"kind": "feature_drift", "versions": ["2"], "segments": ["region:eu"]},
            "segments and versions select different results",
        ),
    ],
)
def test_a_bad_version_selection_is_refused_with_the_reason(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertRuleConfig(name="r", **fields)
