"""Data-quality checks of one closed window: rates of bad values per channel, with thresholds.

For every channel of a window (each feature, and the prediction; latency has its
own check in :mod:`detectors.latency`) the window's counters
(:meth:`detectors.windows.state.WindowState.quality`) become rates, each compared with
a threshold. All rates are fractions of the window's records (``n``), in [0, 1].

========================  ============  =====================================================
check                     channels      breached when
========================  ============  =====================================================
``out_of_range``          numeric       finite values outside the layout's bounds / n > 0.05
``null_increase``         all           null rate - reference null rate > 0.05 *and* the
                                        increase is significant (one-sided, alpha 0.01)
``non_finite``            numeric       +-inf / genuine NaN / n > 0.01
``wrong_type``            all           e.g. strings in a numeric column / n > 0.01
``unseen``                categorical   categories the reference never saw / n > 0.05
========================  ============  =====================================================

Comparisons are strict (``rate > threshold``), so a threshold of 0 means "any
occurrence breaches"; a threshold of None switches the check off (it is not
reported). The bounds come from the :class:`~detectors.windows.state.WindowLayout`
(given per channel, or the reference min/max widened by its ``range_margin``;
a binary score's are [0, 1]), so the reference's own out-of-range and unseen
rates are 0 by construction and are reported as None. Non-finite and wrong-type
thresholds are absolute: a reference that already has them is reported in
``reference_rate`` for context but does not move the threshold.

Defaults, and why:

* ``out_of_range=0.05``, ``unseen=0.05``: with the default 10 % range margin a
  stationary feature puts well under 1 % of its values outside the bounds, and a
  categorical's unseen share is that of categories rarer than the reference could
  show; 5 % of a window is a real change of population or of upstream encoding.
* ``non_finite=0.01``, ``wrong_type=0.01``: these are bugs, not drift: any
  sizeable amount is worth a look, while a stray value in a thousand is not.
* ``null_increase=0.05`` absolute *and* a significance test at
  ``null_alpha=0.01``. The rate gate alone flags noise in small windows (a
  reference null rate of 2 % gives >= 4 nulls in a 50-row window 1.8 % of the
  time); the significance test alone would flag harmless 0.1-point increases in
  large windows. The test is Fisher's exact test, one-sided (current higher),
  on the 2 x 2 table of nulls / non-nulls in the window and the reference, i.e.
  the hypergeometric tail P(X >= nulls). The pooled two-proportion z-test
  (:func:`detectors.stats.proportions_ztest`) was not used: with a few expected
  nulls its normal approximation is anti-conservative (in the example above it
  gives p = 0.0013 for 4 nulls, Fisher's gives about 0.02), which is exactly the
  small-window case the test is there for. ``null_alpha=None`` drops the test.
* ``min_samples=1``: only an empty window is "insufficient" (never breached,
  rate None). Windows are already sized by the windowing policy
  (``min_records``); raise this to ignore tiny windows altogether.

Per-channel :class:`QualitySettings` overrides replace the whole settings of that
channel (use :func:`dataclasses.replace` on the defaults to change one field).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from scipy import stats

from detectors.profiles import NumericProfile
from detectors.schema import LATENCY
from detectors.windows.state import WindowState

CHECKS = ("out_of_range", "null_increase", "non_finite", "wrong_type", "unseen")


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """Thresholds (fractions of a window's records, None = check off); see the module docstring."""

    out_of_range: float | None = 0.05
    null_increase: float | None = 0.05
    null_alpha: float | None = 0.01
    non_finite: float | None = 0.01
    wrong_type: float | None = 0.01
    unseen: float | None = 0.05
    min_samples: int = 1

    def __post_init__(self) -> None:
        for name in CHECKS:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0
            ):
                raise ValueError(f"{name} must be a rate in [0, 1] or None, got {value!r}")
        a = self.null_alpha
        if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 < a < 1.0):
            raise ValueError(f"null_alpha must be in (0, 1) or None, got {a!r}")
        m = self.min_samples
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {m!r}")


@dataclass(frozen=True, slots=True)
class QualityCheck:
    """One check of one channel.

    ``rate = count / n`` (NaN when ``n == 0``); ``reference_rate`` is the same
    rate in the reference, or None where it does not apply; ``pvalue`` is the
    one-sided Fisher p-value of ``null_increase`` (None for other checks);
    ``insufficient`` windows (``n < min_samples``) are never ``breached``.
    """

    channel: str
    check: str
    rate: float
    count: int
    n: int
    threshold: float
    breached: bool
    reference_rate: float | None = None
    pvalue: float | None = None
    insufficient: bool = False
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("rate", "reference_rate", "pvalue", "threshold"):
            value = out[key]
            out[key] = None if value is None or not math.isfinite(value) else float(value)
        return out


