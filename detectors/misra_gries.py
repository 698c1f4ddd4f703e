"""The Misra-Gries heavy-hitters summary: which values of a stream are frequent, in a fixed
number of counters. Segment analysis (:mod:`detectors.segments`) uses it to choose which
tag values seen only in traffic get a slice: it never over-counts, so a flood of one-off
values takes no counter for long.
"""

from __future__ import annotations

from collections.abc import Mapping


class MisraGries:
    """At most ``capacity`` counters; a value's count is never above its true count and at
    most N / (capacity + 1) below it (N: the weight added)."""

    def __init__(self, capacity: int, counts: Mapping[str, int] | None = None) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = dict(counts or {})

    def add(self, value: str, weight: int) -> int:
        """Add ``weight`` rows of ``value``; its count afterwards (0 if not tracked)."""
        counts = self.counts
        if value in counts or len(counts) < self.capacity:
            counts[value] = counts.get(value, 0) + weight
            return counts[value]
        cut = min(weight, min(counts.values()))
        for v in list(counts):
            counts[v] -= cut
            if counts[v] == 0:
                del counts[v]
        if weight > cut:
            counts[value] = weight - cut
        return counts.get(value, 0)

    def pop(self, value: str) -> None:
        self.counts.pop(value, None)
