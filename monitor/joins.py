"""Bounded buffers that join the parts of a record by ``(model, id)``.

``JoinBuffer`` holds partial records (inputs only, prediction only, label only) until
their counterpart arrives, for at most ``ttl`` seconds, ``capacity`` entries and
``max_bytes`` estimated bytes. ``LabelBuffer`` remembers recent predictions so that a label
arriving hours later can be matched with what the model said, within the same three
bounds. Both keep their entries in arrival order, so the oldest entry is always first and
expiry is a walk from the front that stops at the first live entry.

Bytes are estimated by :mod:`monitor.buffer_bytes` when an entry enters. When a bound is
exceeded the oldest entries go first; an entry larger than the whole byte budget is not
buffered at all (it would push everything else out one by one).

Nothing leaves either buffer silently: every expiry and eviction is returned to the
caller, which counts it, with its cause: ``entries`` (the entry limit), ``bytes`` (the byte
budget), ``oversize`` (one entry over the whole budget, not buffered) or ``ttl``.
"""

from __future__ import annotations

import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import itemgetter, not_
from typing import Any, NamedTuple

import numpy as np

from monitor.buffer_bytes import LABEL_ENTRY_BYTES, label_entries_bytes, label_entry_bytes, record_bytes
from monitor.records import Record

Key = tuple[str, str]

# Why an entry left a buffer early (the ``cause`` label of the eviction counters).
ENTRIES, BYTES, OVERSIZE, TTL = "entries", "bytes", "oversize", "ttl"

# Keys of unlabelled predictions that left the label buffer, by cause (causes with none are absent).
Lost = dict[str, list[Key]]

# Prediction types the label buffer keeps as they are (``keep`` is not asked about them).
_PLAIN = frozenset({int, float, bool, str, type(None)})

# What the label buffer keeps of predictions: ``keep(keys, predictions)`` gives one value per
# prediction (monitor/routing.py, label_predictions, says which).
Keep = Callable[[Sequence[Key], Sequence[Any]], Sequence[Any]]


@dataclass(slots=True)
class Pending:
    record: Record
    arrived: float
    size: int = 0  # estimated bytes (monitor/buffer_bytes.py); set by the buffer


class JoinBuffer:
    """Partial records waiting for their other parts."""

    def __init__(self, capacity: int, ttl: float, max_bytes: int | None = None):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.capacity = capacity
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.bytes = 0  # estimated bytes of the entries held
        self._pending: OrderedDict[Key, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: Key) -> bool:
        return key in self._pending

    def holds_any(self, keys: Sequence[Key]) -> bool:
        """Whether a partial record of any of ``keys`` is waiting here."""
        return bool(self._pending) and not self._pending.keys().isdisjoint(keys)

    def offer(self, record: Record, now: float) -> tuple[Record | None, list[str], list[tuple[str, Record]]]:
        """Add a partial record.

        Returns ``(completed, repeated, evicted)``: the joined record if this part
        completed it (it then leaves the buffer), the parts that repeated what was already
        buffered, and ``(cause, record)`` for the records pushed out to stay within the
        bounds, oldest first (this part itself, as ``oversize``, if it alone exceeds the
        byte budget).
        """
        key = (record.model, record.id or "")
        pending = self._pending.get(key)
        if pending is not None:
            repeated = pending.record.merge(record)
            if pending.record.complete:
                del self._pending[key]
                self.bytes -= pending.size
                return pending.record, repeated, []
            size = record_bytes(pending.record)  # it grew by the parts this one added
            self.bytes += size - pending.size
            pending.size = size
            if self.max_bytes is not None and size > self.max_bytes:
                del self._pending[key]
                self.bytes -= size
                return None, repeated, [(OVERSIZE, pending.record)]
            return None, repeated, self._fit(0, 0)
        pending = Pending(record, now, record_bytes(record))
        if self.max_bytes is not None and pending.size > self.max_bytes:
            return None, [], [(OVERSIZE, record)]
        evicted = self._fit(1, pending.size)
        self._pending[key] = pending
        self.bytes += pending.size
        return None, [], evicted

    def _fit(self, entries: int, size: int) -> list[tuple[str, Record]]:
        """Push out the oldest entries until ``entries`` more entries of ``size`` bytes in
        all fit (0 and 0: until the entries held fit)."""
        evicted = []
        pending = self._pending
        while pending and len(pending) + entries > self.capacity:
            old = pending.popitem(last=False)[1]
            self.bytes -= old.size
            evicted.append((ENTRIES, old.record))
        if self.max_bytes is not None:
            while pending and self.bytes + size > self.max_bytes:
                old = pending.popitem(last=False)[1]
                self.bytes -= old.size
                evicted.append((BYTES, old.record))
        return evicted

    def expire(self, now: float) -> list[Record]:
        """Remove and return the partial records older than the time-to-live."""
        expired = []
        deadline = now - self.ttl
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.arrived > deadline:
                break
            del self._pending[key]
            self.bytes -= pending.size
            expired.append(pending.record)
        return expired

    def drain(self) -> list[Record]:
        """Remove and return everything (shutdown: nothing accepted is lost)."""
        records = [pending.record for pending in self._pending.values()]
        self._pending.clear()
        self.bytes = 0
        return records

    # Checkpoints (monitor/model_snapshots.py) carry a model's partial records between instances.
    def of_model(self, model: str) -> list[Pending]:
        return [pending for (m, _), pending in self._pending.items() if m == model]

    def remove_model(self, model: str) -> None:
        for key in [key for key in self._pending if key[0] == model]:
            self.bytes -= self._pending.pop(key).size

    def put_back(self, entries: list[Pending]) -> list[tuple[str, Record]]:
        """Re-buffer restored partial records (keeping their arrival times) within the
        bounds; returns ``(cause, record)`` for those pushed out or not taken (as in
        :meth:`offer`), for the caller to count."""
        evicted = []
        for pending in entries:
            pending.size = record_bytes(pending.record)  # estimated here, whoever wrote the checkpoint
            if self.max_bytes is not None and pending.size > self.max_bytes:
                evicted.append((OVERSIZE, pending.record))
                continue
            key = (pending.record.model, pending.record.id or "")
            old = self._pending.pop(key, None)  # not reached by the pipeline (it removes the model's first)
            if old is not None:
                self.bytes -= old.size
            evicted += self._fit(1, pending.size)
            self._pending[key] = pending
            self.bytes += pending.size
        return evicted


