"""The multivariate table of ``detection_quality.py`` (its module docstring says what a
trial is): detection rates of univariate drift, PCA reconstruction error and the domain
classifier when only the correlation of two features changes."""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.columns import Batch  # noqa: E402
from detectors.estimation.fitting import fit_estimators  # noqa: E402
from detectors.model import DetectorSettings, ModelDetector  # noqa: E402
from detectors.profiles import ReferenceProfile  # noqa: E402
from detectors.schema import Schema  # noqa: E402
from detectors.windows.policies import WindowPolicy  # noqa: E402

REFERENCE_CORRELATION = 0.8
CORRELATIONS: tuple[float, ...] = (0.8, 0.6, 0.5, 0.2)  # in the window; 0.8 = no change
TARGET_CORRELATION = 0.5
REFERENCE_ROWS, WINDOW_ROWS = 20_000, 5_000
METHODS = ("univariate", "pca_reconstruction", "domain_classifier")
SCHEMA = Schema({"x1": "numeric", "x2": "numeric", "x3": "numeric"})


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    z = rng.standard_normal((n, 3))
    z[:, 1] = rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]
    return z


def trial(rng: np.random.Generator, rho: float, seed: int) -> tuple[bool, bool, bool]:
    """(univariate, PCA, domain classifier) flags of one window."""
    reference = pd.DataFrame(correlated(rng, REFERENCE_ROWS, REFERENCE_CORRELATION), columns=["x1", "x2", "x3"])
    profile = ReferenceProfile.from_frame(reference, SCHEMA, version="r", seed=seed)
    estimators = fit_estimators(reference, SCHEMA, domain_classifier=True, seed=seed)
    policy = WindowPolicy("count", size=WINDOW_ROWS)
    detector = ModelDetector(
        profile, DetectorSettings(policy=policy, sample_size=WINDOW_ROWS, estimators=estimators, seed=seed)
    )
    x = correlated(rng, WINDOW_ROWS, rho)
    batch = Batch(timestamps=np.arange(WINDOW_ROWS, dtype=float), inputs={f"x{i + 1}": x[:, i] for i in range(3)})
    [window] = detector.close(batch)
    drift = detector.evaluate(window).drift
    flags = {e.to_dict()["method"]: bool(e.to_dict()["drift"]) for e in detector.estimate(window)}
    return drift.n_drifted > 0 or drift.dataset_drift, flags["pca_reconstruction"], flags["domain_classifier"]


def run_row(index: int, trials: int, seed: int) -> list[float]:
    rng = np.random.default_rng([seed, 7, index])
    flags = np.array([trial(rng, CORRELATIONS[index], seed + t) for t in range(trials)])
    return flags.mean(axis=0).tolist()


def multivariate_rates(trials: int, seed: int, jobs: int = 1) -> np.ndarray:
    """Rows = ``CORRELATIONS``, columns = ``METHODS``: shares of trials flagged."""
    args = [(i, trials, seed) for i in range(len(CORRELATIONS))]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            rows = list(pool.map(run_row, *zip(*args, strict=True)))
    else:
        rows = [run_row(*a) for a in args]
    return np.asarray(rows)


def format_multivariate(rates: np.ndarray, trials: int) -> str:
    lines = [
        f"multivariate: correlation of x1, x2 moves from {REFERENCE_CORRELATION} (marginals unchanged); "
        f"{WINDOW_ROWS:,}-row windows, {trials} trials per row; share of trials flagged",
        f"{'corr':>6} | " + " | ".join(f"{m:>18}" for m in METHODS),
    ]
    for rho, row in zip(CORRELATIONS, rates, strict=True):
        lines.append(f"{rho:>6.1f} | " + " | ".join(f"{r * 100:17.1f}%" for r in row))
    return "\n".join(lines)


def check_multivariate(rates: np.ndarray) -> list[tuple[str, bool, str]]:
    none, target = CORRELATIONS.index(REFERENCE_CORRELATION), CORRELATIONS.index(TARGET_CORRELATION)
    out = []
    for j, method in enumerate(METHODS[1:], start=1):
        out.append(
            (f"{method}: corr 0.8 -> 0.5 flagged >= 95%", rates[target, j] >= 0.95, f"{rates[target, j] * 100:.1f}%")
        )
        out.append((f"{method}: no change flagged < 2%", rates[none, j] < 0.02, f"{rates[none, j] * 100:.1f}%"))
    worst = float(rates[:, 0].max())
    out.append(
        ("univariate drift flags a correlation-only change < 2% (every row)", worst < 0.02, f"max {worst * 100:.1f}%")
    )
    return [(text, bool(ok), observed) for text, ok, observed in out]
