"""monitor.compare on a few threads (the default) gives exactly what it gives on one."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import monitor
from detectors.threads import Workers
from monitor.profiling import Profile


def _frame(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.02] = np.nan
    x[:3] = [np.inf, -np.inf, -0.0]
    levels = np.array([f"v{i}" for i in range(30)], dtype=object)
    weights = 1.0 / np.arange(1, 31)
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 50, n),
            "e": rng.exponential(1.0 + shift, n),
            "c": pd.Series(levels[rng.choice(30, n, p=weights / weights.sum())]).astype(str),
            "o": np.array(["a", "b", None], dtype=object)[rng.integers(0, 3, n)],
            "flag": np.array(["True", "false", "FALSE"], dtype=object)[rng.integers(0, 3, n)],
        }
    )


def test_threads_give_the_one_thread_result() -> None:
    reference, current = _frame(40_000, 1, 0.0), _frame(45_000, 2, 0.15)
    # 10,000-row chunks: the next chunk is read on the pool while the window counts this one
    one = monitor.compare(reference, current, workers=1, chunk_rows=10_000)
    assert one.drifted_features == ["x", "e"] and one.kinds["flag"] == "boolean"
    for workers in (2, 3):
        many = monitor.compare(reference, current, workers=workers, chunk_rows=10_000)
        assert many.to_dict() == one.to_dict(), workers
        assert many.evaluation.histograms == one.evaluation.histograms, workers
    assert monitor.compare(reference, current, chunk_rows=10_000).to_dict() == one.to_dict()  # the default
    # The default part of a table in memory is the whole table here: one batch, counted side by side.
    for workers in (1, 2):
        whole = monitor.compare(reference, current, workers=workers)
        assert whole.to_dict() == one.to_dict() and whole.evaluation.histograms == one.evaluation.histograms
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        monitor.compare(reference, current, workers=0)


def test_a_profile_read_on_threads_is_the_same_profile() -> None:
    reference = _frame(30_000, 3, 0.0)
    with Workers(2) as workers:
        threaded = monitor.profile(reference, workers=workers)
    assert threaded.reference.to_bytes() == monitor.profile(reference).reference.to_bytes()
    assert isinstance(threaded, Profile) and threaded.rows == 30_000


def test_overflowing_values_warn_on_no_thread() -> None:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"big": rng.uniform(1e307, 1.7e308, 20_000), "x": rng.normal(size=20_000)})
    current = reference.assign(x=reference["x"] + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="overflow"):
            reference["big"].to_numpy().sum()  # the precondition: these values overflow a sum
        for workers in (1, 2):  # sums and moments overflow to inf in the workers too, unwarned
            assert monitor.compare(reference, current, workers=workers).drifted_features == ["x"]
