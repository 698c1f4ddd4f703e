"""Bounded buffers that join the parts of a record by ``(model, id)``.

``JoinBuffer`` holds partial records (inputs only, prediction only, label only) until
their counterpart arrives, for at most ``ttl`` seconds, ``capacity`` entries and
``max_bytes`` estimated bytes. ``LabelBuffer`` (:mod:`monitor.label_buffer`) remembers
recent predictions so that a label arriving hours later can be matched with what the model
said, within the same three bounds. Both keep their entries in arrival order, so the oldest entry is always first and
expiry is a walk from the front that stops at the first live entry.

Bytes are estimated by :mod:`monitor.buffer_bytes` when an entry enters. When a bound is
exceeded the oldest entries go first; an entry larger than the whole byte budget is not
buffered at all (it would push everything else out one by one).

Nothing leaves either buffer silently: every expiry and eviction is returned to the
caller, which counts it, with its cause: ``entries`` (the entry limit), ``bytes`` (the byte
budget), ``oversize`` (one entry over the whole budget, not buffered) or ``ttl``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.buffer_bytes import record_bytes
from monitor.records import Record

Key = tuple[str, str]

# Why an entry left a buffer early (the ``cause`` label of the eviction counters).
ENTRIES, BYTES, OVERSIZE, TTL = "entries", "bytes", "oversize", "ttl"


@dataclass(slots=True)
class Pending:
    record: Record
    arrived: float
    size: int = 0  # estimated bytes (monitor/buffer_bytes.py); set by the buffer


def check_limits(capacity: int, ttl: float, max_bytes: int | None) -> None:
    """A buffer's limits (the join and the label buffer take the same three): ValueError
    naming the one that makes no sense."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if ttl <= 0:
        raise ValueError(f"ttl must be positive seconds, got {ttl}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")


class JoinBuffer:
    """Partial records waiting for their other parts."""

    def __init__(self, capacity: int, ttl: float, max_bytes: int | None = None):
        check_limits(capacity, ttl, max_bytes)
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
