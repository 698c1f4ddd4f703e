"""Bounded buffers that join the parts of a record by ``(model, id)``.

``JoinBuffer`` holds partial records (inputs only, prediction only, label only) until
their counterpart arrives, for at most ``ttl`` seconds and ``capacity`` entries.
``LabelBuffer`` remembers recent predictions so that a label arriving hours later can be
matched with what the model said. Both keep their entries in arrival order, so the
oldest entry is always first and expiry is a walk from the front that stops at the first
live entry.

Nothing leaves either buffer silently: every expiry and eviction is returned to the
caller, which counts it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import itemgetter, not_
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

    def holds_any(self, keys: Sequence[Key]) -> bool:
        """Whether a partial record of any of ``keys`` is waiting here."""
        return bool(self._pending) and not self._pending.keys().isdisjoint(keys)

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

    # Checkpoints (monitor/model_snapshots.py) carry a model's partial records between instances.
    def of_model(self, model: str) -> list[Pending]:
        return [pending for (m, _), pending in self._pending.items() if m == model]

    def remove_model(self, model: str) -> None:
        for key in [key for key in self._pending if key[0] == model]:
            del self._pending[key]

    def put_back(self, entries: list[Pending]) -> list[Record]:
        """Re-buffer restored partial records (keeping their arrival times); returns those
        pushed out because the buffer was full, for the caller to count."""
        evicted = []
        for pending in entries:
            while len(self._pending) >= self.capacity:
                evicted.append(self._pending.popitem(last=False)[1].record)
            self._pending[(pending.record.model, pending.record.id or "")] = pending
        return evicted


class AwaitingLabel(NamedTuple):
    """What the label will be compared with: the prediction and when it was made.

    ``labelled`` entries stay until they expire, so a repeated label or a retried
    record is recognised as a duplicate. The buffer stores each entry as a plain
    ``(prediction, timestamp, arrived, labelled)`` tuple (building this named tuple
    costs ~10x more, and ingestion makes one per record) and :meth:`LabelBuffer.get`
    returns this view of it. Tuples rather than objects on purpose: the buffer holds
    ~200,000 of them, and tuples of plain values are untracked by the garbage
    collector, whose full collections would otherwise walk them all.
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
        # key -> (prediction, timestamp, arrived, labelled): see AwaitingLabel. Keys leave
        # in the order they came (evictions and expiry take the oldest), so the order is a
        # list with a moving head rather than an OrderedDict: inserting and evicting a
        # batch of keys are then a few C-level calls instead of one Python call per key.
        self._awaiting: dict[Key, tuple[Any, float, float, bool]] = {}
        self._order: list[Key] = []  # every key of _awaiting, oldest first, from _head on
        self._head = 0

    def __len__(self) -> int:
        return len(self._awaiting)

    def __contains__(self, key: Key) -> bool:
        return key in self._awaiting

    def get(self, key: Key) -> AwaitingLabel | None:
        entry = self._awaiting.get(key)
        return None if entry is None else AwaitingLabel._make(entry)

    def mark_labelled(self, key: Key) -> None:
        """Record that ``key``'s label came (the entry keeps its place in the order)."""
        prediction, timestamp, arrived, _ = self._awaiting[key]
        self._awaiting[key] = (prediction, timestamp, arrived, True)

    def remember(self, key: Key, record: Record, now: float) -> list[Key]:
        """Keep a completed record's prediction (labelled or not).

        Returns the keys of still-unlabelled predictions evicted to make room: their
        labels can no longer be matched, which the caller counts.
        """
        return self.remember_values(key, record.prediction, record.timestamp, record.has_label, now)

    def remember_values(self, key: Key, prediction: Any, timestamp: float, labelled: bool, now: float) -> list[Key]:
        """:meth:`remember` from the values rather than a Record."""
        awaiting = self._awaiting
        if key in awaiting:  # not reached by the pipeline (it remembers new keys only)
            awaiting[key] = (prediction, timestamp, now, labelled)
            return []
        excess = len(awaiting) + 1 - self.capacity
        lost = self._drop_oldest(excess) if excess > 0 else []
        awaiting[key] = (prediction, timestamp, now, labelled)
        self._order.append(key)
        return lost

    def all_new(self, keys: Sequence[Key]) -> bool:
        """None of ``keys`` is here (and none repeats another): :meth:`remember_all` may take them."""
        return len(set(keys)) == len(keys) and self._awaiting.keys().isdisjoint(keys)

    def remember_all(
        self,
        keys: Sequence[Key],
        predictions: Sequence[Any],
        timestamps: Sequence[float],
        labelled: Sequence[bool] | None,
        now: float,
    ) -> list[Key]:
        """:meth:`remember` for many completed records at once, in order, for keys that
        are :meth:`all_new`: the same entries, evictions and returned keys as one call
        per record, without a Python call per record."""
        awaiting = self._awaiting
        flags = repeat(False) if labelled is None else labelled
        awaiting.update(zip(keys, zip(predictions, timestamps, repeat(now), flags, strict=False), strict=True))
        self._order.extend(keys)
        excess = len(awaiting) - self.capacity
        return self._drop_oldest(excess) if excess > 0 else []

    def entries_of(self, model: str) -> list[list[Any]]:
        """``model``'s entries, oldest first, as ``[id, prediction, timestamp, arrived,
        labelled]`` lists (for a checkpoint; :meth:`put_back` takes them)."""
        awaiting = self._awaiting
        return [[key[1], *awaiting[key]] for key in self._order[self._head :] if key[0] == model]

    def put_back(self, model: str, entries: Iterable[Sequence[Any]]) -> list[Key]:
        """Take back entries of :meth:`entries_of` (``model``'s own removed first). They go
        before every other entry, as the oldest: expiry and eviction take them first.
        Returns the keys of unlabelled entries evicted to stay within the capacity."""
        awaiting = self._awaiting
        keys = []
        for name, prediction, timestamp, arrived, labelled in entries:
            key = (model, name)
            if key not in awaiting:
                awaiting[key] = (prediction, float(timestamp), float(arrived), bool(labelled))
                keys.append(key)
        self._order[self._head : self._head] = keys
        excess = len(awaiting) - self.capacity
        return self._drop_oldest(excess) if excess > 0 else []

    def remove_model(self, model: str) -> None:
        """Forget ``model``'s entries: its state moved to another instance or back to its
        checkpoint, and records read again from there must not look like duplicates."""
        self._order = [key for key in self._order[self._head :] if key[0] != model]
        self._head = 0
        for key in [key for key in self._awaiting if key[0] == model]:
            del self._awaiting[key]

    def expire(self, now: float) -> list[Key]:
        """Drop entries older than the time-to-live; returns the unlabelled ones dropped."""
        deadline = now - self.ttl
        order, awaiting = self._order, self._awaiting
        end = self._head
        while end < len(order) and awaiting[order[end]][2] <= deadline:  # arrived
            end += 1
        return self._drop_oldest(end - self._head) if end > self._head else []

    def _drop_oldest(self, count: int) -> list[Key]:
        """Remove the ``count`` oldest entries; returns those not labelled."""
        head = self._head
        oldest = self._order[head : head + count]
        self._head = head = head + count
        entries = map(self._awaiting.pop, oldest)
        lost = list(compress(oldest, map(not_, map(itemgetter(3), entries))))  # not labelled
        if head >= 4096 and 2 * head >= len(self._order):
            del self._order[:head]  # the removed keys' slots, at most half of the list
            self._head = 0
        return lost
