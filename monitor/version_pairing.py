"""The champion's and challenger's predictions waiting for the whole-population window that
covers them (config ``versions.champion`` / ``versions.challenger``): taken when that window
closes and compared over its event-time span (:mod:`detectors.versions`), and carried by the
model's checkpoints with the version windows (monitor/version_state.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from detectors.decision import DriftSettings
from detectors.versions import VersionDivergence, compare
from detectors.windows.state import WindowState

log = logging.getLogger(__name__)


class Pairing:
    """The champion's and challenger's rows (event time, prediction, id) waiting for the
    whole-population window that covers them (module docstring of :mod:`detectors.versions`).

    Bounded: at most ``cap`` rows per version wait (the window's sample size); rows past that
    are not compared, and counted (:attr:`overflow`)."""

    def __init__(self, champion: str, challenger: str, cap: int, threshold: float | None, tolerance: float) -> None:
        self.champion, self.challenger = champion, challenger
        self.cap, self.threshold, self.tolerance = cap, threshold, tolerance
        self.overflow = 0
        self._rows: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {champion: [], challenger: []}
        self._kept = dict.fromkeys((champion, challenger), 0)

    def add(self, version: str, timestamps: np.ndarray, predictions: np.ndarray, ids: np.ndarray) -> None:
        room = self.cap - self._kept[version]
        if len(timestamps) > room:
            self.overflow += len(timestamps) - max(room, 0)
            timestamps, predictions, ids = timestamps[:room], predictions[:room], ids[:room]
        if len(timestamps):
            self._rows[version].append((timestamps, predictions, ids))
            self._kept[version] += len(timestamps)

    def _take(self, version: str, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """The version's predictions and ids of [start, end]; later rows wait, earlier ones go."""
        chunks = self._rows[version]
        if not chunks:
            return np.empty(0), np.empty(0, dtype=object)
        ts = np.concatenate([c[0] for c in chunks])
        predictions = np.concatenate([c[1] for c in chunks])
        ids = np.concatenate([c[2] for c in chunks])
        later = ts > end
        self._rows[version] = [(ts[later], predictions[later], ids[later])] if later.any() else []
        self._kept[version] = int(later.sum())
        inside = ~later & (ts >= start)
        return predictions[inside], ids[inside]

    def _joined(self, version: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chunks = self._rows[version]
        if not chunks:
            return np.empty(0), np.empty(0), np.empty(0, dtype=object)
        return (
            np.concatenate([c[0] for c in chunks]),
            np.concatenate([c[1] for c in chunks]),
            np.concatenate([c[2] for c in chunks]),
        )

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The rows still waiting and the overflow (for a checkpoint, written under the
        pipeline's lock): ids and class names as JSON values, event times and numeric
        predictions as arrays (``champion.timestamps``, ...). At 10,000 rows a version (the
        default cap) that is 0.6 MB, written in ~1 ms; all as JSON it was 1.1 MB and 20-30 ms."""
        rows: dict[str, Any] = {}
        header = {"champion": self.champion, "challenger": self.challenger, "overflow": self.overflow, "rows": rows}
        arrays = {}
        for role, version in (("champion", self.champion), ("challenger", self.challenger)):
            timestamps, predictions, ids = self._joined(version)
            numeric = predictions.dtype != object  # else class names (or None)
            rows[role] = {"ids": ids.tolist(), "predictions": None if numeric else predictions.tolist()}
            arrays[f"{role}.timestamps"] = timestamps.astype(np.float64, copy=False)
            if numeric:
                arrays[f"{role}.predictions"] = predictions.astype(np.float64, copy=False)
        return header, arrays

    def restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Put back the rows of :meth:`state` in place of the current ones, if taken for the same
        champion and challenger (else they are dropped and the log says so); past ``cap`` they
        are counted as overflow."""
        self.clear()
        if (state["champion"], state["challenger"]) != (self.champion, self.challenger):
            log.warning(
                "champion and challenger were %s and %s at the checkpoint, now %s and %s: their waiting rows "
                "are dropped", state["champion"], state["challenger"], self.champion, self.challenger,
            )  # fmt: skip
            return
        self.overflow = int(state["overflow"])
        for role, version in (("champion", self.champion), ("challenger", self.challenger)):
            saved = state["rows"][role]
            predictions = arrays.get(f"{role}.predictions")
            if predictions is None:
                predictions = _objects(saved["predictions"])
            self.add(version, arrays[f"{role}.timestamps"], predictions, _objects(saved["ids"]))

    def clear(self) -> None:
        self.overflow = 0
        for version in (self.champion, self.challenger):
            self._rows[version], self._kept[version] = [], 0

    def close(self, window: WindowState, reference: str, settings: DriftSettings) -> Callable[[], VersionDivergence]:
        """The comparison over a closed whole-population window's event-time span: its rows
        are taken now (on the pipeline's thread), the test runs when the result is called."""
        start = float(window.start if np.isfinite(window.start) else window.min_ts)
        end = float(window.end if np.isfinite(window.end) else window.max_ts)
        a, a_ids = self._take(self.champion, start, end)
        b, b_ids = self._take(self.challenger, start, end)
        scored = {i: p for i, p in zip(a_ids.tolist(), a.tolist(), strict=True) if i is not None}
        pairs = [(scored[i], p) for i, p in zip(b_ids.tolist(), b.tolist(), strict=True) if i in scored]
        return lambda: compare(
            (self.champion, a), (self.challenger, b), pairs, (window.seq, start, end, reference), settings,
            threshold=self.threshold, tolerance=self.tolerance,
        )  # fmt: skip


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