@dataclass(frozen=True, slots=True)
class QualityReport:
    """All checks of one window, channel by channel in layout order."""

    checks: tuple[QualityCheck, ...]
    n: int
    window_seq: int

    @property
    def breached(self) -> list[QualityCheck]:
        return [c for c in self.checks if c.breached]

    def check(self, channel: str, check: str) -> QualityCheck:
        """One check by channel and name (KeyError when absent or switched off)."""
        for c in self.checks:
            if c.channel == channel and c.check == check:
                return c
        raise KeyError((channel, check))

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "window_seq": self.window_seq,
            "checks": [c.to_dict() for c in self.checks],
            "breached": [[c.channel, c.check] for c in self.breached],
        }


def check_quality(
    window: WindowState,
    settings: QualitySettings | None = None,
    overrides: Mapping[str, QualitySettings] | None = None,
    *,
    channels: Sequence[str] | None = None,
) -> QualityReport:
    """Run every enabled check on ``channels`` (default: all features and the prediction).

    ``overrides`` maps a channel name (a feature, or :data:`~detectors.columns.PREDICTION`)
    to the settings used for it instead of ``settings``.
    """
    if not isinstance(window, WindowState):
        raise TypeError(f"window must be a WindowState, got {type(window).__name__}")
    settings = settings or QualitySettings()
    overrides = dict(overrides or {})
    profiles = window.layout.reference.channels
    names = [c for c in profiles if c != LATENCY] if channels is None else list(channels)
    unknown = sorted((set(names) | set(overrides)) - set(profiles))
    if unknown:
        raise ValueError(f"unknown channels {unknown}; known: {list(profiles)}")
    for name, s in overrides.items():
        if not isinstance(s, QualitySettings):
            raise ValueError(f"overrides[{name!r}] must be QualitySettings, got {type(s).__name__}")
    out: list[QualityCheck] = []
    for ch in names:
        out.extend(_channel_checks(window, ch, overrides.get(ch, settings)))
    return QualityReport(checks=tuple(out), n=window.n, window_seq=window.seq)


def _channel_checks(window: WindowState, ch: str, s: QualitySettings) -> list[QualityCheck]:
    p = window.layout.reference.channels[ch]
    q = window.quality(ch)
    n = q["count"]
    ref_n = p.count
    ref_wrong = p.wrong_type_count / ref_n if ref_n else None
    insufficient = n < s.min_samples

    def simple(check: str, count: int, ref: float | None, detail: str = "") -> QualityCheck | None:
        threshold = getattr(s, check)
        if threshold is None:
            return None
        rate = count / n if n else math.nan
        breached = not insufficient and rate > threshold
        return QualityCheck(ch, check, rate, count, n, float(threshold), breached, ref, None, insufficient, detail)

    checks: list[QualityCheck | None] = []
    if isinstance(p, NumericProfile):
        j = window.layout.num_index[ch]
        lo, hi = float(window.layout.lo[j]), float(window.layout.hi[j])
        detail = f"{q['below_range']} below {lo:g}, {q['above_range']} above {hi:g}"
        checks.append(simple("out_of_range", q["out_of_range"], None, detail))
    checks.append(_null_check(ch, q["null"], n, p.null_count, ref_n, s, insufficient))
    if isinstance(p, NumericProfile):
        checks.append(simple("non_finite", q["nonfinite"], p.nonfinite_rate if ref_n else None))
    checks.append(simple("wrong_type", q["wrong_type"], ref_wrong))
    if not isinstance(p, NumericProfile):
        checks.append(simple("unseen", q["unseen"], None))
    return [c for c in checks if c is not None]


def _null_check(
    ch: str, nulls: int, n: int, ref_nulls: int, ref_n: int, s: QualitySettings, insufficient: bool
) -> QualityCheck | None:
    if s.null_increase is None:
        return None
    rate = nulls / n if n else math.nan
    ref_rate = ref_nulls / ref_n if ref_n else None
    pvalue: float | None = None
    if n and ref_n:
        # Fisher's exact test, one-sided: P(X >= nulls) for X ~ hypergeometric(population
        # ref_n + n with ref_nulls + nulls nulls, n draws) -- the current window's share of all nulls.
        pvalue = float(min(1.0, stats.hypergeom.sf(nulls - 1, ref_n + n, ref_nulls + nulls, n)))
    increase = rate - (ref_rate or 0.0) if n else math.nan
    significant = s.null_alpha is None or pvalue is None or pvalue < s.null_alpha
    breached = not insufficient and increase > s.null_increase and significant
    detail = "" if ref_rate is None else f"increase {increase:+.4f} over the reference"
    return QualityCheck(
        ch, "null_increase", rate, nulls, n, float(s.null_increase), breached, ref_rate, pvalue, insufficient, detail
    )


__all__ = ["CHECKS", "QualityCheck", "QualityReport", "QualitySettings", "check_quality"]
