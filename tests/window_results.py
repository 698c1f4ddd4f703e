"""Evaluated windows made by hand, for the tests of what consumes them (gauges, alert rules)."""

from __future__ import annotations

from detectors.decision import DatasetDecision, FeatureDrift
from detectors.evaluation import Evaluation
from detectors.quality import QualityReport
from detectors.stats.result import TestResult


def drift_evaluation(seq: int, features: dict[str, bool]) -> Evaluation:
    """A window whose features drifted as given (1,000 reference rows, 500 current; KS
    then Wasserstein, the effect 0.4 when drifted, else 0.02)."""
    feats = []
    for name, verdict in features.items():
        test = TestResult("ks", 0.3 if verdict else 0.01, 0.001 if verdict else 0.6, 0.05, verdict, 1000, 500)
        effect = TestResult("wasserstein", 0.4 if verdict else 0.02, None, 0.1, verdict, 1000, 500)
        feats.append(FeatureDrift(name, "numeric", test, effect, test.pvalue, verdict, False))
    drifted = sum(features.values())
    share = drifted / len(feats)
    decision = DatasetDecision(tuple(feats), len(feats), 0, drifted, share, 0.5, share >= 0.5, "bh")
    return Evaluation(seq, 60.0 * seq, 60.0 * seq + 60, 500, "1", decision, None, QualityReport((), 500, seq), None)
