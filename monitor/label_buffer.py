"""``LabelBuffer``: recent predictions by ``(model, id)``, waiting for delayed labels, within
an entry limit, a time-to-live and a byte budget (see :mod:`monitor.joins`, whose join
buffer it completes, for how the bounds work and how what leaves is counted).

For checkpoints it numbers its entries in arrival order and notes the entries changed in
place, so that a checkpoint can hold what changed since the last one rather than every
entry (:mod:`monitor.label_checkpoints`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import compress, repeat
from operator import itemgetter, not_
from typing import Any, NamedTuple

import numpy as np

from monitor.buffer_bytes import LABEL_ENTRY_BYTES, label_entries_bytes, label_entry_bytes
from monitor.joins import BYTES, ENTRIES, OVERSIZE, Key, check_limits
from monitor.records import Record
from monitor.settings import Settings

# A prediction's segment tags ({"region": "eu"}), kept so that its label reaches the slice's
# performance windows (monitor/segment_state.py); None without tags, and for the models
# without ``segments:`` (see LabelBuffer's ``tagged``).
Tags = Mapping[str, str] | None

# Keys of unlabelled predictions that left the label buffer, by cause (causes with none are absent).
Lost = dict[str, list[Key]]

# Prediction types the label buffer keeps as they are (``keep`` is not asked about them).
_PLAIN = frozenset({int, float, bool, str, type(None)})

# What the label buffer keeps of predictions: ``keep(keys, predictions)`` gives one value per
# prediction (monitor/routing.py, label_predictions, says which).
Keep = Callable[[Sequence[Key], Sequence[Any]], Sequence[Any]]


class AwaitingLabel(NamedTuple):
    """What the label will be compared with: the prediction (what the performance windows
    read of it: see :meth:`LabelBuffer.__init__`'s ``keep``), when it was made and its
    segment tags (whose slices' performance windows the label also goes to).

    ``labelled`` entries stay until they expire, so a repeated label or a retried
    record is recognised as a duplicate. The buffer stores each entry as a plain
    ``(prediction, timestamp, arrived, labelled, segment)`` tuple (building this named tuple
    costs ~10x more, and ingestion makes one per record) and :meth:`LabelBuffer.get`
    returns this view of it. Tuples rather than objects on purpose: the buffer holds
    ~200,000 of them, and tuples of plain values are untracked by the garbage
    collector, whose full collections would otherwise walk them all.
    """

    prediction: Any
    timestamp: float
    arrived: float
    labelled: bool = False
    segment: Tags = None


# One entry: (prediction, timestamp, arrived, labelled, segment), see AwaitingLabel.
Entry = tuple[Any, float, float, bool, Tags]
# A LabelBuffer's keys in order and its entries (see LabelBuffer.copy).
LabelEntries = tuple[list[Key], dict[Key, Entry]]


def as_entry(values: Sequence[Any]) -> Entry:
    """An entry from a checkpoint's values: ``(prediction, timestamp, arrived, labelled)``
    as written before entries kept the segment (read as without tags), or with it."""
    segment = values[4] if len(values) > 4 else None
    return values[0], float(values[1]), float(values[2]), bool(values[3]), segment or None


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
        tagged: Collection[str] | None = None,
    ):
        """``keep(keys, predictions)`` gives what to keep of each prediction (e.g. the class a
        label is compared with rather than a whole class -> probability mapping); without
        it, predictions are kept whole. Entries are counted in bytes after it. ``tagged``:
        the models whose predictions keep their segment tags (None: every model's); the
        others' tags are dropped on the way in, since nothing reads them and each would
        take the byte budget (a dict per entry: ~290 bytes for one tag)."""
        check_limits(capacity, ttl, max_bytes)
        self.capacity = capacity
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.bytes = 0  # estimated bytes of the entries held
        self._keep = keep
        self._tagged = None if tagged is None else frozenset(tagged)
        # key -> (prediction, timestamp, arrived, labelled, segment): see AwaitingLabel. Keys leave
        # in the order they came (evictions and expiry take the oldest), so the order is a
        # list with a moving head rather than an OrderedDict: inserting and evicting a
        # batch of keys are then a few C-level calls instead of one Python call per key.
        # Each entry's estimated size (monitor/buffer_bytes.py) is in _sizes, in the same
        # places as its key in _order: 8 bytes, and the bytes of the oldest entries are one
        # C-level sum away.
        self._awaiting: dict[Key, Entry] = {}
        self._order: list[Key] = []  # every key of _awaiting, oldest first, from _head on
        self._sizes = array("q")
        self._head = 0
        # For checkpoints written as what changed (monitor/label_checkpoints.py): entries are
        # numbered in arrival order (_order[i] is number _base + i), keys whose entry changed
        # in place are noted in _touched, and ``epoch`` goes up whenever entries are numbered
        # anew (put back at the front, or a model's taken out of the middle).
        self._base = 0
        self._touched: list[Key] = []
        self.epoch = 0

    @classmethod
    def for_settings(cls, settings: Settings, keep: Keep | None = None) -> LabelBuffer:
        """The buffer of ``settings.limits``, keeping tags for the models configured with
        ``segments:`` (a model registered from traffic has none)."""
        limits = settings.limits
        tagged = [name for name, config in settings.models.items() if config.segments is not None]
        return cls(limits.label_buffer_size, limits.label_ttl_seconds, limits.label_buffer_bytes, keep, tagged)

    def _kept_tags(self, keys: Sequence[Key], segments: Sequence[Tags] | None, model: str | None) -> list[Tags] | None:
        """``segments`` with None for the keys of models whose tags are not kept (``model``:
        every key's, if known) and for empty tags; None when no entry keeps any."""
        if segments is None:
            return None
        tagged = self._tagged
        if tagged is not None:
            if model is not None:
                if model not in tagged:
                    return None
            else:
                segments = [tags if key[0] in tagged else None for key, tags in zip(keys, segments, strict=True)]
        if not any(segments):
            return None
        return list(segments) if all(segments) else [tags or None for tags in segments]  # {}: no tags

    def __len__(self) -> int:
        return len(self._awaiting)

    def __contains__(self, key: Key) -> bool:
        return key in self._awaiting

    def get(self, key: Key) -> AwaitingLabel | None:
        entry = self._awaiting.get(key)
        return None if entry is None else AwaitingLabel._make(entry)

    def mark_labelled(self, key: Key) -> None:
        """Record that ``key``'s label came (the entry keeps its place in the order)."""
        prediction, timestamp, arrived, _, segment = self._awaiting[key]
        self._awaiting[key] = (prediction, timestamp, arrived, True, segment)
        self._touch(key)

    def _touch(self, key: Key) -> None:
        self._touched.append(key)
        if len(self._touched) > self.capacity:  # nobody takes them (no checkpoints): start over
            self._renumber()

    def _renumber(self) -> None:
        self.epoch += 1
        self._touched = []

    @property
    def touched(self) -> int:
        """How many entries changed in place since :meth:`take_touched` (counting repeats)."""
        return len(self._touched)

    @property
    def head_seq(self) -> int:
        """The number of the oldest entry (the next one's, if empty)."""
        return self._base + self._head

    @property
    def tail_seq(self) -> int:
        """The number the next entry will have."""
        return self._base + len(self._order)

    def entries_since(self, seq: int) -> tuple[int, list[Key], list[Entry]]:
        """The entries numbered ``seq`` on (from the oldest, if it left), oldest first, and
        the first one's number: two C-level passes, for a checkpoint taken under the lock."""
        start = max(seq - self._base, self._head)
        keys = self._order[start:]
        return self._base + start, keys, list(map(self._awaiting.__getitem__, keys))

    def take_touched(self) -> list[tuple[Key, Entry | None]]:
        """The keys whose entry changed in place since the last call, with their entry now
        (None if it left), in the order they changed."""
        touched, self._touched = self._touched, []
        return list(zip(touched, map(self._awaiting.get, touched), strict=True))

    def remember(self, key: Key, record: Record, now: float) -> Lost:
        """Keep a completed record's prediction (labelled or not).

        Returns the keys of still-unlabelled predictions evicted to make room, or not
        taken (``oversize``), by cause: their labels can no longer be matched, which the
        caller counts.
        """
        return self.remember_values(key, record.prediction, record.timestamp, record.has_label, now, record.segment)

    def remember_values(
        self, key: Key, prediction: Any, timestamp: float, labelled: bool, now: float, segment: Tags = None
    ) -> Lost:
        """:meth:`remember` from the values rather than a Record."""
        if self._keep is not None and type(prediction) not in _PLAIN and isinstance(prediction, Mapping):
            prediction = self._keep([key], [prediction])[0]
        if not segment or (self._tagged is not None and key[0] not in self._tagged):
            segment = None
        size = label_entry_bytes(key, prediction, segment)
        awaiting = self._awaiting
        lost: Lost = {}
        if key in awaiting:  # not reached by the pipeline (it remembers new keys only)
            place = self._order.index(key, self._head)
            self.bytes += size - self._sizes[place]
            self._sizes[place] = size
            awaiting[key] = (prediction, timestamp, now, labelled, segment)
            self._touch(key)
        elif self.max_bytes is not None and size > self.max_bytes:
            return {} if labelled else {OVERSIZE: [key]}
        else:
            excess = len(awaiting) + 1 - self.capacity
            if excess > 0:
                self._lose(lost, ENTRIES, excess)
            awaiting[key] = (prediction, timestamp, now, labelled, segment)
            self._order.append(key)
            self._sizes.append(size)
            self.bytes += size
        self._within_bytes(lost)
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
        segments: Sequence[Tags] | None = None,
    ) -> Lost:
        """:meth:`remember` for many completed records at once, in order, for keys that
        are :meth:`all_new`: the same entries, evictions and returned keys as one call
        per record, without a Python call per record. (Only which of ``entries`` and
        ``bytes`` an eviction is counted under can differ, when both bounds are reached
        in one call: here the oldest entries over the entry limit count as ``entries``,
        then those the byte budget needs as ``bytes``.) ``model``: every key's, if the
        caller knows it is one; ``segments``: each record's tags (None: none has any)."""
        kinds = set(map(type, predictions))
        if self._keep is not None and not _PLAIN.issuperset(kinds):
            predictions = self._keep(keys, predictions)
            kinds = set(map(type, predictions))
        segments = self._kept_tags(keys, segments, model)
        sizes = label_entries_bytes(keys, predictions, kinds, model, segments)
        added = int(sizes.sum())
        lost: Lost = {}
        # No entry can be over the budget if all of them together are not (the usual case).
        if self.max_bytes is not None and added > self.max_bytes and sizes.max() > self.max_bytes:
            fits = sizes <= self.max_bytes
            keys, predictions, timestamps, labelled, segments = self._without_oversize(
                lost, fits.tolist(), keys, predictions, timestamps, labelled, segments
            )
            sizes = sizes[fits]
            added = int(sizes.sum())
        awaiting = self._awaiting
        flags = repeat(False) if labelled is None else labelled
        tags = repeat(None) if segments is None else segments
        awaiting.update(zip(keys, zip(predictions, timestamps, repeat(now), flags, tags, strict=False), strict=True))
        self._order.extend(keys)
        self._sizes.frombytes(sizes.tobytes())
        self.bytes += added
        self._within_limits(lost)
        return lost

    @staticmethod
    def _without_oversize(
        lost: Lost,
        fits: list[bool],
        keys: Sequence[Key],
        predictions: Sequence[Any],
        timestamps: Sequence[float],
        labelled: Sequence[bool] | None,
        segments: Sequence[Tags] | None,
    ) -> tuple[list[Key], list[Any], list[float], list[bool] | None, list[Tags] | None]:
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
            None if segments is None else list(compress(segments, fits)),
        )

    def entries_of(self, model: str) -> list[list[Any]]:
        """``model``'s entries, oldest first, as ``[id, prediction, timestamp, arrived,
        labelled, segment]`` lists (for a checkpoint; :meth:`put_back` takes them)."""
        awaiting = self._awaiting
        return [[key[1], *awaiting[key]] for key in self._order[self._head :] if key[0] == model]

    def copy(self) -> LabelEntries:
        """Every entry, oldest first, as two C-level copies: cheap enough to take under the
        pipeline's lock, turned into :meth:`entries_of`'s lists outside it
        (:func:`monitor.label_checkpoints.entries_by_model`)."""
        return self._order[self._head :], dict(self._awaiting)

    def put_back(self, model: str, entries: Iterable[Sequence[Any]]) -> Lost:
        """Take back entries of :meth:`entries_of` (``model``'s own removed first; rows
        written before entries kept the segment have none), as :meth:`put_back_entries` does."""
        rows = [(row[0], as_entry(row[1:])) for row in entries]
        return self.put_back_entries([(model, row[0]) for row in rows], [row[1] for row in rows])

    def put_back_entries(self, keys: Sequence[Key], entries: Sequence[Entry]) -> Lost:
        """Take back entries of a checkpoint, oldest first, as ``(prediction, timestamp,
        arrived, labelled, segment)`` per key. They go before every other entry, as the oldest:
        expiry and eviction take them first. Returns the keys of unlabelled entries evicted
        (or not taken) to stay within the bounds, by cause."""
        predictions = [entry[0] for entry in entries]
        if self._keep is not None:  # a checkpoint of an older version may hold them whole
            predictions = list(self._keep(keys, predictions))
        awaiting = self._awaiting
        lost: Lost = {}
        kept, sizes = [], []
        segments = self._kept_tags(keys, [entry[4] for entry in entries], None)
        sized = label_entries_bytes(keys, predictions, segments=segments).tolist()
        tags = repeat(None) if segments is None else segments
        for key, prediction, size, (_, timestamp, arrived, labelled, _), segment in zip(
            keys, predictions, sized, entries, tags, strict=False
        ):
            if key in awaiting:
                continue
            if self.max_bytes is not None and size > self.max_bytes:
                if not labelled:
                    lost.setdefault(OVERSIZE, []).append(key)
                continue
            awaiting[key] = (prediction, timestamp, arrived, labelled, segment)
            kept.append(key)
            sizes.append(size)
            self.bytes += size
        self._order[self._head : self._head] = kept
        self._sizes[self._head : self._head] = array("q", sizes)
        self._renumber()
        self._within_limits(lost)
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
        self._renumber()

    def expire(self, now: float) -> list[Key]:
        """Drop entries older than the time-to-live; returns the unlabelled ones dropped."""
        deadline = now - self.ttl
        order, awaiting = self._order, self._awaiting
        end = self._head
        while end < len(order) and awaiting[order[end]][2] <= deadline:  # arrived
            end += 1
        return self._drop_oldest(end - self._head) if end > self._head else []

    def _within_limits(self, lost: Lost) -> None:
        """Drop the oldest entries past the capacity, then past the byte budget."""
        excess = len(self._awaiting) - self.capacity
        if excess > 0:
            self._lose(lost, ENTRIES, excess)
        self._within_bytes(lost)

    def _within_bytes(self, lost: Lost) -> None:
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            self._lose(lost, BYTES, *self._count_to_free(self.bytes - self.max_bytes))

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
            self._base += head
            del self._order[:head]  # the removed keys' slots, at most half of the list
            del self._sizes[:head]
            self._head = 0
        return lost
