"""Batch.from_frame reads columns through numpy arrays and category codes, and gives
exactly the batch that reading the same values one by one gives (Batch.from_columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from detectors.columns import Batch, _frame_list
from detectors.schema import Schema

N = 12


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f64": [0.5, np.nan, 3.0, -1.0, np.inf, 2.0] * 2,
            "i64": np.arange(N),
            "nullable": pd.array([1, None, 3, 4, None, 6] * 2, dtype="Int64"),
            "bools": [True, False] * 6,
            "text": ["a", None, "b", "a", "c", None] * 2,
            "str_dtype": pd.array(["x", None, "y", "x", "z", "y"] * 2, dtype="string"),
            "arrow": pd.array(["p", None, "q"] * 4, dtype=pd.ArrowDtype(pa.string())),
            "cat": pd.Categorical(["lo", "hi", None, "lo", "hi", "lo"] * 2),
            "floats": [3.0, 0.5, np.nan, 3.0, 2.25, 1.0] * 2,
            "mixed": [True, 1, "1", None, 2.0, {"a": 1}] * 2,
            "text_num": ["1.5", 2.0, None, 3, "x", 4.5] * 2,
        }
    )


NUMERIC = ["f64", "i64", "nullable", "bools", "text_num"]
CATEGORICAL = ["text", "str_dtype", "arrow", "cat", "floats", "mixed", "bools", "i64"]


@pytest.mark.parametrize("kind,columns", [("numeric", NUMERIC), ("categorical", CATEGORICAL)])
def test_frame_path_equals_value_by_value(kind: str, columns: list[str]) -> None:
    frame = _frame()
    for name in columns:
        schema = Schema(features={name: kind})
        fast = Batch.from_frame(frame[[name]], schema, default_timestamp=0.0)
        slow = Batch.from_columns(schema, np.zeros(N), {name: _frame_list(frame[name])})
        got, want = fast.inputs[name], slow.inputs[name]
        assert got.dtype == want.dtype, name
        if kind == "numeric":
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            assert got.tolist() == want.tolist(), name
        fast_status, slow_status = fast.status.get(name), slow.status.get(name)
        if kind == "numeric" and slow_status is not None and fast_status is None:
            # from raw Python values a NaN is a genuine value; from a numeric column, null
            continue
        assert (None if fast_status is None else fast_status.tolist()) == (
            None if slow_status is None else slow_status.tolist()
        ), name


def test_categories_share_one_string_per_distinct_value() -> None:
    frame = pd.DataFrame({"c": pd.array(["alpha", "beta"] * 50_000, dtype="string")})
    batch = Batch.from_frame(frame, Schema(features={"c": "categorical"}), default_timestamp=0.0)
    column = batch.inputs["c"]
    assert len({id(v) for v in column.tolist()}) == 2  # no Python string per row
    assert column[:3].tolist() == ["alpha", "beta", "alpha"]


def test_a_float64_column_is_read_without_a_copy() -> None:
    values = np.arange(1_000, dtype=np.float64)
    frame = pd.DataFrame({"x": values}, copy=False)
    batch = Batch.from_frame(frame, Schema(features={"x": "numeric"}), default_timestamp=0.0)
    assert np.shares_memory(batch.inputs["x"], frame["x"].to_numpy())


def test_window_category_counts_alike_with_and_without_factorising() -> None:
    from detectors.profiles import ReferenceProfile
    from detectors.windows.state import WindowLayout, WindowState

    rng = np.random.default_rng(3)
    names = np.array([f"c{i}" for i in range(60)] + ["never-seen", None], dtype=object)
    schema = Schema(features={"c": "categorical"})
    reference = ReferenceProfile.from_frame(pd.DataFrame({"c": names[rng.integers(0, 60, 5_000)]}), schema, version=1)
    layout = WindowLayout(reference)
    values = names[rng.integers(0, 62, 6_000)]
    whole, pieces = WindowState(layout), WindowState(layout)
    whole.update(Batch(timestamps=np.zeros(6_000), inputs={"c": values}))  # factorised (>= 1,024 rows)
    for start in range(0, 6_000, 500):  # a dict look-up per value
        pieces.update(Batch(timestamps=np.zeros(500), inputs={"c": values[start : start + 500]}))
    assert whole.counts("c").tolist() == pieces.counts("c").tolist()
    assert whole.quality("c") == pieces.quality("c")
    assert whole.quality("c")["null"] == int(np.sum(values == None))  # noqa: E711


def test_profile_edges_and_counts_equal_numpys_quantiles() -> None:
    from detectors.profiles import numeric_profile

    rng = np.random.default_rng(0)
    for trial in range(500):
        n, bins = int(rng.integers(1, 3_000)), int(rng.integers(1, 25))
        v = rng.integers(0, int(rng.integers(1, 50)), n).astype(float) if trial % 2 else rng.normal(size=n)
        edges = np.unique(np.quantile(v, np.arange(1, bins) / bins, method="inverted_cdf"))
        edges = edges[edges < v.max()]
        counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=edges.size + 1)
        profile = numeric_profile(v, None, bins=bins)
        assert profile.edges.tolist() == edges.tolist() and profile.counts.tolist() == counts.tolist()
