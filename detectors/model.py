"""Everything kept per monitored model: windows over its traffic, their evaluation, and
performance windows over its labelled predictions.

``ModelDetector.update(batch)`` counts a columnar batch into the open window and returns
the :class:`~detectors.evaluation.Evaluation` of every window that closed (each window
is evaluated exactly once, when it closes). ``observe_labels`` does the same for
labelled predictions and returns closed performance windows. ``to_bytes`` /
``from_bytes`` checkpoint the whole state (open windows and RNG states included), so a
restored detector continues exactly as the original would have.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.columns import Batch
from detectors.estimation.window import Estimate, Estimators, estimate_window
from detectors.evaluation import Evaluation, EvaluationSettings, evaluate_window
from detectors.performance import PerformanceResult, PerformanceSettings
from detectors.profiles import ReferenceProfile
from detectors.sketches import pack, unpack
from detectors.windows.performance import PerformanceWindows
from detectors.windows.policies import Windower, WindowPolicy
from detectors.windows.state import WindowLayout, WindowState

FORMAT_VERSION = 1
# Slices or versions whose numbering a NumberFloors keeps at most (module docstring of
# detectors.segments / monitor.version_state): ~150 bytes each.
MAX_NUMBERED = 4096


@dataclass(frozen=True)
class WindowNumbers:
    """The numbers a detector's next windows get: its drift windows (whose results are the
    kinds drift, quality, latency and the estimates) and its performance windows are
    numbered apart. A model's numbers never go back: a new detector (a new reference, a
    restart) continues from the old one's (:meth:`ModelDetector.continue_numbering`), so
    ``(model, window_seq)`` names one window of each family."""

    drift: int = 0
    performance: int = 0

    def __or__(self, other: WindowNumbers) -> WindowNumbers:
        """The larger of both, family by family."""
        return WindowNumbers(max(self.drift, other.drift), max(self.performance, other.performance))


class NumberFloors:
    """Where the numbering of each named detector (a slice, a version) continues when a new
    one is made for that name. Names with no window yet are not kept; past ``limit`` names
    the least recently raised is forgotten (its numbering would then start again at the
    store's maximum after a restart, or 0): bounded whatever the traffic names."""

    def __init__(self, limit: int = MAX_NUMBERED) -> None:
        self.limit = limit
        self._floors: OrderedDict[str, WindowNumbers] = OrderedDict()

    def get(self, name: str) -> WindowNumbers:
        return self._floors.get(name, WindowNumbers())

    def raise_to(self, name: str, numbers: WindowNumbers) -> None:
        """Continue ``name``'s numbering at ``numbers`` at least."""
        if numbers == WindowNumbers():
            return
        self._floors[name] = self.get(name) | numbers
        self._floors.move_to_end(name)
        while len(self._floors) > self.limit:
            self._floors.popitem(last=False)

    def update(self, floors: Mapping[str, WindowNumbers]) -> None:
        for name, numbers in floors.items():
            self.raise_to(name, numbers)

    def items(self) -> Iterator[tuple[str, WindowNumbers]]:
        return iter(list(self._floors.items()))

    def to_json(self) -> dict[str, list[int]]:
        """For a checkpoint's header: name -> [drift, performance]."""
        return {name: [n.drift, n.performance] for name, n in self._floors.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, limit: int = MAX_NUMBERED) -> NumberFloors:
        out = cls(limit)
        for name, (drift, performance) in (data or {}).items():
            out.raise_to(str(name), WindowNumbers(int(drift), int(performance)))
        return out


@dataclass(frozen=True)
class DetectorSettings:
    """Everything that shapes a model's detector besides its reference."""

    policy: WindowPolicy = field(default_factory=WindowPolicy)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    sample_size: int = 10_000
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    range_margin: float = 0.1
    performance: PerformanceSettings | None = None
    performance_window: int = 5_000
    reference_performance: dict[str, float | None] | None = None
    seed: int = 0
    # Fitted on the labelled reference (detectors.estimation): CBPE or direct loss estimation,
    # and multivariate drift.
    estimators: Estimators | None = None


class ModelDetector:
    """Windows, evaluation and performance for one model and one reference."""

    def __init__(
        self, reference: ReferenceProfile, settings: DetectorSettings | None = None, layout: WindowLayout | None = None
    ) -> None:
        """``layout``: one already built for ``reference`` with these settings, to share
        (segment detectors on the whole reference share its layout: one copy of its samples)."""
        self.reference = reference
        self.settings = settings = settings or DetectorSettings()
        estimators = settings.estimators
        self.layout = layout or WindowLayout(
            reference, sample_size=settings.sample_size, bounds=settings.bounds, range_margin=settings.range_margin,
            # what the estimators read besides the numeric channels, sampled in the same rows
            extra_numeric=estimators.extra_numeric if estimators else (),
            coded_categorical=estimators.coded_categorical if estimators else (),
        )  # fmt: skip
        self.windower = settings.policy.windower(self.layout, settings.seed)
        self.performance: PerformanceWindows | None = None
        if settings.performance is not None:
            self.performance = PerformanceWindows(
                settings.performance, settings.performance_window, reference=settings.reference_performance
            )

    def update(self, batch: Batch) -> list[Evaluation]:
        """Count a batch; the evaluations of the windows it closed, oldest first."""
        return [self.evaluate(window) for window in self.close(batch)]

    def close(self, batch: Batch) -> list[WindowState]:
        """Count a batch; the windows it closed, not yet evaluated (evaluate them with
        :meth:`evaluate`, e.g. on another thread: a closed window is never touched again)."""
        return self.windower.update(batch)

    def evaluate(self, window: WindowState) -> Evaluation:
        return evaluate_window(window, self.settings.evaluation)

    def estimate(self, window: WindowState) -> list[Estimate]:
        """Estimated performance and multivariate drift of a closed window (none without
        estimators). Reads only the window's row sample, so, like :meth:`evaluate`, it can
        run on another thread, and a restored window gives the same estimates."""
        estimators = self.settings.estimators
        return [] if estimators is None else estimate_window(window, estimators)

    def flush(self) -> Evaluation | None:
        """Close and evaluate the open window whatever its size (end of a replay)."""
        window = self.windower.flush()
        return None if window is None or window.n == 0 else evaluate_window(window, self.settings.evaluation)

    def flush_performance(self) -> PerformanceResult | None:
        """Close the open performance window whatever its size (end of a replay); its
        result, or None without labels or under ``min_labels``."""
        return None if self.performance is None else self.performance.flush()

    def observe_labels(self, predictions: Any, labels: Any, timestamps: Any = None) -> list[PerformanceResult]:
        """Count labelled predictions; the results of the performance windows that closed."""
        if self.performance is None or len(predictions) == 0:
            return []
        return self.performance.update(predictions, labels, timestamps)

    def next_numbers(self) -> WindowNumbers:
        """The numbers of the next drift and performance windows (:class:`WindowNumbers`)."""
        performance = 0 if self.performance is None else self.performance.next_seq
        return WindowNumbers(self.windower.next_seq, performance)

    def continue_numbering(self, numbers: WindowNumbers) -> None:
        """Number the windows from ``numbers`` on where they would get lower numbers; open
        windows not yet closed are renumbered (their records stay)."""
        self.windower.continue_numbering(numbers.drift)
        if self.performance is not None:
            self.performance.continue_numbering(numbers.performance)

    @property
    def open_records(self) -> int:
        window = self.windower.open_window
        return 0 if window is None else window.n

    def to_bytes(self) -> bytes:
        """A checkpoint: the windower (open window, RNG state) and the open performance window."""
        arrays = {"windower": np.frombuffer(self.windower.to_bytes(), np.uint8)}
        if self.performance is not None:
            arrays["performance"] = np.frombuffer(self.performance.to_bytes(), np.uint8)
        header = {"kind": "model_detector", "format_version": FORMAT_VERSION, "reference": self.reference.content_hash}
        return pack(header, arrays)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        reference: ReferenceProfile,
        settings: DetectorSettings | None = None,
        layout: WindowLayout | None = None,
    ) -> ModelDetector:
        """Restore a checkpoint taken with the same reference (and the same window settings)."""
        header, arrays = unpack(data)
        if header.get("kind") != "model_detector" or header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a model detector checkpoint of format {FORMAT_VERSION}")
        if header.get("reference") != reference.content_hash:
            raise ValueError("the checkpoint was taken with another reference profile")
        detector = cls(reference, settings, layout)
        detector.windower = Windower.from_bytes(arrays["windower"].tobytes(), detector.layout)
        if "performance" in arrays and detector.performance is not None:
            detector.performance = PerformanceWindows.from_bytes(arrays["performance"].tobytes())
        return detector
