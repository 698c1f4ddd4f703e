"""Latency of one window: p50 / p95 / p99 and an SLO breach flag.

Units: milliseconds. The quantiles come from the window's
:class:`~detectors.sketches.QuantileSketch` (bounded memory, mergeable), so each
is an estimate of the exact *lower* quantile (``np.quantile(x, q,
method="lower")``) within the sketch's ``relative_accuracy`` (1 % by default,
:class:`~detectors.windows.state.WindowLayout` ``latency_accuracy``) for values in
[1 microsecond, 10^7 ms]; smaller values read as 0, larger ones as the exact
maximum. Negative, NaN and infinite latencies are not summarised (the sketch
counts negatives in ``negative``; nulls and wrong types are the data-quality
checks' business).

Latency is summarised whenever records carry ``latency_ms``, whether or not the
reference profiled a latency channel: a p99 and an SLO need no baseline.

SLO: ``breached`` is ``estimate(quantile) > slo_ms``. Because the estimate is
within ``relative_accuracy`` of the truth, a true quantile within 1 % of the SLO
may be flagged either way; anything further away is decided correctly.

Defaults: ``quantile=0.99`` because latency SLOs are about the tail, and p99 is
the usual contract; ``slo_ms=None`` (no SLO: quantiles are reported, never
breached) because there is no sensible universal number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from detectors.sketches import QuantileSketch
from detectors.windows.state import WindowState


@dataclass(frozen=True, slots=True)
class LatencySettings:
    """``slo_ms``: the latency (ms) that ``quantile`` of the requests must not exceed; None = no SLO."""

    slo_ms: float | None = None
    quantile: float = 0.99

    def __post_init__(self) -> None:
        slo = self.slo_ms
        if slo is not None and (isinstance(slo, bool) or not isinstance(slo, (int, float)) or not 0.0 < slo < math.inf):
            raise ValueError(f"slo_ms must be a finite number of milliseconds > 0 or None, got {slo!r}")
        q = self.quantile
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {q!r}")


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Latency quantiles (ms) of one window and the SLO verdict.

    ``value`` is the estimate at ``quantile`` (the one compared with ``slo_ms``);
    ``n`` the number of latencies summarised; ``negative`` the invalid negative
    ones left out; ``relative_accuracy`` the sketch's error bound.
    """

    p50: float
    p95: float
    p99: float
    n: int
    slo_ms: float | None
    quantile: float
    value: float
    breached: bool
    relative_accuracy: float
    negative: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("p50", "p95", "p99", "value"):
            out[key] = out[key] if math.isfinite(out[key]) else None
        return out


def latency_from_sketch(sketch: QuantileSketch, settings: LatencySettings | None = None) -> LatencyResult | None:
    """Quantiles and SLO flag of a sketch; None when it holds no latency values."""
    settings = settings or LatencySettings()
    if not isinstance(sketch, QuantileSketch):
        raise TypeError(f"sketch must be a QuantileSketch, got {type(sketch).__name__}")
    n = sketch.count
    if n == 0:
        return None
    p50, p95, p99, value = (float(v) for v in sketch.quantiles([0.5, 0.95, 0.99, settings.quantile]))
    return LatencyResult(
        p50=p50,
        p95=p95,
        p99=p99,
        n=n,
        slo_ms=None if settings.slo_ms is None else float(settings.slo_ms),
        quantile=float(settings.quantile),
        value=value,
        breached=settings.slo_ms is not None and value > settings.slo_ms,
        relative_accuracy=sketch.relative_accuracy,
        negative=sketch.negative,
    )


def check_latency(window: WindowState, settings: LatencySettings | None = None) -> LatencyResult | None:
    """Latency of a closed window; None when it saw no latencies. The reference plays no
    part: the quantiles and the SLO come from the window's own sketch."""
    if not isinstance(window, WindowState):
        raise TypeError(f"window must be a WindowState, got {type(window).__name__}")
    return latency_from_sketch(window.latency, settings)
