"""Window numbers that never repeat for a model, across restarts.

A model's windows are numbered on across its detectors while the process runs (a new
reference continues the old detector's numbers: monitor/model_state.py, segment_state.py,
version_state.py). At start-up, once the checkpoints are restored and before traffic,
:func:`continue_stored_numbering` moves each model's numbering past the highest
``window_seq`` the store holds for it, per slice and per version, and per family: drift
windows (every kind but ``performance``: drift, quality, latency, the estimates and the
champion/challenger comparison share their window's number) and performance windows,
numbered apart. A restored checkpoint's numbering is kept when it is already past them.

So, after a restart without a checkpoint (``storage.checkpoint_seconds`` off, or a kill -9
before the first one), the newest stored window is still the latest one (the gauges
restored, the web pages) and ``(model, window_seq)`` still names one window. A Kafka-fed
model's own checkpoint, restored later by the collector, keeps its numbers: the records read
again close the same windows, which the store does not store twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from detectors.model import WindowNumbers
from monitor.pipeline import Pipeline
from monitor.store.database import Store

log = logging.getLogger(__name__)

# Result kinds of performance windows; every other kind carries a drift window's number.
PERFORMANCE_KINDS = frozenset({"performance"})

Numbers = tuple[WindowNumbers, dict[str, WindowNumbers], dict[str, WindowNumbers]]


def next_numbers(stored: Mapping[tuple[str, str, str], int]) -> Numbers:
    """From ``Store.window_numbers``: the next numbers of the whole population, of each
    slice and of each version (one past the highest stored, per family)."""
    whole = WindowNumbers()
    slices: dict[str, WindowNumbers] = {}
    versions: dict[str, WindowNumbers] = {}
    for (segment, version, kind), seq in stored.items():
        after = seq + 1
        numbers = WindowNumbers(performance=after) if kind in PERFORMANCE_KINDS else WindowNumbers(drift=after)
        if segment and version:  # no such results are written; never a reason to fail a start-up
            continue
        if segment:
            slices[segment] = slices.get(segment, WindowNumbers()) | numbers
        elif version:
            versions[version] = versions.get(version, WindowNumbers()) | numbers
        else:
            whole = whole | numbers
    return whole, slices, versions


def continue_stored_numbering(pipeline: Pipeline, store: Store) -> None:
    """Number every configured model's next windows past those the store holds (start-up,
    after the checkpoints are restored, before traffic)."""
    for name in list(pipeline.models):
        whole, slices, versions = next_numbers(store.window_numbers(name))
        pipeline.models[name].continue_numbering(whole, slices, versions)
        if whole != WindowNumbers():
            log.info("model %s: after the stored windows, numbers go on from %d (drift) and %d (performance)",
                     name, whole.drift, whole.performance)  # fmt: skip
