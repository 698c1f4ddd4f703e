"""The settings of event time: the accepted range (limits), the watermark's lateness
(window), the reserved model name; and that they reach the validator and the windows."""

from __future__ import annotations

import pytest

from detectors.windows.policies import SlidingWindows, TumblingTimeWindows
from monitor.detection import detector_settings
from monitor.model_config import ModelConfig, WindowConfig
from monitor.settings import ConfigError, LimitsConfig, settings_from_mapping


def _problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(data)
    return error.value.problems


def test_defaults() -> None:
    limits = LimitsConfig()
    assert (limits.max_future_seconds, limits.max_age_seconds) == (300.0, None)
    assert WindowConfig().allowed_lateness_seconds == 0.0


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        ({"kind": "time", "seconds": 60, "allowed_lateness_seconds": 60},
         "models.m.window: allowed_lateness (60) must be less than seconds (60)"),
        ({"kind": "sliding", "seconds": 300, "panes": 5, "allowed_lateness_seconds": 90},
         "models.m.window: allowed_lateness (90) must be less than seconds / panes (60)"),
        ({"kind": "count", "allowed_lateness_seconds": 5},
         "models.m.window: allowed_lateness applies to time windows only (kind 'time', or 'sliding' with seconds)"),
        ({"kind": "time", "seconds": 60, "allowed_lateness_seconds": -1},
         "models.m.window.allowed_lateness_seconds: input should be greater than or equal to 0, got -1"),
    ],
)  # fmt: skip
def test_lateness_must_be_below_one_period(window: dict, problem: str) -> None:
    assert _problems({"models": {"m": {"window": window}}}) == [problem]


def test_limits_are_checked() -> None:
    assert _problems({"limits": {"max_future_seconds": -1, "max_age_seconds": 0}}) == [
        "limits.max_future_seconds: input should be greater than or equal to 0, got -1",
        "limits.max_age_seconds: input should be greater than 0, got 0",
    ]


def test_a_model_may_not_be_named_like_the_label_of_unknown_traffic() -> None:
    assert _problems({"models": {"fraud": {}, "_unknown": {}}}) == [
        "models: '_unknown' is reserved: the metric label of unknown models' traffic"
    ]


def test_the_lateness_reaches_the_windows() -> None:
    import numpy as np
    import pandas as pd

    from detectors.model import ModelDetector
    from detectors.profiles import ReferenceProfile
    from detectors.schema import Schema

    frame = pd.DataFrame({"x": np.arange(200.0), "prediction": np.linspace(0, 1, 200)})
    reference = ReferenceProfile.from_frame(frame, Schema({"x": "numeric"}, prediction_kind="binary"), version="r")

    for window, kind in (
        ({"kind": "time", "seconds": 60, "allowed_lateness_seconds": 15}, TumblingTimeWindows),
        ({"kind": "sliding", "seconds": 300, "panes": 5, "allowed_lateness_seconds": 15}, SlidingWindows),
    ):
        settings = detector_settings(ModelConfig.model_validate({"window": window}), None)
        assert settings.policy.allowed_lateness == 15.0
        windower = ModelDetector(reference, settings).windower
        assert isinstance(windower, kind)
        timed = windower._inner if isinstance(windower, SlidingWindows) else windower
        assert isinstance(timed, TumblingTimeWindows) and timed.allowed_lateness == 15.0
