"""Dead letters: rejected items kept for inspection (table ``dead_letters``), how one
becomes a row, the store's methods on them, and the pipeline's dead-letter sink.

A dead letter must not let a hostile client fill the disk or the memory: its raw item (and
raw bytes) is cut to ``storage.dead_letter_max_item_bytes`` and flagged as truncated with
the original size, its headers are kept by an allow-list (never credentials, whatever they
are called), and the table is kept within ``storage.dead_letter_max_bytes`` as well as
``storage.dead_letter_max_rows`` (:class:`DeadLetterWriter`), the oldest going first.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from monitor.store import tables as t
from monitor.store.tables import MAX_TEXT, MODEL_NAME_LENGTH, REASON_LENGTH, SOURCE_LENGTH

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from monitor.metrics import Metrics
    from monitor.pipeline import DeadLetterItem
    from monitor.store.retry_buffer import RetryBuffer

log = logging.getLogger(__name__)

DEFAULT_MAX_ITEM_BYTES = 64 * 1024  # StorageConfig.dead_letter_max_item_bytes
# What a row costs besides its variable columns (ids, times, source, reason, index entries),
# counted in stored_bytes; migration 0007 used the same figure for older rows.
ROW_OVERHEAD_BYTES = 200
# Headers a dead letter keeps: CloudEvents attributes (ce-* over HTTP, ce_* over Kafka) and
# these, which describe the payload or trace the request. An allow-list, not a deny-list:
# credentials travel under any name (x-api-key, x-auth-token, ...), and none may be stored.
KEPT_HEADERS = frozenset({
    "content-type", "content-length", "content-encoding", "user-agent",
    "traceparent", "tracestate", "x-request-id", "monitor-origin",
})  # fmt: skip
CLOUDEVENT_PREFIXES = ("ce-", "ce_")
MAX_HEADERS = 32  # kept per dead letter; a name is cut to 128 characters, a value to 1024
MAX_HEADER_NAME = 128
MAX_HEADER_VALUE = 1024
# The writer trims the table by bytes each time it has written this fraction of the limit
# since the last trim, so a burst cannot overshoot the limit by more than about 1/8 of it
# before the housekeeping loop's next round.
TRIM_FRACTION = 8


@dataclass(frozen=True)
class DeadLetter:
    """A rejected item kept for inspection. ``raw`` is the decoded item (any JSON-able value
    or a string); ``raw_bytes`` keeps a payload that was not valid UTF-8 or JSON."""

    received_at: float  # epoch seconds
    source: str  # "http", "cloudevents", "kafka", "file"
    model: str | None
    item_index: int
    path: str
    reason: str  # a monitor.records.Reason code
    message: str
    raw: Any
    raw_bytes: bytes | None = None
    headers: dict[str, Any] | None = None


class DeadLettersStore:
    """Dead-letter methods of :class:`monitor.store.database.Store`."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(
            self, work: Callable[[Connection], None], what: str, *, transient_attempts: int = ...
        ) -> None: ...

    def add_dead_letters(self, letters: Sequence[DeadLetter], max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES) -> None:
        """Insert ``letters`` in one transaction (one executemany), raw items cut to ``max_item_bytes``."""
        self.add_dead_letter_rows([dead_letter_row(letter, max_item_bytes) for letter in letters])

    def add_dead_letter_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows made by :func:`dead_letter_row` in one transaction."""
        if not rows:
            return

        def work(conn: Connection) -> None:
            conn.execute(t.dead_letters.insert(), list(rows))

        # One attempt, no sleeping: on StoreUnavailable the caller keeps the rows and tries
        # again later (monitor.store.retry_buffer.RetryBuffer).
        self._write_retrying(work, f"adding {len(rows)} dead letters", transient_attempts=1)

    def dead_letters(
        self, model: str | None = None, reason: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; page on with ``before_id`` = the smallest ``id`` of the previous page."""
        if limit < 1:
            raise ValueError(f"dead_letters: limit must be at least 1, got {limit}")
        c = t.dead_letters.c
        query = sa.select(t.dead_letters).where(*dead_letter_filters(model, reason)).order_by(c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(c.id < before_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [read_row(row) for row in rows]

    def dead_letter_page(
        self, model: str | None, reason: str | None, limit: int, before_id: int | None, max_bytes: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first, like :meth:`dead_letters`, but at most ``max_bytes`` of stored rows
        (at least one row, whatever its size, so paging always moves on); and whether older
        rows remain. The sizes are read first, so the rows that do not fit are never loaded."""
        if limit < 1:
            raise ValueError(f"dead_letter_page: limit must be at least 1, got {limit}")
        c = t.dead_letters.c
        where = dead_letter_filters(model, reason)
        if before_id is not None:
            where.append(c.id < before_id)
        with self._engine.connect() as conn:
            sizes = conn.execute(
                sa.select(c.id, c.stored_bytes).where(*where).order_by(c.id.desc()).limit(limit + 1)
            ).all()
            take = total = 0
            for _, stored in sizes[:limit]:
                if take and total + stored > max_bytes:
                    break
                total += stored
                take += 1
            if take == 0:
                return [], False
            newest, oldest = sizes[0][0], sizes[take - 1][0]
            query = sa.select(t.dead_letters).where(*where, c.id <= newest, c.id >= oldest).order_by(c.id.desc())
            rows = conn.execute(query).mappings().all()
        return [read_row(row) for row in rows], len(sizes) > take

    def count_dead_letters(self, model: str | None = None, reason: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.dead_letters).where(*dead_letter_filters(model, reason))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def trim_dead_letters(self, max_rows: int) -> int:
        """Delete all but the ``max_rows`` newest dead letters; returns how many went."""
        if max_rows < 0:
            raise ValueError(f"trim_dead_letters: max_rows must not be negative, got {max_rows}")
        c = t.dead_letters.c
        # The id of the newest row that must go (NULL when there are few enough rows).
        cutoff = sa.select(c.id).order_by(c.id.desc()).offset(max_rows).limit(1).scalar_subquery()
        deleted: list[int] = []

        def work(conn: Connection) -> None:
            deleted[:] = [int(conn.execute(sa.delete(t.dead_letters).where(c.id <= cutoff)).rowcount)]

        self._write_retrying(work, "trimming dead letters")
        return deleted[0]

    def trim_dead_letter_bytes(self, max_bytes: int) -> int:
        """Delete the oldest dead letters until the rest store at most ``max_bytes``
        (by ``stored_bytes``); returns how many went."""
        if max_bytes < 0:
            raise ValueError(f"trim_dead_letter_bytes: max_bytes must not be negative, got {max_bytes}")
        c = t.dead_letters.c
        # The bytes of each row and of every newer one; the newest row past the limit and
        # everything older go. One scan of the table (a window function: SQLite >= 3.25).
        running = sa.func.sum(c.stored_bytes).over(order_by=c.id.desc()).label("running")
        newest_first = sa.select(c.id, running).subquery()
        cutoff = sa.select(sa.func.max(newest_first.c.id)).where(newest_first.c.running > max_bytes)
        deleted: list[int] = []

        def work(conn: Connection) -> None:
            statement = sa.delete(t.dead_letters).where(c.id <= cutoff.scalar_subquery())
            deleted[:] = [int(conn.execute(statement).rowcount)]

        self._write_retrying(work, "trimming dead letters by bytes")
        return deleted[0]


class DeadLetterWriter:
    """The dead-letter retry buffer's write: insert the rows, then keep the table within its
    limits. Trimming by bytes scans the table, so it runs when this process has written
    ``max_bytes / TRIM_FRACTION`` since the last trim, and on the housekeeping loop's rounds
    after any write (:meth:`trim`); the row limit is kept on every round, as before. Each
    deleted row is counted by ``dropped(cause, n)``: ``row_limit`` or ``byte_limit``."""

    def __init__(
        self, store: DeadLettersStore, max_rows: int, max_bytes: int, dropped: Callable[[str, int], None]
    ) -> None:
        self._store = store
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._dropped = dropped
        self._lock = threading.Lock()
        self._trimming = threading.Lock()  # one trim at a time; another caller skips
        self._written = 1  # bytes since the last trim; 1: the first round trims rows from before

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._store.add_dead_letter_rows(rows)
        with self._lock:
            self._written += sum(row["stored_bytes"] for row in rows)
            due = self._written >= self._max_bytes // TRIM_FRACTION
        if due:
            try:
                self.trim()
            except Exception as exc:  # the rows are written: a failure here must not write them again
                log.warning("could not trim the dead letters after a write (the next round will): %s", exc)

    def trim(self) -> None:
        """Apply the row limit, and the byte limit if anything was written since the last trim."""
        if not self._trimming.acquire(blocking=False):
            return
        try:
            with self._lock:
                written = self._written
            rows = self._store.trim_dead_letters(self._max_rows)
            by_bytes = self._store.trim_dead_letter_bytes(self._max_bytes) if written else 0
            with self._lock:
                self._written = max(0, self._written - written)
        finally:
            self._trimming.release()
        if rows:
            self._dropped("row_limit", rows)
        if by_bytes:
            log.warning("deleted the %d oldest dead letters: the table reached %d bytes", by_bytes, self._max_bytes)
            self._dropped("byte_limit", by_bytes)


def dead_letter_sink(
    buffer: RetryBuffer[dict[str, Any]], metrics: Metrics, max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES
) -> Callable[[Sequence[DeadLetterItem]], None]:
    """The pipeline's dead-letter sink. Each item becomes its row at once (cut to
    ``max_item_bytes``, so what waits in memory is bounded too) and goes to ``buffer``: on
    the event loop it only waits there for the writer thread; elsewhere it is written at
    once; while the store is unreachable it waits for the housekeeping loop."""

    def sink(items: Sequence[DeadLetterItem]) -> None:
        try:
            rows = [
                dead_letter_row(
                    DeadLetter(
                        received_at=item.received_at,
                        source=item.source,
                        model=item.rejection.model,
                        item_index=item.rejection.index,
                        path=item.rejection.path,
                        reason=item.rejection.reason,
                        message=item.rejection.message,
                        raw=item.rejection.raw,
                        raw_bytes=item.raw_bytes,
                        headers=item.headers,
                    ),
                    max_item_bytes,
                )
                for item in items
            ]
            buffer.submit(rows)
        except Exception:  # the store refused them: still counted and answered; say loudly what was lost
            log.exception("could not store %d dead letters", len(items))
            metrics.dead_letters_dropped.labels("store_error").inc(len(items))

    return sink


def kept_headers(headers: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The headers a dead letter may keep (see KEPT_HEADERS), names in lower case."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    kept: dict[str, Any] = {}
    for name, value in pairs:
        lower = str(name).lower()
        if lower in KEPT_HEADERS or lower.startswith(CLOUDEVENT_PREFIXES):
            kept[lower] = value
    return kept


def dead_letter_filters(model: str | None, reason: str | None) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses for the optional filters of the inspection API."""
    c = t.dead_letters.c
    filters = []
    if model is not None:
        filters.append(c.model == model)
    if reason is not None:
        filters.append(c.reason == reason)
    return filters


def dead_letter_row(letter: DeadLetter, max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES) -> dict[str, Any]:
    """The ``dead_letters`` row for ``letter``, its raw item and raw bytes cut to
    ``max_item_bytes`` each and its headers to the allow-list; never raises for odd values
    (see _json_bytes)."""
    raw, raw_bytes = letter.raw, letter.raw_bytes
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw_bytes = bytes(raw) if raw_bytes is None else raw_bytes
        raw = bytes(raw).decode("utf-8", errors="replace")
    elif raw is None and raw_bytes is not None:
        raw = raw_bytes.decode("utf-8", errors="replace")
    text = _json_bytes(raw)
    raw_truncated = len(text) > max_item_bytes
    # orjson writes valid UTF-8: "ignore" only drops a character the cut split.
    raw_text = text[:max_item_bytes].decode("utf-8", errors="ignore") if raw_truncated else text.decode()
    kept_bytes = None if raw_bytes is None else bytes(raw_bytes[:max_item_bytes])
    headers = None
    header_bytes = 0
    if letter.headers is not None:
        encoded = _json_bytes(_bounded_headers(letter.headers))  # e.g. Kafka header values are bytes
        headers, header_bytes = json.loads(encoded), len(encoded)
    path, message = _clean(letter.path, MAX_TEXT), _clean(letter.message, MAX_TEXT)
    stored = len(raw_text) if raw_text.isascii() else len(raw_text.encode())
    stored += len(kept_bytes or b"") + header_bytes + len(path.encode()) + len(message.encode()) + ROW_OVERHEAD_BYTES
    return {
        "received_at": float(letter.received_at),
        "source": _clean(letter.source, SOURCE_LENGTH),
        "model": None if letter.model is None else _clean(letter.model, MODEL_NAME_LENGTH),
        "item_index": int(letter.item_index),
        "path": path,
        "reason": _clean(letter.reason, REASON_LENGTH),
        "message": message,
        "raw": raw_text,
        "raw_bytes": kept_bytes,
        "headers": headers,
        "raw_size": len(text),
        "raw_truncated": raw_truncated,
        "raw_bytes_size": None if raw_bytes is None else len(raw_bytes),
        "raw_bytes_truncated": raw_bytes is not None and len(raw_bytes) > max_item_bytes,
        "stored_bytes": stored,
    }


def _bounded_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The allow-listed headers, at most MAX_HEADERS of them, names and text values cut."""
    kept = {}
    for name, value in list(kept_headers(headers).items())[:MAX_HEADERS]:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value[:MAX_HEADER_VALUE])
        elif isinstance(value, str):
            value = value[:MAX_HEADER_VALUE]
        kept[name[:MAX_HEADER_NAME]] = value
    return kept


def read_row(row: sa.RowMapping) -> dict[str, Any]:
    """A ``dead_letters`` row as a dict, ``raw`` back as a value (a cut item stays text)."""
    return {**row, "raw": row["raw"] if row["raw_truncated"] else parse_raw(row["raw"])}


def _clean(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` and storable anywhere: PostgreSQL refuses NUL characters
    and lone surrogates (which a JSON ``"\\ud800"`` escape can produce)."""
    text = str(text)[:limit]
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _json_bytes(value: Any) -> bytes:
    """``value`` as JSON text in UTF-8, whatever it is (orjson: ten times faster than json here).
    Unserialisable parts become their repr; if the structure itself cannot be JSON
    (lone surrogates, cycles, huge ints), the whole value becomes its repr, as a string.
    orjson escapes NUL and writes NaN as null, so the text is storable anywhere."""
    try:
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError, RecursionError):  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not lose the other letters of the batch
        text = f"<unrepresentable {type(value).__name__}>"
    return json.dumps(text).encode()  # ASCII: lone surrogates are escaped


def parse_raw(text: str) -> Any:
    """The ``raw`` column back as a value."""
    try:
        return json.loads(text)
    except ValueError:  # written by hand or by an older version: show it as it is
        return text