class AwaitingLabel(NamedTuple):
    """What the label will be compared with: the prediction (what the performance windows
    read of it: see :meth:`LabelBuffer.__init__`'s ``keep``) and when it was made.

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


# A LabelBuffer's keys in order and its entries (see LabelBuffer.copy).
LabelEntries = tuple[list[Key], dict[Key, tuple[Any, float, float, bool]]]
SLICE = 10_000  # entries per pass of entries_by_model: ~1 ms with the GIL held
# One model's entries as ids and (prediction, timestamp, arrived, labelled) tuples.
AwaitingColumns = tuple[list[str], list[tuple[Any, float, float, bool]]]


def entries_by_model(copied: LabelEntries, models: Iterable[str]) -> dict[str, AwaitingColumns]:
    """Each of ``models``' entries from a :meth:`LabelBuffer.copy`, oldest first, as ids and
    ``(prediction, timestamp, arrived, labelled)`` tuples (:meth:`LabelBuffer.put_back`
    takes ``[id, *tuple]`` rows), for a checkpoint written on another thread than the
    event loop's. Only existing objects are gathered, by C-level passes over slices of
    :data:`SLICE` entries with a GIL release between them: building a list per entry
    (``entries_of``) set off full garbage collections (125,000 entries took 1.5 s instead
    of 0.05 s), and one pass over them all held the GIL away from the event loop for ms."""
    order, awaiting = copied
    found: dict[str, AwaitingColumns] = {model: ([], []) for model in models}
    for start in range(0, len(order), SLICE):
        part = order[start : start + SLICE]
        names = list(map(itemgetter(0), part))
        for model, (ids, values) in found.items():
            keys = part if names.count(model) == len(names) else list(compress(part, map(model.__eq__, names)))
            ids += map(itemgetter(1), keys)
            values += map(awaiting.__getitem__, keys)
        time.sleep(0)  # lets the event loop's thread take the GIL
    return found


class LabelBuffer:
    """Recent predictions by ``(model, id)``, waiting for delayed labels.

    It doubles as the memory of recently completed ids, so a retried complete record is
    recognised as a duplicate.
    """

    def __init__(
        self,
        capacity: int,
        ttl: float,
        max_bytes: int | None = None,
        keep: Keep | None = None,
    ):
        """``keep(keys, predictions)`` gives what to keep of each prediction (e.g. the class a
        label is compared with rather than a whole class -> probability mapping); without
        it, predictions are kept whole. Entries are counted in bytes after it."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.capacity = capacity
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.bytes = 0  # estimated bytes of the entries held
        self._keep = keep
        # key -> (prediction, timestamp, arrived, labelled): see AwaitingLabel. Keys leave
        # in the order they came (evictions and expiry take the oldest), so the order is a
        # list with a moving head rather than an OrderedDict: inserting and evicting a
        # batch of keys are then a few C-level calls instead of one Python call per key.
        # Each entry's estimated size (monitor/buffer_bytes.py) is in _sizes, in the same
        # places as its key in _order: 8 bytes, and the bytes of the oldest entries are one
        # C-level sum away.
        self._awaiting: dict[Key, tuple[Any, float, float, bool]] = {}
        self._order: list[Key] = []  # every key of _awaiting, oldest first, from _head on
        self._sizes = array("q")
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

    def remember(self, key: Key, record: Record, now: float) -> Lost:
        """Keep a completed record's prediction (labelled or not).

        Returns the keys of still-unlabelled predictions evicted to make room, or not
        taken (``oversize``), by cause: their labels can no longer be matched, which the
        caller counts.
        """
        return self.remember_values(key, record.prediction, record.timestamp, record.has_label, now)

    def remember_values(self, key: Key, prediction: Any, timestamp: float, labelled: bool, now: float) -> Lost:
        """:meth:`remember` from the values rather than a Record."""
        if self._keep is not None and type(prediction) not in _PLAIN and isinstance(prediction, Mapping):
            prediction = self._keep([key], [prediction])[0]
        size = label_entry_bytes(key, prediction)
        awaiting = self._awaiting
        lost: Lost = {}
        if key in awaiting:  # not reached by the pipeline (it remembers new keys only)
            place = self._order.index(key, self._head)
            self.bytes += size - self._sizes[place]
            self._sizes[place] = size
            awaiting[key] = (prediction, timestamp, now, labelled)
        elif self.max_bytes is not None and size > self.max_bytes:
            return {} if labelled else {OVERSIZE: [key]}
        else:
            excess = len(awaiting) + 1 - self.capacity
            if excess > 0:
                self._lose(lost, ENTRIES, excess)
            awaiting[key] = (prediction, timestamp, now, labelled)
            self._order.append(key)
            self._sizes.append(size)
            self.bytes += size
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            self._lose(lost, BYTES, *self._count_to_free(self.bytes - self.max_bytes))
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
        model: str | None = None,
    ) -> Lost:
        """:meth:`remember` for many completed records at once, in order, for keys that
        are :meth:`all_new`: the same entries, evictions and returned keys as one call
        per record, without a Python call per record. (Only which of ``entries`` and
        ``bytes`` an eviction is counted under can differ, when both bounds are reached
        in one call: here the oldest entries over the entry limit count as ``entries``,
        then those the byte budget needs as ``bytes``.) ``model``: every key's, if the
        caller knows it is one."""
        kinds = set(map(type, predictions))
        if self._keep is not None and not _PLAIN.issuperset(kinds):
            predictions = self._keep(keys, predictions)
            kinds = set(map(type, predictions))
        sizes = label_entries_bytes(keys, predictions, kinds, model)
        added = int(sizes.sum())
        lost: Lost = {}
        # No entry can be over the budget if all of them together are not (the usual case).
        if self.max_bytes is not None and added > self.max_bytes and sizes.max() > self.max_bytes:
            fits = sizes <= self.max_bytes
            keys, predictions, timestamps, labelled = self._without_oversize(
                lost, fits.tolist(), keys, predictions, timestamps, labelled
            )
            sizes = sizes[fits]
            added = int(sizes.sum())
        awaiting = self._awaiting
        flags = repeat(False) if labelled is None else labelled
        awaiting.update(zip(keys, zip(predictions, timestamps, repeat(now), flags, strict=False), strict=True))
        self._order.extend(keys)
        self._sizes.frombytes(sizes.tobytes())
        self.bytes += added
        excess = len(awaiting) - self.capacity
        if excess > 0:
            self._lose(lost, ENTRIES, excess)
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            self._lose(lost, BYTES, *self._count_to_free(self.bytes - self.max_bytes))
        return lost

    @staticmethod
    def _without_oversize(
        lost: Lost,
        fits: list[bool],
        keys: Sequence[Key],
        predictions: Sequence[Any],
        timestamps: Sequence[float],
        labelled: Sequence[bool] | None,
    ) -> tuple[list[Key], list[Any], list[float], list[bool] | None]:
        """The batch without its entries over the whole byte budget (``fits`` false), whose
        unlabelled keys go to ``lost`` (rare: one Python step per entry)."""
        flags = [False] * len(keys) if labelled is None else labelled
        refused = [key for key, ok, flag in zip(keys, fits, flags, strict=True) if not ok and not flag]
        if refused:
            lost[OVERSIZE] = refused
        return (
            list(compress(keys, fits)),
            list(compress(predictions, fits)),
            list(compress(timestamps, fits)),
            None if labelled is None else list(compress(labelled, fits)),
        )

    def entries_of(self, model: str) -> list[list[Any]]:
        """``model``'s entries, oldest first, as ``[id, prediction, timestamp, arrived,
        labelled]`` lists (for a checkpoint; :meth:`put_back` takes them)."""
        awaiting = self._awaiting
        return [[key[1], *awaiting[key]] for key in self._order[self._head :] if key[0] == model]

    def copy(self) -> LabelEntries:
        """Every entry, oldest first, as two C-level copies: cheap enough to take under the
        pipeline's lock, turned into :meth:`entries_of`'s lists outside it (:func:`entries_by_model`)."""
        return self._order[self._head :], dict(self._awaiting)

    def put_back(self, model: str, entries: Iterable[Sequence[Any]]) -> Lost:
        """Take back entries of :meth:`entries_of` (``model``'s own removed first). They go
        before every other entry, as the oldest: expiry and eviction take them first.
        Returns the keys of unlabelled entries evicted (or not taken) to stay within the
        bounds, by cause."""
        rows = [(name, prediction, float(timestamp), float(arrived), bool(labelled))
                for name, prediction, timestamp, arrived, labelled in entries]  # fmt: skip
        names = [(model, row[0]) for row in rows]
        predictions = [row[1] for row in rows]
        if self._keep is not None:  # a checkpoint of an older version may hold them whole
            predictions = list(self._keep(names, predictions))
        awaiting = self._awaiting
        lost: Lost = {}
        keys, sizes = [], []
        for key, prediction, size, (_, _, timestamp, arrived, labelled) in zip(
            names, predictions, label_entries_bytes(names, predictions).tolist(), rows, strict=True
        ):
            if key in awaiting:
                continue
            if self.max_bytes is not None and size > self.max_bytes:
                if not labelled:
                    lost.setdefault(OVERSIZE, []).append(key)
                continue
            awaiting[key] = (prediction, timestamp, arrived, labelled)
            keys.append(key)
            sizes.append(size)
            self.bytes += size
        self._order[self._head : self._head] = keys
        self._sizes[self._head : self._head] = array("q", sizes)
        excess = len(awaiting) - self.capacity
        if excess > 0:
            self._lose(lost, ENTRIES, excess)
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            self._lose(lost, BYTES, *self._count_to_free(self.bytes - self.max_bytes))
        return lost

    def remove_model(self, model: str) -> None:
        """Forget ``model``'s entries: its state moved to another instance or back to its
        checkpoint, and records read again from there must not look like duplicates."""
        order = self._order[self._head :]
        others = [key[0] != model for key in order]
        self._order = list(compress(order, others))
        self._sizes = array("q", compress(self._sizes[self._head :], others))
        self._head = 0
        for key in [key for key in self._awaiting if key[0] == model]:
            del self._awaiting[key]
        self.bytes = sum(self._sizes)

    def expire(self, now: float) -> list[Key]:
        """Drop entries older than the time-to-live; returns the unlabelled ones dropped."""
        deadline = now - self.ttl
        order, awaiting = self._order, self._awaiting
        end = self._head
        while end < len(order) and awaiting[order[end]][2] <= deadline:  # arrived
            end += 1
        return self._drop_oldest(end - self._head) if end > self._head else []

    def _lose(self, lost: Lost, cause: str, count: int, size: int | None = None) -> None:
        """Drop the ``count`` oldest entries (of ``size`` bytes, if known); their unlabelled
        keys go to ``lost[cause]``."""
        keys = self._drop_oldest(count, size)
        if keys:
            lost.setdefault(cause, []).extend(keys)

    def _count_to_free(self, excess: int) -> tuple[int, int]:
        """How many of the oldest entries hold at least ``excess`` bytes, and their bytes:
        every entry counts more than LABEL_ENTRY_BYTES, so the first ``excess //
        LABEL_ENTRY_BYTES + 1`` hold enough."""
        oldest = self._sizes[self._head]
        if oldest >= excess:  # one record in, one out: no array work
            return 1, oldest
        held = np.cumsum(self._oldest_sizes(excess // LABEL_ENTRY_BYTES + 1))
        count = min(int(np.searchsorted(held, excess)) + 1, len(held))
        return count, int(held[count - 1])

    def _oldest_sizes(self, count: int) -> np.ndarray:
        """A copy of the sizes of the ``count`` oldest entries (a copy: a view would keep
        the array from growing or shrinking while it lives)."""
        head = self._head
        count = min(count, len(self._sizes) - head)
        if count <= 0:
            return np.zeros(0, np.int64)
        return np.frombuffer(self._sizes, np.int64, count, head * self._sizes.itemsize).copy()

    def _drop_oldest(self, count: int, size: int | None = None) -> list[Key]:
        """Remove the ``count`` oldest entries (of ``size`` bytes, if known); returns those
        not labelled."""
        head = self._head
        oldest = self._order[head : head + count]
        self.bytes -= int(self._oldest_sizes(count).sum()) if size is None else size
        self._head = head = head + count
        entries = map(self._awaiting.pop, oldest)
        lost = list(compress(oldest, map(not_, map(itemgetter(3), entries))))  # not labelled
        if head >= 4096 and 2 * head >= len(self._order):
            del self._order[:head]  # the removed keys' slots, at most half of the list
            del self._sizes[:head]
            self._head = 0
        return lost
