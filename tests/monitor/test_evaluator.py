"""Closed windows evaluated in the child process give exactly the verdicts of the thread,
in order, and a dead child costs no window."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.windows.policies import WindowPolicy
from detectors.windows.state import WindowState
from monitor.detection import with_version
from monitor.evaluator import _CHILD, Evaluator

SCHEMA = Schema({"x": "numeric", "y": "numeric", "c": "categorical"}, prediction_kind="binary")
WINDOW = 2_000


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, n),
            "y": rng.gamma(2.0, 3.0, n),
            "c": rng.choice(np.array(["a", "b", "c"], dtype=object), n, p=[0.5, 0.3, 0.2]),
            "prediction": rng.random(n),
        }
    )


REFERENCE = ReferenceProfile.from_frame(_frame(5_000, 0), SCHEMA, version="v1", sample_size=2_000)


def _windows(reference: ReferenceProfile, shifts: list[float]) -> tuple[ModelDetector, list[WindowState]]:
    """One closed window per shift (a mean shift of x, in SDs)."""
    detector = ModelDetector(reference, DetectorSettings(policy=WindowPolicy(size=WINDOW), sample_size=1_000))
    windows: list[WindowState] = []
    for k, shift in enumerate(shifts):
        batch = Batch.from_frame(_frame(WINDOW, 100 + k, shift), SCHEMA, default_timestamp=1_700_000_000.0 + k)
        windows.extend(detector.close(batch))
    assert len(windows) == len(shifts)
    return detector, windows


def _drifted(evaluation: dict) -> list[str]:
    return [f["feature"] for f in evaluation["drift"]["features"] if f["drift"]]


@pytest.fixture(scope="module")
def in_process() -> Evaluator:
    evaluator = Evaluator(place="process")
    yield evaluator
    evaluator.close()


def test_the_child_gives_the_threads_verdicts_exactly(in_process: Evaluator) -> None:
    detector, windows = _windows(REFERENCE, [0.0, 0.5, 0.0, 1.0])
    settings = detector.settings.evaluation
    here = [Evaluator(place="thread").evaluate(w, settings).to_dict() for w in windows]
    there = [in_process.evaluate(w, settings).to_dict() for w in windows]
    assert there == here
    # x is flagged in the shifted windows (0.5 and 1 SD) only, so the comparison covers
    # verdicts that differ.
    assert [_drifted(e) for e in there] == [[], ["x"], [], ["x"]]
    assert _CHILD.pid() not in (None, os.getpid())


def test_one_child_serves_several_references_each_under_its_own_version(in_process: Evaluator) -> None:
    # Same content, another version: the layout fingerprint is the same, the verdict's
    # reference version must not be.
    v2 = with_version(REFERENCE, "v2")
    detector1, (w1,) = _windows(REFERENCE, [0.0])
    detector2, (w2,) = _windows(v2, [0.0])
    other = ReferenceProfile.from_frame(_frame(5_000, 9, 3.0), SCHEMA, version="other", sample_size=2_000)
    detector3, (w3,) = _windows(other, [0.0])
    pid = None
    for _ in range(2):  # the second round finds every layout in the child already
        for detector, window, version in ((detector1, w1, "v1"), (detector2, w2, "v2"), (detector3, w3, "other")):
            evaluation = in_process.evaluate(window, detector.settings.evaluation)
            assert evaluation.reference_version == version
            assert evaluation.n == WINDOW
        assert pid in (None, _CHILD.pid())
        pid = _CHILD.pid()
    # The third reference's x is centred at 3 SD: the window (centred at 0) drifts from it.
    assert _drifted(in_process.evaluate(w3, detector3.settings.evaluation).to_dict()) == ["x"]
    assert _drifted(in_process.evaluate(w1, detector1.settings.evaluation).to_dict()) == []


def test_a_killed_child_loses_no_window_and_is_replaced(in_process: Evaluator) -> None:
    detector, windows = _windows(REFERENCE, [0.0, 1.0, 0.0])
    settings = detector.settings.evaluation
    expected = [Evaluator(place="thread").evaluate(w, settings).to_dict() for w in windows]
    assert in_process.evaluate(windows[0], settings).to_dict() == expected[0]
    first = _CHILD.pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # The window in hand is evaluated here (the child is gone), the next one by a new child.
    assert in_process.evaluate(windows[1], settings).to_dict() == expected[1]
    assert in_process.evaluate(windows[2], settings).to_dict() == expected[2]
    second = _CHILD.pid()
    assert second is not None and second != first


def test_verdicts_arrive_in_the_order_windows_closed(in_process: Evaluator) -> None:
    detector, windows = _windows(REFERENCE, [0.0, 1.0, 0.0, 0.5, 0.0, 2.0])
    seen: list[int] = []
    done = threading.Event()
    for window in windows:
        in_process.submit_window(window, detector.settings.evaluation, lambda e: seen.append(e.window_seq))
    in_process.submit(done.set)
    in_process.settle()
    assert done.is_set()
    assert seen == [w.seq for w in windows]
    assert seen == sorted(seen) and len(set(seen)) == len(windows)
