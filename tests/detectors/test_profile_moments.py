"""A numeric profile's min, max, mean and std are numpy's own of the finite values, bit for
bit (they come from the sorted values and one pass of deviations, not np.min / np.std)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.profiles import numeric_profile


def _bits(value: float) -> bytes:
    return np.float64(value).tobytes()  # -0.0 and 0.0 differ here


@pytest.mark.parametrize("case", range(8))
def test_moments_equal_numpys_bit_for_bit(case: int) -> None:
    rng = np.random.default_rng(case)
    n = 30_000
    x = [
        rng.normal(1e6, 3.0, n),
        rng.lognormal(0.0, 4.0, n),
        rng.integers(-3, 4, n).astype(float),  # ties and zeros
        rng.uniform(-8e307, 8e307, n) * 2,  # sums overflow to inf
        np.where(rng.random(n) < 0.5, -0.0, 0.0),  # only zeros of both signs
        np.r_[-0.0, rng.uniform(0.0, 1.0, n - 2), 0.0],  # a zero at each end
        rng.normal(0.0, 1.0, n),
        rng.integers(-5, 5, n),  # integers given straight in
    ][case]
    if case == 6:
        x[rng.random(n) < 0.05] = np.nan
        x[:2] = [np.inf, -np.inf]
    finite = x[np.isfinite(x)]
    with np.errstate(over="ignore", invalid="ignore"):
        profile = numeric_profile(x, None, sample_size=1_000)
        want = [np.min(finite), np.max(finite), np.mean(finite), np.std(finite)]
    assert finite.size > 0 and profile.count == n
    assert [_bits(v) for v in (profile.min, profile.max, profile.mean, profile.std)] == [_bits(v) for v in want]
