"""Histograms in the store: the drawing data of evaluated windows (table ``histograms``).

:class:`HistogramsStore` is a mixin of :class:`monitor.store.database.Store`. A row is one
channel of one window: its counts and the reference's in the reference's bins or
categories (``data``: ``edges``, ``categories``, ``reference``, ``current``), so a page can
draw a window long after it closed and after a restart. Rows are bounded by the
reference's layout, and :meth:`HistogramsStore.add_histograms` deletes a model's rows older
than the retention it is given in the same transaction, so the table does not grow forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from monitor.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

HISTOGRAM_COLUMNS = ("model", "reference_version", "window_seq", "feature", "kind", "window_end", "data", "segment")
_OPTIONAL = ("window_end", "segment")  # segment: '' (the whole population) when absent
_KEY = ("model", "reference_version", "window_seq", "feature", "segment")
_DRAWN_COLUMNS = (
    "window_seq", "window_start", "window_end", "reference_version", "kind", "feature", "method", "statistic",
    "pvalue", "threshold", "drift", "n_current", "detail",
)  # fmt: skip
_STORED_KEYS = sa.select(*(t.histograms.c[name] for name in _KEY)).where(
    *(t.histograms.c[name].in_(sa.bindparam(name, expanding=True)) for name in ("model", "window_seq", "feature"))
)


class HistogramsStore:
    """Histogram methods of :class:`monitor.store.database.Store`."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(self, work: Callable[[Connection], None], what: str) -> None: ...

    def add_histograms(self, rows: Sequence[Mapping[str, Any]], *, keep_seconds: float | None = None) -> None:
        """Insert histogram rows (the :data:`HISTOGRAM_COLUMNS`) in one transaction; a window's
        channel stored already is not stored again (a window evaluated again after a crash).
        With ``keep_seconds``, the same models' rows older than that are deleted."""
        if not rows:
            return
        now = time.time()
        clean = [_histogram_row(row, index, now) for index, row in enumerate(rows)]
        wanted = {name: list({row[name] for row in clean}) for name in ("model", "window_seq", "feature")}

        def work(conn: Connection) -> None:
            seen = {tuple(found) for found in conn.execute(_STORED_KEYS, wanted)}
            new = [row for row in clean if tuple(row[name] for name in _KEY) not in seen]
            if new:
                conn.execute(sa.insert(t.histograms), new)
            if keep_seconds is not None:
                c = t.histograms.c
                conn.execute(
                    sa.delete(t.histograms).where(c.model.in_(wanted["model"]), c.created_at < now - keep_seconds)
                )

        self._write_retrying(work, f"adding {len(clean)} histograms")

    def histograms(
        self,
        model: str,
        *,
        feature: str | None = None,
        since_seq: int | None = None,
        limit: int = 100_000,
        segment: str = "",
    ) -> list[dict[str, Any]]:
        """A model's histogram rows by window then feature (one feature's with ``feature``),
        from window ``since_seq`` on; the newest reference version's row when a window has two.
        ``segment``: a slice's ("region:eu"; '' the whole population's)."""
        if limit < 1:
            raise ValueError(f"histograms: limit must be at least 1, got {limit}")
        c = t.histograms.c
        filters = [c.model == model, c.segment == segment]
        if feature is not None:
            filters.append(c.feature == feature)
        if since_seq is not None:
            filters.append(c.window_seq >= since_seq)
        query = sa.select(t.histograms).where(*filters).order_by(c.window_seq, c.id).limit(limit)
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def drawn_results(
        self, model: str, kinds: Sequence[str], *, since_seq: int, feature: str | None = None, segment: str = ""
    ) -> list[dict[str, Any]]:
        """The results rows a page draws: only the columns it reads, of ``kinds``, from window
        ``since_seq`` on (one feature's with ``feature``), of the whole population (every
        version together) or of the slice ``segment``. A model page of 200 windows x 25
        features reads ~10,000 rows: :meth:`results` with every column and kind took seconds."""
        c = t.results.c
        # The slices' and versions' windows are numbered apart: their rows must not mix in.
        filters = [c.model == model, c.kind.in_(list(kinds)), c.window_seq >= since_seq, c.segment == segment,
                   c.model_version == ""]  # fmt: skip
        if feature is not None:
            filters.append(c.feature == feature)
        # detail as text, parsed here by orjson: the JSON type's per-row decoding was half the time.
        columns = [c[name] for name in _DRAWN_COLUMNS[:-1]] + [sa.cast(c.detail, sa.Text)]
        query = sa.select(*columns).where(*filters)
        with self._engine.connect() as conn:
            raw = conn.execute(query).all()
        rows = [dict(zip(_DRAWN_COLUMNS, row, strict=True)) for row in raw]
        for row in rows:
            detail = row["detail"]
            row["detail"] = None if detail is None else orjson.loads(detail)
        return rows


def _histogram_row(row: Mapping[str, Any], index: int, now: float) -> dict[str, Any]:
    where = f"add_histograms row {index}"
    unknown = set(row) - set(HISTOGRAM_COLUMNS)
    missing = [name for name in HISTOGRAM_COLUMNS if name not in row and name not in _OPTIONAL]
    if unknown or missing:
        problem = f"unknown column(s) {sorted(unknown)}" if unknown else f"missing column(s) {missing}"
        raise ValueError(f"{where}: {problem}")
    for name, width in (("model", t.MODEL_NAME_LENGTH), ("feature", t.MODEL_NAME_LENGTH),
                        ("reference_version", t.VERSION_LENGTH), ("kind", 16)):  # fmt: skip
        value = row[name]
        if not isinstance(value, str) or len(value) > width or "\x00" in value:
            raise ValueError(f"{where}: {name} must be a string of at most {width} characters, got {value!r:.80}")
    segment = row.get("segment", "")
    if not isinstance(segment, str) or len(segment) > 4096 or "\x00" in segment:  # as results.segment
        raise ValueError(f"{where}: segment must be a string of at most 4096 characters, got {segment!r:.80}")
    if not isinstance(row["data"], Mapping):
        raise ValueError(f"{where}: data must be a mapping, got {type(row['data']).__name__}")
    end = row.get("window_end")
    return {
        **{name: row[name] for name in ("model", "reference_version", "feature", "kind", "data")},
        "window_seq": int(row["window_seq"]),
        "segment": segment,
        "window_end": None if end is None or end != end or end in (float("inf"), float("-inf")) else float(end),
        "created_at": now,
    }
