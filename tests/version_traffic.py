"""Reference files and records of the two-feature ``shop`` model that the version tests
send to a real service (tests/monitor/test_versions_service.py, test_version_checkpoints.py)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def shop_reference_csv(rng: np.random.Generator, mean: float, n: int) -> bytes:
    """``n`` reference rows: features a and b ~ N(mean, 1), prediction a / 2."""
    x = rng.normal(mean, 1.0, size=(n, 2))
    buffer = io.StringIO()
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "prediction": x[:, 0] / 2}).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def shop_records(rng: np.random.Generator, mean: float, version: str, start: int, n: int) -> list[dict]:
    """``n`` records of ``version`` with ids r<start>..., one second apart, drawn as the reference."""
    x = rng.normal(mean, 1.0, size=(n, 2))
    return [
        {"model": "shop", "id": f"r{start + j}", "version": version, "timestamp": 1.7e9 + start + j,
         "inputs": {"a": float(x[j, 0]), "b": float(x[j, 1])}, "prediction": float(x[j, 0] / 2)}
        for j in range(n)
    ]  # fmt: skip
