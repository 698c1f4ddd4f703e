"""Windowing policies: how a model's traffic is cut into windows (see :mod:`detectors.windows.state`
for what a window counts).

* :class:`TumblingCountWindows` -- exactly ``size`` records per window; a batch
  straddling a boundary is split.
* :class:`TumblingTimeWindows` -- event-time periods ``[origin + k*s, origin + (k+1)*s)``.
  Records in a batch are grouped by period (a batch may be out of order) and taken
  period by period. A window closes when the *watermark* passes its end: the latest
  event time seen minus ``allowed_lateness`` (less than ``s``; 0 closes it at the
  first record of a later period). Until then records of the period after it go to
  a second window, opened early for that period. If a closing window holds fewer
  than ``min_records`` it is *extended* instead of emitted: it keeps counting (the
  early window folded in) and its ``end`` moves to the end of the watermark's
  period, so an emitted window can span several periods (``end - start`` says how
  many) and tiny windows are never evaluated. Periods without records produce no
  window. Records of a period before the open window's start (late data) go into
  the open window and are counted in ``late``. Event times come validated (within
  minutes of their receive time), so one record cannot move the watermark far ahead.
* :class:`SlidingWindows` -- panes of ``size / panes`` records or seconds; each
  time a pane closes, the merge of the last ``panes`` panes is emitted (count
  panes: only once ``panes`` panes exist; time panes: the panes within the last
  ``size`` seconds, if they hold at least ``min_records``). Time panes are tumbling
  time windows of ``size / panes`` seconds: they close on the watermark.

Every window's RNG seed derives from the windower's ``seed`` and the window's
sequence number, so runs are reproducible, and ``to_bytes``/``from_bytes`` keep
RNG states: continuing after a restore gives byte-identical windows.
``continue_numbering`` moves the numbering on (a model's windows are numbered once across
references and restarts); a window it renumbers keeps the seed it was made with.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from detectors.columns import Batch
from detectors.sketches import check_positive_int, pack, unpack
from detectors.windows.state import FORMAT_VERSION, WindowLayout, WindowState, derive_seed


# ---- windowing policies -------------------------------------------------------------------------
class Windower:
    """Base of the windowing policies: ``update(batch)`` returns the windows that closed, oldest first."""

    policy: ClassVar[str] = ""

    def __init__(self, layout: WindowLayout, *, seed: int = 0) -> None:
        if not isinstance(layout, WindowLayout):
            raise TypeError(f"layout must be a WindowLayout, got {type(layout).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.layout, self.seed = layout, int(seed)
        self._next_seq = 0
        self._open: WindowState | None = None

    @property
    def open_window(self) -> WindowState | None:
        """The window still collecting records, if any (read-only use)."""
        return self._open

    @property
    def next_seq(self) -> int:
        """The number the next window made will get."""
        return self._next_seq

    def _unemitted(self) -> list[WindowState]:
        """The windows numbered but not yet emitted, in number order (the last made last)."""
        return [] if self._open is None else [self._open]

    def continue_numbering(self, next_seq: int) -> None:
        """Number the windows from ``next_seq`` on if they would get lower numbers (a new
        windower of a model continuing an old one's numbering, or the store's). Windows open
        but not yet emitted are renumbered from it (their records and sample stay; only the
        label changes, so no number is given to two windows)."""
        if isinstance(next_seq, bool) or not isinstance(next_seq, (int, np.integer)) or next_seq < 0:
            raise ValueError(f"next_seq must be a non-negative integer, got {next_seq!r}")
        pending = self._unemitted()
        shift = int(next_seq) - (pending[0].seq if pending else self._next_seq)
        if shift <= 0:
            return
        for w in pending:  # numbered consecutively up to _next_seq - 1: they stay so
            w.seq += shift
        self._next_seq += shift

    def _new_window(self, start: float = math.nan, end: float = math.nan) -> WindowState:
        seq = self._next_seq
        self._next_seq += 1
        return WindowState(self.layout, seq=seq, seed=derive_seed(self.seed, seq), start=start, end=end)

    def update(self, batch: Batch) -> list[WindowState]:
        raise NotImplementedError

    def flush(self) -> WindowState | None:
        """Close and return the open window whatever its size (None if it has no records)."""
        w, self._open = self._open, None
        return w if w is not None and w.n else None

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _state(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        return {}, ({} if self._open is None else {"open": self._open.to_bytes()})

    def _restore(self, state: dict[str, Any], parts: dict[str, bytes]) -> None:
        if "open" in parts:
            self._open = WindowState.from_bytes(parts["open"], self.layout)

    def to_bytes(self) -> bytes:
        """Checkpoint of the policy, its counters and its open window(s)."""
        state, parts = self._state()
        header = {
            "kind": "windower",
            "format_version": FORMAT_VERSION,
            "policy": self.policy,
            "layout": self.layout.fingerprint,
            "seed": self.seed,
            "next_seq": self._next_seq,
            "params": self._params(),
            "state": state,
        }
        return pack(header, {k: np.frombuffer(v, dtype=np.uint8) for k, v in parts.items()})

    @staticmethod
    def from_bytes(data: bytes, layout: WindowLayout) -> Windower:
        h, a = unpack(data)
        if h.get("kind") != "windower" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a windower of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        if h["layout"] != layout.fingerprint:
            raise ValueError(f"windower was saved with layout {h['layout']}, not {layout.fingerprint}")
        policies: dict[str, type[Windower]] = {
            c.policy: c for c in (TumblingCountWindows, TumblingTimeWindows, SlidingWindows)
        }
        if h["policy"] not in policies:
            raise ValueError(f"unknown windowing policy {h['policy']!r}")
        out = policies[h["policy"]](layout, seed=h["seed"], **h["params"])
        out._next_seq = int(h["next_seq"])
        out._restore(h["state"], {k: v.tobytes() for k, v in a.items()})
        return out


class TumblingCountWindows(Windower):
    """Windows of exactly ``size`` records; ``start``/``end`` are their first/last event times."""

    policy = "tumbling_count"

    def __init__(self, layout: WindowLayout, size: int, *, seed: int = 0) -> None:
        super().__init__(layout, seed=seed)
        self.size = check_positive_int("size", size)

    def _params(self) -> dict[str, Any]:
        return {"size": self.size}

    def update(self, batch: Batch) -> list[WindowState]:
        closed: list[WindowState] = []
        i, n = 0, len(batch)
        while i < n:
            if self._open is None:
                self._open = self._new_window()
            take = min(self.size - self._open.n, n - i)
            self._open.update(batch if take == n else batch.select(slice(i, i + take)))
            i += take
            if self._open.n == self.size:
                closed.append(self._close(self._open))
                self._open = None
        return closed

    def flush(self) -> WindowState | None:
        w = super().flush()
        return None if w is None else self._close(w)

    @staticmethod
    def _close(w: WindowState) -> WindowState:
        w.start, w.end = w.min_ts, w.max_ts
        return w


class TumblingTimeWindows(Windower):
    """Event-time windows of ``seconds`` closed by a watermark; windows under
    ``min_records`` are extended (module docstring)."""

    policy = "tumbling_time"

    def __init__(
        self,
        layout: WindowLayout,
        seconds: float,
        min_records: int,
        *,
        origin: float = 0.0,
        allowed_lateness: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(layout, seed=seed)
        if not (isinstance(seconds, (int, float)) and 0 < seconds < math.inf):
            raise ValueError(f"seconds must be a positive finite number, got {seconds!r}")
        if not (isinstance(origin, (int, float)) and math.isfinite(origin)):
            raise ValueError(f"origin must be a finite epoch time in seconds, got {origin!r}")
        # Below one period, so only the period right after the open window can be early.
        if not (isinstance(allowed_lateness, (int, float)) and 0 <= allowed_lateness < seconds):
            raise ValueError(
                f"allowed_lateness must be >= 0 and less than seconds ({seconds!r}), got {allowed_lateness!r}"
            )
        self.seconds, self.origin = float(seconds), float(origin)
        self.allowed_lateness = float(allowed_lateness)
        self.min_records = check_positive_int("min_records", min_records)
        self._first_period = self._end_period = 0  # the open window covers [first, end) periods
        self._max_ts = -math.inf  # the latest event time seen: the watermark is this minus allowed_lateness
        self._early: WindowState | None = None  # the window of period `end`, before the open one closed

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"seconds": self.seconds, "min_records": self.min_records, "origin": self.origin}
        if self.allowed_lateness:  # absent when 0: such checkpoints stay readable by older versions
            params["allowed_lateness"] = self.allowed_lateness
        return params

    def _state(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        _, parts = super()._state()
        if self._early is not None:
            parts["early"] = self._early.to_bytes()
        return {"first": self._first_period, "end": self._end_period, "max_ts": self._max_ts}, parts

    def _restore(self, state: dict[str, Any], parts: dict[str, bytes]) -> None:
        super()._restore(state, parts)
        self._first_period, self._end_period = int(state["first"]), int(state["end"])
        if "early" in parts:
            self._early = WindowState.from_bytes(parts["early"], self.layout)
        # Checkpoints from before the watermark lack max_ts: the open window holds the latest
        # record (a later one would have closed it), so its max_ts is the latest time seen.
        fallback = -math.inf if self._open is None else self._open.max_ts
        self._max_ts = float(state.get("max_ts", fallback))

    @property
    def watermark(self) -> float:
        """Event time up to which windows are complete: the latest seen minus the allowed lateness."""
        return self._max_ts - self.allowed_lateness

    def _unemitted(self) -> list[WindowState]:
        return [w for w in (self._open, self._early) if w is not None]

    def _period(self, t: float) -> int:
        return math.floor((t - self.origin) / self.seconds)

    def _open_for(self, period: int) -> None:
        self._first_period, self._end_period = period, period + 1
        self._open = self._new_window(self.origin + period * self.seconds, self.origin + (period + 1) * self.seconds)

    def _set_end(self, period: int) -> None:
        assert self._open is not None
        self._end_period = period
        self._open.end = self.origin + period * self.seconds

    def _fold_early(self) -> None:
        """Extend the open window over the early one's period: one window of both."""
        assert self._open is not None and self._early is not None
        self._open = self._open.merge(self._early)  # keeps the open window's seq
        self._early = None
        self._next_seq -= 1  # the early window was the last one made and is never emitted: its number is free
        self._set_end(self._end_period + 1)

    def _advance(self, closed: list[WindowState]) -> None:
        """Close (or extend) the open window while the watermark has passed its end."""
        if self._open is None:
            return
        # With allowed_lateness < seconds the watermark is within a period of the latest
        # record; the max() keeps that true under float rounding.
        mark = max(self._period(self.watermark), self._period(self._max_ts) - 1)
        while self._open is not None and mark >= self._end_period:
            if self._open.n >= self.min_records:
                closed.append(self._open)
                self._open = None
                if self._early is not None:
                    self._open, self._early = self._early, None
                    self._first_period, self._end_period = self._end_period, self._end_period + 1
            elif self._early is not None:
                self._fold_early()
            else:  # too few records to evaluate: extend the window up to the watermark's period
                self._set_end(mark + 1)

    def _place(self, period: int, batch: Batch) -> None:
        """Count a group of records of one period into its window (after :meth:`_advance`)."""
        if self._open is None:
            self._open_for(period)
        assert self._open is not None
        if period < self._end_period:
            if period < self._first_period:
                self._open.late += len(batch)
            self._open.update(batch)
            return
        # The period after the open window, which the watermark has not closed yet.
        if self._early is None:
            start = self.origin + self._end_period * self.seconds
            self._early = self._new_window(start, start + self.seconds)
        self._early.update(batch)

    def update(self, batch: Batch) -> list[WindowState]:
        if len(batch) == 0:
            return []
        ts = batch.timestamps
        if not np.isfinite(ts).all():
            raise ValueError("time windows need finite timestamps in every record")
        periods = np.floor((ts - self.origin) / self.seconds).astype(np.int64)
        order = np.argsort(periods, kind="stable")
        sorted_periods = periods[order]
        values, starts = np.unique(sorted_periods, return_index=True)
        bounds = np.append(starts, len(batch))
        latest = np.maximum.reduceat(ts[order], starts)  # each period's latest time
        closed: list[WindowState] = []
        for g, period in enumerate(values.tolist()):
            self._max_ts = max(self._max_ts, float(latest[g]))
            self._advance(closed)
            rows = order[bounds[g] : bounds[g + 1]]
            # a stable sort keeps each period's rows in arrival order
            self._place(period, batch if rows.size == len(batch) else batch.select(rows))
        return closed

    def flush(self) -> WindowState | None:
        """Close the open window (the early one folded in) whatever its size."""
        if self._early is not None:
            self._fold_early()
        return super().flush()


