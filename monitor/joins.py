"""Bounded buffers that join the parts of a record by ``(model, id)``.

``JoinBuffer`` holds partial records (inputs only, prediction only, label only) until
their counterpart arrives, for at most ``ttl`` seconds and ``capacity`` entries.
``LabelBuffer`` remembers recent predictions so that a label arriving hours later can be
matched with what the model said. Both are insertion-ordered dicts, so the oldest entry
is always first and expiry is a walk from the front that stops at the first live entry.

Nothing leaves either buffer silently: every expiry and eviction is returned to the
caller, which counts it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

from monitor.records import Record

Key = tuple[str, str]


@dataclass(slots=True)
class Pending:
    record: Record
    arrived: float


class JoinBuffer:
    """Partial records waiting for their other parts."""

    def __init__(self, capacity: int, ttl: float):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl}")
        self.capacity = capacity
        self.ttl = ttl
        self._pending: OrderedDict[Key, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: Key) -> bool:
        return key in self._pending

    def offer(self, record: Record, now: float) -> tuple[Record | None, list[str], list[Record]]:
        """Add a partial record.

        Returns ``(completed, repeated, evicted)``: the joined record if this part
        completed it (it then leaves the buffer), the parts that repeated what was already
        buffered, and the records pushed out because the buffer was full.
        """
        key = (record.model, record.id or "")
        pending = self._pending.get(key)
        if pending is not None:
            repeated = pending.record.merge(record)
            if pending.record.complete:
                del self._pending[key]
                return pending.record, repeated, []
            return None, repeated, []
        evicted = []
        while len(self._pending) >= self.capacity:
            evicted.append(self._pending.popitem(last=False)[1].record)
        self._pending[key] = Pending(record, now)
        return None, [], evicted

    def expire(self, now: float) -> list[Record]:
        """Remove and return the partial records older than the time-to-live."""
        expired = []
        deadline = now - self.ttl
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.arrived > deadline:
                break
            del self._pending[key]
            expired.append(pending.record)
        return expired

    def drain(self) -> list[Record]:
        """Remove and return everything (shutdown: nothing accepted is lost)."""
        records = [pending.record for pending in self._pending.values()]
        self._pending.clear()
        return records


class AwaitingLabel(NamedTuple):
    """What the label will be compared with: the prediction and when it was made.

    ``labelled`` entries stay until they expire, so a repeated label or a retried
    record is recognised as a duplicate. A tuple rather than a class on purpose: the
    buffer holds ~200,000 of them, and tuples of plain values are untracked by the
    garbage collector, whose full collections would otherwise walk them all.
    """

    prediction: Any
    timestamp: float
    arrived: float
    labelled: bool = False


class LabelBuffer:
    """Recent predictions by ``(model, id)``, waiting for delayed labels.

    It doubles as the memory of recently completed ids, so a retried complete record is
    recognised as a duplicate.
    """

    def __init__(self, capacity: int, ttl: float):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl}")
        self.capacity = capacity
        self.ttl = ttl
        self._awaiting: OrderedDict[Key, AwaitingLabel] = OrderedDict()

    def __len__(self) -> int:
        return len(self._awaiting)

    def __contains__(self, key: Key) -> bool:
        return key in self._awaiting

    def get(self, key: Key) -> AwaitingLabel | None:
        return self._awaiting.get(key)

    def mark_labelled(self, key: Key) -> None:
        """Record that ``key``'s label came (the entry keeps its place in the order)."""
        self._awaiting[key] = self._awaiting[key]._replace(labelled=True)

    def remember(self, key: Key, record: Record, now: float) -> list[Key]:
        """Keep a completed record's prediction (labelled or not).

        Returns the keys of still-unlabelled predictions evicted to make room: their
        labels can no longer be matched, which the caller counts.
        """
        lost = []
        awaiting = self._awaiting
        while len(awaiting) >= self.capacity:
            old_key, old = awaiting.popitem(last=False)
            if not old.labelled:
                lost.append(old_key)
        awaiting[key] = AwaitingLabel(record.prediction, record.timestamp, now, record.has_label)
        return lost

    def expire(self, now: float) -> list[Key]:
        """Drop entries older than the time-to-live; returns the unlabelled ones dropped."""
        lost = []
        deadline = now - self.ttl
        while self._awaiting:
            key, awaiting = next(iter(self._awaiting.items()))
            if awaiting.arrived > deadline:
                break
            del self._awaiting[key]
            if not awaiting.labelled:
                lost.append(key)
        return lost
