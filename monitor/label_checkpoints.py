"""The label buffer's entries in checkpoints.

A Kafka handover holds a model's whole share of the buffer (:func:`entries_by_model`).
The instance checkpoints (monitor/checkpointer.py) hold the entries of every local model
as *segments*: the entries numbered ``first`` to ``end`` (arrival order, see
:class:`monitor.label_buffer.LabelBuffer`), at most :data:`SEGMENT_ENTRIES` numbers each,
stored one row per segment. A checkpoint writes only the last segment (rewritten until it
is full) and the new ones after it, and deletes the segments whose entries have all left
the buffer, in the same transaction as the model states. Entries changed in place
(labelled) since they were written go in the last segment as *marks*. Every segment
written notes the number of the oldest entry still in the buffer (``head``).

So a checkpoint of a full buffer (125,000 predictions, 7.7 MB) costs what changed: with
single records at 500/s every 5 s, ~2,500 new entries plus the rest of the last segment,
instead of all of them. The whole buffer is written again (``replace``) when the journal
starts (the first checkpoint of a process), after a checkpoint failed, or when the buffer
numbered its entries anew (entries put back at the front or a model's taken out: at
start-up and on Kafka handovers).

Restoring (:func:`restore_entries`) reads the segments in order, keeps the entries from the
last segment's ``head`` on, applies the marks, and gives the buffer's entries back in their
order: the same buffer, so a retried id is still a duplicate after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter, not_

import numpy as np
import orjson

from detectors.sketches import unpack
from monitor.checkpoint_bytes import json_chunks, pack_chunks
from monitor.joins import Key
from monitor.label_buffer import Entry, LabelBuffer, LabelEntries, as_entry

SLICE = 10_000  # entries per pass of entries_by_model: ~1 ms with the GIL held
SEGMENT_ENTRIES = 4_096  # numbers per segment: the most a checkpoint rewrites besides what is new
# Format 2: entries carry the prediction's segment tags (a fifth value, null without tags).
# Format 1 segments (four values) are still read, as entries without tags.
SEGMENT_FORMAT = 2
READ_FORMATS = (1, 2)
# One model's entries as ids and (prediction, timestamp, arrived, labelled, segment) tuples.
AwaitingColumns = tuple[list[str], list[Entry]]


def entries_by_model(copied: LabelEntries, models: Iterable[str]) -> dict[str, AwaitingColumns]:
    """Each of ``models``' entries from a :meth:`LabelBuffer.copy`, oldest first, as ids and
    ``(prediction, timestamp, arrived, labelled, segment)`` tuples (:meth:`LabelBuffer.put_back`
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


@dataclass
class LabelCapture:
    """What a checkpoint took of the label buffer under the pipeline's lock: the entries
    from ``first`` on (``keys[i]`` is number ``first + i``), the entries changed in place
    since the last capture, the buffer's head and tail numbers, and the models whose
    entries are not written (the Kafka collector's)."""

    epoch: int
    replace: bool
    first: int
    keys: list[Key]
    entries: list[Entry]
    touched: list[tuple[Key, Entry | None]]
    head: int
    tail: int
    external: frozenset[str]


@dataclass
class LabelWrite:
    """What the store writes of the label buffer in a checkpoint's transaction: first, if
    ``replace``, delete every segment of the instance; delete the segments ``delete``; write
    ``rows`` (segment number -> bytes, replacing a stored one)."""

    replace: bool
    rows: dict[int, bytes | bytearray]
    delete: list[int]
    # What the journal is once this is stored (see LabelJournal.commit).
    segments: list[tuple[int, int, int]] = field(repr=False, default_factory=list)
    marks: dict[Key, Entry] = field(repr=False, default_factory=dict)
    is_open: bool = True
    epoch: int = 0
    head: int = 0
    tail: int = 0
    next_number: int = 0


class LabelJournal:
    """What the instance checkpoints hold of the label buffer, to write what changed since.
    Used under the checkpointer's lock (one checkpoint at a time)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget what is stored: the next checkpoint writes the whole buffer again (after
        a checkpoint that failed, whose segments may or may not be stored)."""
        self._epoch: int | None = None
        self._segments: list[tuple[int, int, int]] = []  # (number, first, end), oldest first
        self._marks: dict[Key, Entry] = {}  # what the last segment carries as marks
        self._open = False  # whether the last segment is still rewritten
        self._head = self._tail = self._next = 0

    def behind(self, buffer: LabelBuffer) -> bool:
        """Whether ``buffer`` changed since the last checkpoint (under the pipeline's lock)."""
        return (
            self._epoch != buffer.epoch
            or (buffer.head_seq, buffer.tail_seq) != (self._head, self._tail)
            or buffer.touched > 0
        )

    def capture(self, buffer: LabelBuffer, external: Iterable[str]) -> LabelCapture | None:
        """What changed in ``buffer``, if anything (under the pipeline's lock: two C-level copies
        of the entries from the last segment's first on, or of all of them when the journal
        starts over)."""
        if not self.behind(buffer):
            return None
        replace = self._epoch != buffer.epoch
        if replace:
            since = buffer.head_seq
        else:
            since = self._segments[-1][1] if self._open else self._tail
        first, keys, entries = buffer.entries_since(since)
        touched = buffer.take_touched()
        return LabelCapture(
            buffer.epoch, replace, first, keys, entries, [] if replace else touched,
            buffer.head_seq, buffer.tail_seq, frozenset(external),
        )  # fmt: skip

    def plan(self, capture: LabelCapture) -> LabelWrite:
        """The rows that store ``capture`` (off the lock: the encoding is here, a slice at a time)."""
        if capture.replace:
            segments: list[tuple[int, int, int]] = []
            marks: dict[Key, Entry] = {}
            start, number = capture.head, 0
        else:
            segments = list(self._segments)
            marks = dict(self._marks) if self._open else {}
            start = segments.pop()[1] if self._open else self._tail
            number = self._segments[-1][0] if self._open else self._next
        marks.update((key, entry) for key, entry in capture.touched if entry is not None)
        rows: dict[int, bytes | bytearray] = {}
        while True:  # the segments from start on, the last one open
            end = min(start + SEGMENT_ENTRIES, capture.tail)
            last = end == capture.tail
            rows[number] = self._segment(capture, start, end, marks if last else {})
            segments.append((number, start, end))
            number += 1
            if last:
                break
            start = end
        # The last segment is rewritten by the next checkpoint unless it is full (of numbers or of marks).
        is_open = end - start < SEGMENT_ENTRIES and len(marks) < SEGMENT_ENTRIES
        dead = [n for n, _, end in segments[:-1] if end <= capture.head]
        for n in dead:  # all its entries left: not written (nor kept by the journal)
            rows.pop(n, None)
        live = [s for s in segments if s[0] not in dead]
        return LabelWrite(
            capture.replace, rows, dead, live, marks if is_open else {}, is_open,
            capture.epoch, capture.head, capture.tail, number,
        )  # fmt: skip

    @staticmethod
    def _segment(capture: LabelCapture, start: int, end: int, marks: dict[Key, Entry]) -> bytearray:
        lo, hi = max(start - capture.first, 0), max(end - capture.first, 0)
        keys, entries = capture.keys[lo:hi], capture.entries[lo:hi]
        numbers = np.arange(capture.first + lo, capture.first + hi, dtype=np.int64)
        if capture.external:  # the Kafka collector's models: its checkpoints hold them
            mine = list(map(not_, map(capture.external.__contains__, map(itemgetter(0), keys))))
            keys, entries, numbers = (
                list(compress(keys, mine)),
                list(compress(entries, mine)),
                numbers[np.array(mine, bool)],
            )
        header = {"kind": "label_segment", "format_version": SEGMENT_FORMAT, "first": start, "end": end,
                  "head": capture.head}  # fmt: skip
        parts = {
            "keys": json_chunks(keys),
            "entries": json_chunks(entries),
            "mark_keys": json_chunks(list(marks)),
            "marks": json_chunks(list(marks.values())),
        }
        return pack_chunks(header, {"numbers": numbers}, parts)

    def commit(self, write: LabelWrite) -> None:
        """``write`` is stored: the next checkpoint writes what changed after it."""
        self._epoch = write.epoch
        self._segments = write.segments
        self._marks = write.marks
        self._open = write.is_open
        self._head, self._tail, self._next = write.head, write.tail, write.next_number


def restore_entries(segments: Sequence[tuple[int, bytes]], models: set[str]) -> tuple[list[Key], list[Entry]]:
    """The entries of ``models`` that the stored ``segments`` (number, bytes) hold, oldest
    first, as :meth:`LabelBuffer.put_back_entries` takes them. Raises ValueError for bytes
    that are not a segment of this format."""
    found: dict[Key, Entry] = {}
    decoded = []
    for _, data in sorted(segments, key=itemgetter(0)):
        header, arrays = unpack(data)
        if header.get("kind") != "label_segment" or header.get("format_version") not in READ_FORMATS:
            raise ValueError(f"not a label buffer segment of format {' or '.join(map(str, READ_FORMATS))}")
        decoded.append((header, arrays))
    if not decoded:
        return [], []
    head = int(decoded[-1][0]["head"])
    for _, arrays in decoded:
        keys = orjson.loads(arrays["keys"].tobytes())
        entries = orjson.loads(arrays["entries"].tobytes())
        for number, key, entry in zip(arrays["numbers"].tolist(), keys, entries, strict=True):
            if number >= head and key[0] in models:
                found[(key[0], key[1])] = as_entry(entry)
    for _, arrays in decoded:  # in order: a later mark of a key wins
        marks = zip(orjson.loads(arrays["mark_keys"].tobytes()), orjson.loads(arrays["marks"].tobytes()), strict=True)
        for key, values in marks:
            entry, mark = found.get((key[0], key[1])), as_entry(values)
            # Only on the entry it was made on: not on one of the same key that came after it left.
            if entry is not None and entry[1:3] == mark[1:3]:
                found[(key[0], key[1])] = mark
    return list(found), list(found.values())
