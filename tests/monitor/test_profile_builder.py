"""Profiles of tables whose category columns come with codes (Batch.from_frame): exactly the
profile the service makes of the same rows, whole or (categories) chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from detectors.columns import Batch
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from monitor.profile_builder import ProfileBuilder

PARAMS = {"bins": 10, "sample_size": 1_000, "top_k": 3, "max_tracked_categories": 2, "seed": 7}


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    text = np.array(["a", "b", "c", None, "d", "rare"], dtype=object)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.02] = np.nan
    x[:4] = [np.inf, -np.inf, -0.0, 0.0]
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 9, n),
            "text": text[rng.integers(0, 6, n)],
            "arrow": pd.array(text[rng.integers(0, 6, n)], dtype=pd.ArrowDtype(pa.string())),
            "cat": pd.Categorical(text[rng.integers(0, 5, n)], categories=["a", "b", "c", "d", "unused"]),
            "numbers": np.array([3, 3.0, 2.5, np.nan, 7], dtype=object)[rng.integers(0, 5, n)],
            "bools": rng.random(n) < 0.3,
        }
    )


def test_a_profile_counted_through_codes_is_the_services_profile() -> None:
    frame = _frame(20_000)
    schema = Schema(features={"x": "numeric", "k": "numeric"} | dict.fromkeys(list(frame.columns)[2:], "categorical"))
    coded = Batch.from_frame(frame, schema, default_timestamp=0.0)
    assert sorted(coded.codes) == ["arrow", "bools", "cat", "numbers", "text"]
    plain = Batch(timestamps=coded.timestamps, inputs=coded.inputs, status=coded.status)  # the same, no codes
    want = ReferenceProfile.from_batch(plain, schema, version=1, **PARAMS)
    assert ReferenceProfile.from_batch(coded, schema, version=1, **PARAMS).to_bytes() == want.to_bytes()
    built = ProfileBuilder(schema, **PARAMS)
    for start in range(0, 20_000, 6_000):
        built.update(coded.select(slice(start, start + 6_000)))
    chunked = built.reference(version=1)
    for name in list(frame.columns)[2:]:  # categories are counted exactly from chunks too
        mine, theirs = chunked.channels[name], want.channels[name]
        assert (mine.categories, mine.counts.tolist(), mine.other_count, mine.tail, mine.null_count) == (
            theirs.categories, theirs.counts.tolist(), theirs.other_count, theirs.tail, theirs.null_count,
        ), name  # fmt: skip
    assert want.channels["numbers"].categories == ("3", "7", "2.5")  # 3 and 3.0 are one category


def test_profile_options_are_checked_before_any_row_is_read() -> None:
    import pytest

    import monitor

    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="bins must be an integer >= 1, got 0"):
        monitor.profile(frame, bins=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        monitor.Profile(seed=-1)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1, got True"):
        monitor.profile("/nonexistent.csv", top_k=True)
    assert monitor.profile(frame, max_tracked_categories=0, seed=np.int64(3)).reference.params["seed"] == 3