class SlidingWindows(Windower):
    """Windows of the last ``size`` records/seconds, made of ``panes`` panes, emitted whenever a pane closes."""

    policy = "sliding"

    def __init__(
        self,
        layout: WindowLayout,
        size: float,
        panes: int,
        *,
        unit: str = "records",
        min_records: int = 1,
        origin: float = 0.0,
        allowed_lateness: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(layout, seed=seed)
        self.panes = check_positive_int("panes", panes)
        self.min_records = check_positive_int("min_records", min_records)
        self.unit, self.origin = unit, float(origin)
        self.allowed_lateness = float(allowed_lateness)
        if self.allowed_lateness and unit != "seconds":
            raise ValueError("allowed_lateness applies to time panes only (unit='seconds')")
        if unit == "records":
            records = check_positive_int("size", size)
            self.size: float = records  # an int (records) here, a float (seconds) below
            if records % self.panes:
                raise ValueError(f"size must be a multiple of panes for unit='records', got size={size}, panes={panes}")
            self._inner: Windower = TumblingCountWindows(layout, records // self.panes, seed=derive_seed(seed, 1))
        elif unit == "seconds":
            if not (isinstance(size, (int, float)) and 0 < size < math.inf):
                raise ValueError(f"size must be a positive finite number of seconds, got {size!r}")
            self.size = float(size)
            self._inner = TumblingTimeWindows(
                layout,
                self.size / self.panes,
                1,
                origin=origin,
                allowed_lateness=self.allowed_lateness,
                seed=derive_seed(seed, 1),
            )
        else:
            raise ValueError(f"unit must be 'records' or 'seconds', got {unit!r}")
        self._panes: deque[WindowState] = deque(maxlen=self.panes)

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "size": self.size,
            "panes": self.panes,
            "unit": self.unit,
            "min_records": self.min_records,
            "origin": self.origin,
        }
        if self.allowed_lateness:  # absent when 0, as for TumblingTimeWindows
            params["allowed_lateness"] = self.allowed_lateness
        return params

    def _state(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        parts = {"inner": self._inner.to_bytes()}
        parts.update({f"pane{i}": p.to_bytes() for i, p in enumerate(self._panes)})
        return {"panes": len(self._panes)}, parts

    def _restore(self, state: dict[str, Any], parts: dict[str, bytes]) -> None:
        self._inner = Windower.from_bytes(parts["inner"], self.layout)
        self._panes.extend(WindowState.from_bytes(parts[f"pane{i}"], self.layout) for i in range(state["panes"]))

    @property
    def open_window(self) -> WindowState | None:
        return self._inner.open_window

    def _unemitted(self) -> list[WindowState]:
        return []  # a window is numbered when emitted (the panes have the inner windower's numbers)

    def _merged(self) -> WindowState:
        panes = list(self._panes)
        if len(panes) == 1:
            return panes[0].copy()  # the caller relabels it; the retained pane must stay as it is
        merged = panes[0].merge(panes[1])
        for p in panes[2:]:
            merged = merged.merge(p)
        return merged

    def _emit(self, end: float) -> WindowState | None:
        if self.unit == "seconds":
            while self._panes and self._panes[0].start < end - self.size - 1e-9 * self.size:
                self._panes.popleft()
        elif len(self._panes) < self.panes:
            return None  # warming up: fewer than `panes` panes so far
        merged = self._merged()
        if merged.n < self.min_records:
            return None
        merged.seq = self._next_seq
        self._next_seq += 1
        if self.unit == "seconds":
            merged.start, merged.end = end - self.size, end
        return merged

    def update(self, batch: Batch) -> list[WindowState]:
        out = []
        for pane in self._inner.update(batch):
            self._panes.append(pane)
            w = self._emit(pane.end)
            if w is not None:
                out.append(w)
        return out

    def flush(self) -> WindowState | None:
        """Close the partial pane and return the window of the retained panes (no warm-up or size check)."""
        pane = self._inner.flush()
        if pane is not None:
            self._panes.append(pane)
        if not self._panes:
            return None
        merged = self._merged()
        merged.seq = self._next_seq
        self._next_seq += 1
        self._panes.clear()
        return merged


@dataclass(frozen=True)
class WindowPolicy:
    """How traffic is cut into windows (the classes above).

    ``count``: tumbling windows of ``size`` records. ``time``: tumbling windows of
    ``seconds`` of event time, extended until they hold ``min_records``. ``sliding``:
    ``panes`` panes of ``size / panes`` records, or of ``seconds / panes`` when
    ``seconds`` is given. ``allowed_lateness`` (seconds, time windows and time panes):
    how far the watermark stays behind the latest event time.
    """

    kind: Literal["count", "time", "sliding"] = "count"
    size: int = 10_000
    seconds: float | None = None
    min_records: int = 1_000
    panes: int = 5
    allowed_lateness: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("count", "time", "sliding"):
            raise ValueError(f"kind must be 'count', 'time' or 'sliding', got {self.kind!r}")
        check_positive_int("size", self.size)
        check_positive_int("min_records", self.min_records)
        check_positive_int("panes", self.panes)
        if self.kind == "time" and self.seconds is None:
            raise ValueError("a time window policy needs seconds")
        lateness = self.allowed_lateness
        if isinstance(lateness, bool) or not (isinstance(lateness, (int, float)) and 0 <= lateness < math.inf):
            raise ValueError(f"allowed_lateness must be a finite number of seconds >= 0, got {lateness!r}")
        if lateness and (self.kind == "count" or self.seconds is None):
            raise ValueError("allowed_lateness applies to time windows only (kind 'time', or 'sliding' with seconds)")
        if lateness and self.seconds is not None:  # below one period: at most one window opened early
            period, what = (
                (self.seconds, "seconds") if self.kind == "time" else (self.seconds / self.panes, "seconds / panes")
            )
            if lateness >= period:
                raise ValueError(f"allowed_lateness ({lateness:g}) must be less than {what} ({period:g})")

    def windower(self, layout: WindowLayout, seed: int) -> Windower:
        if self.kind == "count":
            return TumblingCountWindows(layout, self.size, seed=seed)
        lateness = self.allowed_lateness
        if self.kind == "time":
            return TumblingTimeWindows(
                layout, float(self.seconds or 0), self.min_records, allowed_lateness=lateness, seed=seed
            )
        if self.seconds is not None:
            return SlidingWindows(
                layout, self.seconds, self.panes, unit="seconds", min_records=self.min_records,
                allowed_lateness=lateness, seed=seed,
            )  # fmt: skip
        return SlidingWindows(layout, self.size, self.panes, unit="records", seed=seed)
